package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
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
	st, err := h.pass(context.Background())
	if err != nil || st.pushed != 100 || st.dropped != 0 {
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
	st, err := h.pass(context.Background())
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
	st, err = h.pass(context.Background())
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

// batchSizes is a replica that records the size of each batch pushed to it.
type batchSizes struct {
	*memReplica
	sizes [][2]int // records, bytes of keys and values
}

func (b *batchSizes) ApplyBatch(ctx context.Context, recs []codec.Record) ([]kv.Result, error) {
	size := 0
	for _, r := range recs {
		size += len(r.Key) + len(r.Value)
	}
	b.sizes = append(b.sizes, [2]int{len(recs), size})
	return b.memReplica.ApplyBatch(ctx, recs)
}

// TestHealChunkLimits: a push never passes its byte limit, except a single
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
	var keys [][]byte
	for i, n := range sizes {
		key := fmt.Appendf(nil, "c%d", i)
		ss["n1"].Apply(key, kv.Record{TS: 1, Value: make([]byte, n)})
		keys = append(keys, key)
	}
	r := &batchSizes{memReplica: &memReplica{recs: map[string]kv.Record{}}}
	sent, err := h.push(context.Background(), r, keys)
	if err != nil || sent != len(sizes) {
		t.Fatalf("pushed %d of %d: %v", sent, len(sizes), err)
	}
	for _, b := range r.sizes {
		if b[1] > h.chunkBytes+codec.RecordSize(0, 0)*b[0] && b[0] > 1 {
			t.Fatalf("push of %d records holds %d bytes, limit %d", b[0], b[1], h.chunkBytes)
		}
	}
	if len(r.memReplica.recs) != len(sizes) {
		t.Fatalf("replica holds %d of %d", len(r.memReplica.recs), len(sizes))
	}
}

// fill writes n keys to every store in ids, the same record everywhere.
func (ss storeSet) fill(t *testing.T, n int, ids ...string) int {
	t.Helper()
	size := 0
	for i := range n {
		key := fmt.Appendf(nil, "key-%06d", i)
		val := fmt.Appendf(nil, "value-%06d-%s", i, "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567")
		size += len(key) + len(val)
		for _, id := range ids {
			if _, err := ss[id].Apply(key, kv.Record{TS: int64(i + 1), Value: val}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return size
}

// TestHealCostFollowsDifferences: two replicas of 100,000 keys that differ
// in 10 converge, and the comparison moves less than 1% of the data set.
func TestHealCostFollowsDifferences(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200,000 records")
	}
	ss := newStores(t, "n1", "n2")
	doc := `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
`
	h, _ := ss.healerFor(t, "n1", doc)
	size := ss.fill(t, 100_000, "n1", "n2")
	for i := range 10 {
		key := fmt.Appendf(nil, "key-%06d", i*9973)
		ss["n1"].Apply(key, kv.Record{TS: 1 << 40, Value: []byte("newer on n1")})
	}
	st, err := h.pass(context.Background())
	if err != nil || st.pushed != 10 {
		t.Fatalf("pass: %+v %v", st, err)
	}
	moved := h.exchanged.Load()
	t.Logf("data set %d bytes; the pass moved %d bytes (%.3f%%) over %d segments", size, moved, 100*float64(moved)/float64(size), st.segments)
	if moved*100 >= int64(size) {
		t.Fatalf("moved %d bytes for 10 differences in %d bytes of data", moved, size)
	}
	for i := range 10 {
		key := fmt.Appendf(nil, "key-%06d", i*9973)
		if rec, err := ss["n2"].Get(key, nil); err != nil || string(rec.Value) != "newer on n1" {
			t.Fatalf("n2 %s = %q %v", key, rec.Value, err)
		}
	}
	// In sync now: the next pass reconciles nothing.
	if st, err := h.pass(context.Background()); err != nil || st.segments != 0 {
		t.Fatalf("second pass: %+v %v", st, err)
	}
}

// TestHealRefillsWipedNode: a node that lost its data directory gets every
// key back from its mirror by anti-entropy alone.
func TestHealRefillsWipedNode(t *testing.T) {
	ss := newStores(t, "n1", "n2")
	doc := `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
`
	ss.fill(t, 3000, "n1")
	// By its own first pass (it pulls), or by its mirror's (it pushes).
	for _, self := range []string{"n2", "n1"} {
		h, _ := ss.healerFor(t, self, doc)
		st, err := h.pass(context.Background())
		if err != nil || st.pushed+st.pulled != 3000 {
			t.Fatalf("%s's pass: %+v %v", self, st, err)
		}
		if n := ss.count(t, "n2"); n != 3000 {
			t.Fatalf("wiped node holds %d of 3000", n)
		}
		if err := ss["n2"].Close(); err != nil {
			t.Fatal(err)
		}
		s, err := kv.Open("db", kv.Options{FS: vfs.NewMem()}) // wiped again
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ss["n2"] = s
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
		if _, err := h.pass(context.Background()); err != nil {
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

// TestFailedPassIsRetriedSoon: a pass that could not reach a peer (a
// migration's target node still starting) is tried again within seconds,
// not a background_healing_interval later: with the seed's daily interval
// the copy, and so the migration, waited a day.
func TestFailedPassIsRetriedSoon(t *testing.T) {
	ss := newStores(t, "n1", "n2")
	cfg, err := config.Parse([]byte(`
active_deployment: d
deployments:
    d:
        background_healing_interval: 1h
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
`))
	if err != nil {
		t.Fatal(err)
	}
	n2down := new(atomic.Bool)
	n2down.Store(true)
	c, err := NewCluster(cfg, ClusterConfig{Self: "n1", Replica: func(n config.Node) Replica {
		if n.ID == "n2" {
			return downable{localReplica{ss["n2"]}, n2down}
		}
		return localReplica{ss[n.ID]}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := ss["n1"].Apply([]byte("k"), kv.Record{TS: time.Now().UnixMicro(), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	h := newHealer(ss["n1"], c, slog.Default())
	h.minPace, h.retryMin = 0, 50*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.run(ctx) }()
	defer func() { cancel(); <-done }()
	h.poke()
	waitFor(t, func() bool { return h.passes.Load() >= 1 })
	if rep := h.last.Load(); rep.InSync {
		t.Fatal("a pass with n2 down reported in sync")
	}
	n2down.Store(false)
	waitFor(t, func() bool { rep := h.last.Load(); return rep != nil && rep.InSync })
	if _, err := ss["n2"].Get([]byte("k"), nil); err != nil {
		t.Fatalf("n2 after the retried pass: %v", err)
	}
}
