package server

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/config"
)

// storeSet is a few in-process stores standing in for nodes: each is its
// own node's localReplica, so healing logic runs without sockets.
type storeSet map[string]*kv.Store

func newStores(t *testing.T, ids ...string) storeSet {
	ss := storeSet{}
	for _, id := range ids {
		s, err := kv.Open("db", kv.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ss[id] = s
	}
	return ss
}

func (ss storeSet) healerFor(t *testing.T, self, doc string) (*healer, *Cluster) {
	t.Helper()
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCluster(cfg, ClusterConfig{Self: self, Replica: func(n config.Node) Replica { return localReplica{ss[n.ID]} }})
	if err != nil {
		t.Fatal(err)
	}
	h := newHealer(ss[self], c, slog.Default())
	h.minPace = 0
	h.chunkRecords = 37 // many chunks, ranges that split oddly
	return h, c
}

func (ss storeSet) count(t *testing.T, id string) int {
	n := 0
	if err := ss[id].Scan(nil, nil, func([]byte, kv.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHealPushesMissingAndOlder(t *testing.T) {
	ss := newStores(t, "n1", "n2")
	doc := `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
`
	h, _ := ss.healerFor(t, "n1", doc)
	for i := range 200 {
		key := fmt.Appendf(nil, "k%03d", i)
		ss["n1"].Apply(key, kv.Record{TS: 10, Value: key})
		switch i % 4 {
		case 1: // n2 holds an older version
			ss["n2"].Apply(key, kv.Record{TS: 5, Value: []byte("old")})
		case 2: // n2 holds a newer one: it must survive
			ss["n2"].Apply(key, kv.Record{TS: 20, Value: []byte("newer")})
		case 3: // n2 is up to date
			ss["n2"].Apply(key, kv.Record{TS: 10, Value: key})
		}
	}
	st, err := h.pass(context.Background(), 0, false)
	if err != nil || st.records != 200 || st.pushed != 100 || st.dropped != 0 {
		t.Fatalf("pass: %+v %v", st, err)
	}
	for i := range 200 {
		key := fmt.Appendf(nil, "k%03d", i)
		rec, err := ss["n2"].Get(key, nil)
		want := string(key)
		if i%4 == 2 {
			want = "newer"
		}
		if err != nil || string(rec.Value) != want {
			t.Fatalf("n2 %s = %q %v, want %q", key, rec.Value, err, want)
		}
	}
}

func TestHealMigration(t *testing.T) {
	ss := newStores(t, "n1", "n2", "n3")
	nodes := `
        n1: [127.0.0.1, 9001, 9101]`
	migrating := `
active_deployment: old
target_deployment: new
deployments:
    old:
        buckets:
            b1: {` + nodes + `}
    new:
        buckets:
            b1: {n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103]}
`
	h, c := ss.healerFor(t, "n1", migrating)
	const total = 300
	for i := range total {
		key := fmt.Appendf(nil, "m%03d", i)
		ss["n1"].Apply(key, kv.Record{TS: 1, Value: key})
	}
	st, err := h.pass(context.Background(), 0, false)
	if err != nil || st.pushed != total || st.dropped != 0 {
		t.Fatalf("pass while migrating: %+v %v", st, err)
	}
	if n2, n3 := ss.count(t, "n2"), ss.count(t, "n3"); n2+n3 != total || n2 == 0 || n3 == 0 {
		t.Fatalf("new owners hold %d + %d keys, want %d in all", n2, n3, total)
	}
	// Finishing the migration: n1 is no longer an owner and lets go.
	done, err := config.Parse([]byte(`
active_deployment: new
deployments:
    new:
        buckets:
            b1: {n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(done); err != nil {
		t.Fatal(err)
	}
	st, err = h.pass(context.Background(), 0, false)
	if err != nil || st.pushed != 0 || st.dropped != total {
		t.Fatalf("pass after migration: %+v %v", st, err)
	}
	if n := ss.count(t, "n1"); n != 0 {
		t.Fatalf("old owner still holds %d keys", n)
	}
	for i := range total {
		key := fmt.Appendf(nil, "m%03d", i)
		if rec, err := c.Get(key, nil); err != nil || string(rec.Value) != string(key) {
			t.Fatalf("read %s after migration: %q %v", key, rec.Value, err)
		}
	}
}

// TestHealChunkLimits: a chunk never passes its byte limit, except a single
// record larger than the limit, which goes alone.
func TestHealChunkLimits(t *testing.T) {
	ss := newStores(t, "n1")
	h, _ := ss.healerFor(t, "n1", `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101]}
`)
	h.chunkBytes = 1000
	sizes := []int{300, 300, 300, 5000, 300, 900, 200, 2000}
	for i, n := range sizes {
		ss["n1"].Apply(fmt.Appendf(nil, "c%d", i), kv.Record{TS: 1, Value: make([]byte, n)})
	}
	var start []byte
	seen := 0
	for {
		chunk, next, err := h.readChunk(start)
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, r := range chunk {
			size += len(r.Key) + len(r.Value)
		}
		if size > h.chunkBytes && len(chunk) > 1 {
			t.Fatalf("chunk of %d records holds %d bytes, limit %d", len(chunk), size, h.chunkBytes)
		}
		seen += len(chunk)
		if next == nil {
			break
		}
		start = next
	}
	if seen != len(sizes) {
		t.Fatalf("chunks covered %d records, want %d", seen, len(sizes))
	}
}

// TestHealConvergesOnTies: replicas holding different values under the same
// timestamp converge on the one last-write-wins picks (the greater bytes)
// once each has healed, whichever way round they started.
func TestHealConvergesOnTies(t *testing.T) {
	ss := newStores(t, "n1", "n2")
	doc := `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
`
	h1, _ := ss.healerFor(t, "n1", doc)
	h2, _ := ss.healerFor(t, "n2", doc)
	ss["n1"].Apply([]byte("t1"), kv.Record{TS: 10, Value: []byte("b")})
	ss["n2"].Apply([]byte("t1"), kv.Record{TS: 10, Value: []byte("a")})
	ss["n1"].Apply([]byte("t2"), kv.Record{TS: 10, Value: []byte("a")})
	ss["n2"].Apply([]byte("t2"), kv.Record{TS: 10, Value: []byte("b")})
	for _, h := range []*healer{h1, h2} {
		if _, err := h.pass(context.Background(), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"n1", "n2"} {
		for _, key := range []string{"t1", "t2"} {
			if rec, err := ss[id].Get([]byte(key), nil); err != nil || string(rec.Value) != "b" {
				t.Errorf("%s %s = %q %v, want the greater value b", id, key, rec.Value, err)
			}
		}
	}
}
