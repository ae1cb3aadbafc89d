package server

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// readyDoc is three buckets of two nodes, perKey buckets per key.
func readyDoc(perKey int, acks string) string {
	return fmt.Sprintf(`
active_deployment: d
deployments:
    d:
        write_acks: %s
        hash: {buckets_per_key: %d}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
            b3: {n5: [127.0.0.1, 9005, 9105], n6: [127.0.0.1, 9006, 9106]}
`, acks, perKey)
}

// TestUnready: the buckets readiness names, by write_acks and buckets per
// key, as route.acked would fail keys' writes.
func TestUnready(t *testing.T) {
	for _, c := range []struct {
		perKey int
		acks   string
		down   []string
		want   []string
	}{
		{1, "quorum", nil, nil},
		{1, "quorum", []string{"n1"}, nil},
		{1, "quorum", []string{"n1", "n2"}, []string{"b1"}},
		{1, "quorum", []string{"n1", "n2", "n6"}, []string{"b1"}},
		{3, "quorum", []string{"n1", "n2"}, nil}, // 2 of 3 buckets still take every key
		{3, "quorum", []string{"n1", "n2", "n3", "n4"}, []string{"b1", "b2"}},
		{2, "quorum", []string{"n1", "n2"}, []string{"b1"}}, // a majority of 2 is 2
		{3, "one", []string{"n1", "n2", "n3", "n4"}, nil},
		{3, "one", []string{"n1", "n2", "n3", "n4", "n5", "n6"}, []string{"b1", "b2", "b3"}},
		{1, "one", []string{"n3", "n4"}, []string{"b2"}},
		{1, "all", []string{"n4"}, []string{"b2"}},
		{3, "all", []string{"n1", "n6"}, []string{"b1", "b3"}},
		{3, "all", nil, nil},
	} {
		topo := compile(t, readyDoc(c.perKey, c.acks))
		up := make([]bool, len(topo.nodes))
		for i, n := range topo.nodes {
			up[i] = !slices.Contains(c.down, n.ID)
		}
		if got := topo.unready(up); !slices.Equal(got, c.want) {
			t.Errorf("buckets_per_key %d, write_acks %s, down %v: unready %v, want %v", c.perKey, c.acks, c.down, got, c.want)
		}
	}
}

// TestReadinessCheck: the verdict follows replicas going down and coming
// back, naming the bucket and the unreachable nodes.
func TestReadinessCheck(t *testing.T) {
	tc := newTestCluster(t, readyDoc(1, "quorum"))
	defer tc.Close()
	r := &readiness{cluster: tc.Cluster}
	if why := r.check(); why != "" {
		t.Fatalf("all up: %q", why)
	}
	tc.nodes["n3"].setDown(true)
	tc.nodes["n4"].setDown(true)
	r.at = r.at.AddDate(-1, 0, 0) // past the cache
	why := r.check()
	if !strings.Contains(why, "buckets b2 ") || !strings.Contains(why, "n3, n4") || !strings.Contains(why, "quorum") {
		t.Fatalf("b2 down: %q", why)
	}
	tc.nodes["n3"].setDown(false)
	tc.nodes["n4"].setDown(false)
	if again := r.check(); again != why {
		t.Fatalf("within the cache: %q, then %q", why, again)
	}
	r.at = r.at.AddDate(-1, 0, 0)
	if why := r.check(); why != "" {
		t.Fatalf("back up: %q", why)
	}
}
