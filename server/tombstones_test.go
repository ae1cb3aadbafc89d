package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/config"
)

// downable is a local replica that can be taken down.
type downable struct {
	localReplica
	down *atomic.Bool
}

func (d downable) fail() error {
	if d.down.Load() {
		return errDown
	}
	return nil
}

func (d downable) Get(ctx context.Context, key, dst []byte) (kv.Record, error) {
	if err := d.fail(); err != nil {
		return kv.Record{}, err
	}
	return d.localReplica.Get(ctx, key, dst)
}

func (d downable) SegmentRecords(ctx context.Context, seg int, fn func([]byte, kv.Meta, uint64)) error {
	if err := d.fail(); err != nil {
		return err
	}
	return d.localReplica.SegmentRecords(ctx, seg, fn)
}

const threeMirrors = `
active_deployment: d
deployments:
    d:
        background_healing_interval: 1s
        tombstone_grace: 2s
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102], n3: [127.0.0.1, 9003, 9103]}
`

// gcCluster is three mirrors in process; n3 can be taken down as others see it.
func gcCluster(t *testing.T, fs map[string]vfs.FS) (storeSet, map[string]*healer, *atomic.Bool) {
	t.Helper()
	ss := storeSet{}
	for _, id := range []string{"n1", "n2", "n3"} {
		s, err := kv.Open("db", kv.Options{FS: fs[id]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ss[id] = s
	}
	cfg, err := config.Parse([]byte(threeMirrors))
	if err != nil {
		t.Fatal(err)
	}
	n3down := new(atomic.Bool)
	hs := map[string]*healer{}
	for _, self := range []string{"n1", "n2", "n3"} {
		c, err := NewCluster(cfg, ClusterConfig{Self: self, Replica: func(n config.Node) Replica {
			r := localReplica{ss[n.ID]}
			if n.ID == "n3" && self != "n3" {
				return downable{r, n3down}
			}
			return r
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		h := newHealer(ss[self], c, slog.Default())
		h.minPace = 0
		hs[self] = h
	}
	return ss, hs, n3down
}

// passAll runs a pass on each node in ids (all three by default).
func passAll(t *testing.T, hs map[string]*healer, ids ...string) {
	t.Helper()
	if len(ids) == 0 {
		ids = []string{"n1", "n2", "n3"}
	}
	for _, id := range ids {
		hs[id].pass(context.Background()) // a replica down is an error here, by design
	}
}

// TestTombstoneGC: a delete while a replica is down; past the grace the
// tombstone stays as long as that replica has not confirmed it, reaches it
// when it returns, and only then goes from every replica — the value never
// comes back, not after full restarts either.
func TestTombstoneGC(t *testing.T) {
	fs := map[string]vfs.FS{"n1": vfs.NewMem(), "n2": vfs.NewMem(), "n3": vfs.NewMem()}
	ss, hs, n3down := gcCluster(t, fs)
	old := time.Now().Add(-time.Hour).UnixMicro() // past the 2s grace
	keys := make([][]byte, 50)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "gone-%02d", i)
		for _, id := range []string{"n1", "n2", "n3"} {
			ss[id].Apply(keys[i], kv.Record{TS: old, Value: []byte("deleted value")})
		}
	}
	n3down.Store(true)
	for _, k := range keys { // the delete, missed by n3
		for _, id := range []string{"n1", "n2"} {
			ss[id].Apply(k, kv.Record{TS: old + 1, Tombstone: true})
		}
	}
	passAll(t, hs, "n1", "n2") // n3 is down: it runs nothing
	for _, id := range []string{"n1", "n2"} {
		if n := ss[id].SegmentSum(kv.Segment(keys[0])).Tombstones; n == 0 {
			t.Fatalf("%s purged tombstones while n3 had not confirmed them", id)
		}
	}
	n3down.Store(false)
	passAll(t, hs) // n3 gets the tombstones
	passAll(t, hs) // every replica confirms: purged
	for _, id := range []string{"n1", "n2", "n3"} {
		if n := ss[id].Records(); n != 0 {
			t.Fatalf("%s holds %d records after GC, want none", id, n)
		}
	}
	// Full restarts change nothing: nothing comes back.
	for _, s := range ss {
		s.Close()
	}
	ss, hs, _ = gcCluster(t, fs)
	passAll(t, hs)
	for _, id := range []string{"n1", "n2", "n3"} {
		for _, k := range keys {
			if _, err := ss[id].Get(k, nil); !errors.Is(err, kv.ErrNotFound) {
				t.Fatalf("%s %s after restarts: %v", id, k, err)
			}
		}
	}
}

// TestQuarantineAfterLongAbsence: a replica away longer than the grace,
// still holding a value the others deleted and purged, discards what others
// replicate when it starts, so it never pushes the value back; what it alone
// holds stays.
func TestQuarantineAfterLongAbsence(t *testing.T) {
	fs := map[string]vfs.FS{"n1": vfs.NewMem(), "n2": vfs.NewMem(), "n3": vfs.NewMem()}
	ss, hs, _ := gcCluster(t, fs)
	ss["n3"].Apply([]byte("zombie"), kv.Record{TS: 5, Value: []byte("deleted long ago")})
	if err := ss["n3"].MarkAlive(time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Parse([]byte(threeMirrors))
	if err := rejoin(ss["n3"], cfg, "n3", slog.Default()); err != nil {
		t.Fatal(err)
	}
	passAll(t, hs)
	for _, id := range []string{"n1", "n2", "n3"} {
		if _, err := ss[id].Get([]byte("zombie"), nil); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("%s holds the zombie value: %v", id, err)
		}
	}
	// A restart within the grace discards nothing.
	ss["n3"].Apply([]byte("kept"), kv.Record{TS: 5, Value: []byte("v")})
	if err := ss["n3"].MarkAlive(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := rejoin(ss["n3"], cfg, "n3", slog.Default()); err != nil {
		t.Fatal(err)
	}
	if _, err := ss["n3"].Get([]byte("kept"), nil); err != nil {
		t.Fatalf("a quick restart lost a record: %v", err)
	}
}
