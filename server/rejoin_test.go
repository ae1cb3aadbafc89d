package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/kv/hlc"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/configsource"
)

// servePeerStore serves a fresh in-memory store over the peer protocol on
// 127.0.0.1 and returns it and its port.
func servePeerStore(t *testing.T, id string) (*kv.Store, int) {
	t.Helper()
	store, err := kv.Open("db", kv.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, startPeerServer(t, id, store, hlc.New(0), nil, slog.Default()).Port
}

// TestLeavingNodeDiscardsBeforeHandingOff: a node that left the
// configuration (a finished migration) while it was down restarts long
// after; its peers purged a tombstone of a key it still holds the old value
// of. It quarantines before it hands anything off (RunNode: rejoin, then
// awaitNamed), so the deleted value does not come back. Before, awaitNamed
// handed off the store first.
func TestLeavingNodeDiscardsBeforeHandingOff(t *testing.T) {
	n1, p1 := servePeerStore(t, "n1")
	n2, p2 := servePeerStore(t, "n2")
	doc := fmt.Sprintf(`
active_deployment: d
deployments:
    d:
        background_healing_interval: 1s
        tombstone_grace: 2s
        buckets:
            b1: {n1: [127.0.0.1, 19001, %d], n2: [127.0.0.1, 19002, %d]}
`, p1, p2)
	dir := t.TempDir()
	path := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	key := []byte("zombie")
	old := time.Now().Add(-time.Hour).UnixMicro()
	// The delete reached the current owners; n0 (down, leaving) missed it.
	for _, s := range []*kv.Store{n1, n2} {
		s.Apply(key, kv.Record{TS: old, Value: []byte("deleted value")})
		s.Apply(key, kv.Record{TS: old + 1, Tombstone: true})
	}
	// The owners GC the tombstone: every current replica holds it.
	ss := storeSet{"n1": n1, "n2": n2}
	h1, _ := ss.healerFor(t, "n1", doc)
	if _, err := h1.pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, s := range ss {
		if _, err := s.Get(key, nil); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("%s: tombstone not purged: %v", id, err)
		}
	}
	// n0: the old value, last alive an hour ago (far past the grace).
	n0, err := kv.Open("db", kv.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer n0.Close()
	n0.Apply(key, kv.Record{TS: old, Value: []byte("deleted value")})
	// It last ran as the third mirror of b1.
	withN0 := strings.Replace(doc, "b1: {", "b1: {n0: [127.0.0.1, 19000, 19100], ", 1)
	cfg0, err := config.Parse([]byte(withN0))
	if err != nil {
		t.Fatal(err)
	}
	rememberPlacement(n0, cfg0, slog.Default())
	n0.MarkAlive(time.Now().Add(-time.Hour))

	// RunNode's order: rejoin, then awaitNamed.
	src, cfg2, err := configsource.Open(context.Background(), configsource.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := rejoin(n0, cfg2, "n0", slog.Default()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := awaitNamed(ctx, NodeConfig{ID: "n0"}, src, cfg2, n0, peerAuth{}, slog.Default()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("awaitNamed: %v, want to wait until the context ends", err)
	}
	if _, err := n0.Get(key, nil); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("n0 kept the value it held without replicating it: %v", err)
	}
	for id, s := range ss {
		if rec, err := s.Get(key, nil); err == nil {
			t.Errorf("%s holds the deleted key again: %q ts=%d tombstone=%v", id, rec.Value, rec.TS, rec.Tombstone)
		}
	}
}

// TestWholeClusterRestartAfterGraceKeepsData: the whole cluster is stopped
// for longer than tombstone_grace (a maintenance window, a power outage) and
// started again with the configuration it ran with. No tombstone of theirs
// could be purged meanwhile (every replica must confirm it), so the nodes
// keep what they hold. Before, each discarded every record another node
// also replicates, expecting anti-entropy to refill it from them: all 100
// acknowledged writes were gone.
func TestWholeClusterRestartAfterGraceKeepsData(t *testing.T) {
	fs := map[string]vfs.FS{"n1": vfs.NewMem(), "n2": vfs.NewMem(), "n3": vfs.NewMem()}
	ss, _, _ := gcCluster(t, fs)
	cfg, _ := config.Parse([]byte(threeMirrors))
	// First start: each node records the configuration it runs with.
	for _, id := range []string{"n1", "n2", "n3"} {
		if err := rejoin(ss[id], cfg, id, slog.Default()); err != nil {
			t.Fatal(err)
		}
	}
	c, err := NewCluster(cfg, ClusterConfig{Replica: func(n config.Node) Replica { return localReplica{ss[n.ID]} }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 100 {
		key := fmt.Appendf(nil, "k%03d", i)
		if _, err := c.Apply(key, kv.Record{TS: time.Now().UnixMicro(), Value: key}, httpproxy.AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	// Shutdown: each node's last mark (markAlive at exit) is an hour ago.
	for _, id := range []string{"n1", "n2", "n3"} {
		ss[id].MarkAlive(time.Now().Add(-time.Hour))
	}
	// Restart: RunNode calls rejoin on each node.
	for _, id := range []string{"n1", "n2", "n3"} {
		if err := rejoin(ss[id], cfg, id, slog.Default()); err != nil {
			t.Fatal(err)
		}
	}
	lost := 0
	for i := range 100 {
		key := fmt.Appendf(nil, "k%03d", i)
		if _, err := c.Get(key, nil); err != nil {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of 100 acknowledged writes lost after a full-cluster restart; records held: n1=%d n2=%d n3=%d",
			lost, ss["n1"].Records(), ss["n2"].Records(), ss["n3"].Records())
	}
}

// TestMayHaveMissedPurge: which records a node away for long discards, by
// whether it replicates the key under the configuration it last ran with and
// the one it starts with, and whether another node replicates it now.
func TestMayHaveMissedPurge(t *testing.T) {
	const (
		mirrors = `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
`
		n2Only = `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n2: [127.0.0.1, 9002, 9102]}
`
		n1Only = `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101]}
`
	)
	topo := func(doc string) *topology {
		cfg, err := config.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		top, err := newTopology(cfg, "n1", func(config.Node) Replica { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return top
	}
	for _, tc := range []struct {
		name      string
		last, now string // "" last: unknown
		discard   bool
	}{
		{"replicated under both", mirrors, mirrors, false},
		{"last configuration unknown", "", mirrors, true},
		{"not replicated when it left", n2Only, mirrors, true},
		{"not replicated now", mirrors, n2Only, true},
		{"the only replica now", n2Only, n1Only, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var last *topology
			if tc.last != "" {
				last = topo(tc.last)
			}
			var rt route
			if got := mayHaveMissedPurge([]byte("k"), topo(tc.now), last, &rt); got != tc.discard {
				t.Errorf("discard %v, want %v", got, tc.discard)
			}
		})
	}
}

// TestAwaitNamedStartsWithTheNewestConfiguration: configurations that arrive
// while a node not yet named hands off what it holds are all taken in; the
// node starts with the newest, which the source already counts as current.
// Before, awaitNamed kept only the first that named the node: given v2 and
// then v3 during one hand-off pass, it started with v2, and the node's later
// Watch, asking for changes since v3, never applied v3.
func TestAwaitNamedStartsWithTheNewestConfiguration(t *testing.T) {
	n1, p1 := servePeerStore(t, "n1")
	_, p2 := servePeerStore(t, "n2")
	doc := func(withN0 bool, grace string) string {
		n0 := ""
		if withN0 {
			n0 = "n0: [127.0.0.1, 19000, 19100], "
		}
		return fmt.Sprintf(`
active_deployment: d
deployments:
    d:
        tombstone_grace: %s
        buckets:
            b1: {%sn1: [127.0.0.1, 19001, %d], n2: [127.0.0.1, 19002, %d]}
`, grace, n0, p1, p2)
	}
	path := filepath.Join(t.TempDir(), "cfg.yaml")
	write := func(s string) {
		if err := os.WriteFile(path+".tmp", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write(doc(false, "10d"))
	src, cfg, err := configsource.Open(context.Background(), configsource.Options{File: path, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Enough records that one hand-off pass outlasts both edits.
	n0, err := kv.Open("db", kv.Options{FS: vfs.NewMem(), Sync: kv.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer n0.Close()
	now := time.Now().UnixMicro()
	for i := range 20_000 {
		if _, err := n0.Apply(fmt.Appendf(nil, "k%06d", i), kv.Record{TS: now, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		cfg *config.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := awaitNamed(t.Context(), NodeConfig{ID: "n0"}, src, cfg, n0, peerAuth{}, slog.Default())
		done <- result{c, err}
	}()
	waitFor(t, func() bool { return n1.Records() > 0 }) // the hand-off pass runs
	v2, v3 := doc(true, "10d"), doc(true, "11d")
	write(v2)
	time.Sleep(100 * time.Millisecond)
	write(v3)
	want, _ := config.Parse([]byte(v3))
	var res result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("awaitNamed did not return")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.cfg.Version != want.Version {
		t.Fatalf("awaitNamed returned %s, want the newest, %s", res.cfg.Version, want.Version)
	}
}
