package server

import (
	"testing"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
)

// TestAckedDuringMigration checks the quorum rule when a key's groups come
// from two deployments: a quorum is the active deployment's, whatever the
// target's nodes answer (they are hinted); all means every replica of both.
func TestAckedDuringMigration(t *testing.T) {
	doc := `
active_deployment: old
target_deployment: new
deployments:
    old:
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
    new:
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n5: [127.0.0.1, 9005, 9105]}
            b2: {n3: [127.0.0.1, 9003, 9103], n6: [127.0.0.1, 9006, 9106]}
`
	topo := compile(t, doc)
	var r route
	topo.fill(&r, []byte("some key"))
	if len(r.ends) != 4 {
		t.Fatalf("%d groups, want 4 (2 buckets in each deployment)", len(r.ends))
	}
	pos := map[string]int{}
	for p, i := range r.reps {
		pos[topo.nodes[i].ID] = p
	}
	if len(pos) != 6 {
		t.Fatalf("replicas %v, want all six nodes", pos)
	}
	f := func(acks httpproxy.Acks, ids []string, want bool) {
		t.Helper()
		ok := make([]bool, len(r.reps))
		for _, id := range ids {
			ok[pos[id]] = true
		}
		if got := r.acked(acks, ok, len(ids)); got != want {
			t.Errorf("acked(%s, %v) = %v, want %v", acks, ids, got, want)
		}
	}
	// A quorum needs a majority of buckets (here 2 of 2) of the active one.
	f(httpproxy.AcksQuorum, []string{"n1", "n3"}, true) // both buckets of both
	f(httpproxy.AcksQuorum, []string{"n2", "n4"}, true) // the target's n5, n6 still starting
	f(httpproxy.AcksQuorum, []string{"n2", "n5", "n6"}, false)
	f(httpproxy.AcksQuorum, []string{"n5", "n6"}, false)
	f(httpproxy.AcksOne, []string{"n6"}, true)
	f(httpproxy.AcksAll, []string{"n1", "n2", "n3", "n4", "n5"}, false)
	f(httpproxy.AcksAll, []string{"n1", "n2", "n3", "n4", "n5", "n6"}, true)
}

// TestReadQuorum: a read must hear from enough replicas to meet every
// possible quorum write — with two buckets of two and quorum writes needing
// one node in each bucket, all of one bucket plus one of the other.
func TestReadQuorum(t *testing.T) {
	doc := `
active_deployment: d
deployments:
    d:
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
`
	topo := compile(t, doc)
	var r route
	topo.fill(&r, []byte("k"))
	pos := map[string]int{}
	for p, i := range r.reps {
		pos[topo.nodes[i].ID] = p
	}
	f := func(ids []string, want bool) {
		t.Helper()
		answered := make([]bool, len(r.reps))
		for _, id := range ids {
			answered[pos[id]] = true
		}
		if got := r.readQuorum(answered); got != want {
			t.Errorf("readQuorum(%v) = %v, want %v", ids, got, want)
		}
	}
	f([]string{"n1", "n3"}, false) // a write to n2 and n4 would be missed
	f([]string{"n1", "n2"}, true)  // every quorum write has a node in b1
	f([]string{"n1", "n2", "n3"}, true)
	f([]string{"n3", "n4"}, true)
	f([]string{"n1"}, false)
	f(nil, false)
}

// compile parses doc into a proxy's topology (no replicas attached).
func compile(t *testing.T, doc string) *topology {
	t.Helper()
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	topo, err := newTopology(cfg, "", func(config.Node) Replica { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return topo
}
