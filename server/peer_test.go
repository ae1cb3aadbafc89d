package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/internal/logbuf"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/kv/hlc"
	"github.com/tako-kv/tako/server/config"
)

// A record stamped beyond max_clock_skew (year 3000, MaxInt64) would lock
// its key forever once stored. Over the peer protocol it is refused and
// never stored; a record within the bound is stored and lifts the node's
// clock above it.
// servePeer serves a fresh in-memory store as node n1 over the peer
// protocol on 127.0.0.1 and returns it and a client (node n2) of it; all
// are closed at the end of the test.
func servePeer(t *testing.T, clock *hlc.Clock, owns ownership, log *slog.Logger) (*kv.Store, *eventloop.Client) {
	t.Helper()
	store, err := kv.Open("db", kv.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	addr := startPeerServer(t, "n1", store, clock, owns, log)
	c := eventloop.NewClient(eventloop.ClientConfig{Addr: addr.String(), NodeID: "n2", Conns: 1})
	t.Cleanup(func() { c.Close() })
	return store, c
}

// startPeerServer serves store as node id over the peer protocol on
// 127.0.0.1 until the end of the test and returns its address.
func startPeerServer(t *testing.T, id string, store *kv.Store, clock *hlc.Clock, owns ownership, log *slog.Logger) *net.TCPAddr {
	t.Helper()
	h := newPeerHandler(store, clock, owns, log)
	srv := eventloop.NewServer(eventloop.ServerConfig{Addr: "127.0.0.1:0", NodeID: id, Handler: h})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()); h.close() })
	return srv.Addr().(*net.TCPAddr)
}

func TestPeerRefusesRecordsFromTheFuture(t *testing.T) {
	clock := hlc.New(0)
	store, c := servePeer(t, clock, nil, slog.Default())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, ts := range []int64{32503680000000000, 1<<63 - 1, 0, -5} {
		if _, err := c.Set(ctx, []byte("k"), ts, 0, []byte("v")); err == nil {
			t.Errorf("Set at %d accepted", ts)
		}
	}
	future := time.Now().Add(time.Hour).UnixMicro()
	soon := time.Now().Add(20 * time.Second).UnixMicro()
	// One bad record refuses its whole batch.
	if _, err := c.BatchSet(ctx, []codec.Record{{Key: []byte("b"), TS: soon, Value: []byte("y")}, {Key: []byte("a"), TS: future, Value: []byte("x")}}); err == nil {
		t.Errorf("batch with a record an hour ahead accepted")
	}
	if _, err := store.Get([]byte("b"), nil); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("record of a refused batch stored: %v", err)
	}
	resp, err := c.BatchSet(ctx, []codec.Record{{Key: []byte("b"), TS: soon, Value: []byte("y")}})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.Results.At(0).Status; st != codec.StatusApplied {
		t.Errorf("batch record 20s ahead: %s", st)
	}
	resp.Release()
	for _, k := range []string{"k", "a"} {
		if _, err := store.Get([]byte(k), nil); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("refused record %q stored: %v", k, err)
		}
	}
	if ts := clock.Now(); ts <= soon {
		t.Errorf("clock stamped %d after a peer record at %d", ts, soon)
	}
}

// A node refuses a peer write of a key it replicates in no live deployment:
// the writer gets an error saying so and nothing is stored, in a Set and in
// a BatchSet (whole). Keys it owns, in the active deployment or only in the
// target one of a migration (where anti-entropy copies them to it), are
// stored; so are, until the configuration after, keys it owned in the
// previous configuration (writers still on it, when a migration finishes).
func TestPeerRefusesWritesOfKeysNotOwned(t *testing.T) {
	const deployments = `
deployments:
    old:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101]}
            b2: {n2: [127.0.0.1, 9002, 9102]}
            b3: {n3: [127.0.0.1, 9003, 9103]}
    new:
        read_repair: %s
        buckets:
            b1: {n2: [127.0.0.1, 9002, 9102]}
            b2: {n1: [127.0.0.1, 9001, 9101]}
            b3: {n4: [127.0.0.1, 9004, 9104]}
`
	clusterOf := func(head, readRepair string) (*config.Config, *Cluster) {
		t.Helper()
		cfg, err := config.Parse([]byte(head + fmt.Sprintf(deployments, readRepair)))
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCluster(cfg, ClusterConfig{Self: "n1", Replica: func(config.Node) Replica { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return cfg, c
	}
	_, cluster := clusterOf("active_deployment: old\ntarget_deployment: new\n", "yes")
	_, oldOnly := clusterOf("active_deployment: old\n", "yes")
	finished, newOnly := clusterOf("active_deployment: new\n", "yes")
	later, _ := clusterOf("active_deployment: new\n", "no")
	// Keys by where n1 holds them: in the old (active) deployment, and not
	// in the new one (leaving); only in the new (target) one; in neither.
	var leaving, target, foreign []byte
	for i := 0; i < 10000 && (leaving == nil || target == nil || foreign == nil); i++ {
		key := fmt.Appendf(nil, "key-%d", i)
		inOld, _ := oldOnly.replicates("n1", key)
		inNew, _ := newOnly.replicates("n1", key)
		switch {
		case inOld && !inNew && leaving == nil:
			leaving = key
		case inNew && !inOld && target == nil:
			target = key
		case !inOld && !inNew && foreign == nil:
			foreign = key
		}
	}
	if leaving == nil || target == nil || foreign == nil {
		t.Fatalf("keys not found: %q %q %q", leaving, target, foreign)
	}

	var logs logbuf.Buffer
	store, c := servePeer(t, hlc.New(0), func(key []byte) (bool, string) { return cluster.mayStore("n1", key) },
		slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts := time.Now().UnixMicro()
	set := func(key []byte, value string) error {
		_, err := c.Set(ctx, key, ts, 0, []byte(value))
		return err
	}

	if err := set(foreign, "x"); err == nil || !strings.Contains(err.Error(), "not an owner") {
		t.Errorf("Set of a key n1 does not own: %v, want a refusal saying why", err)
	}
	if _, err := c.BatchSet(ctx, []codec.Record{{Key: leaving, TS: ts, Value: []byte("a")}, {Key: foreign, TS: ts, Value: []byte("x")}}); err == nil {
		t.Error("a batch with a key n1 does not own was accepted")
	}
	for _, key := range [][]byte{foreign, leaving} {
		if _, err := store.Get(key, nil); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("%q of a refused write stored: %v", key, err)
		}
	}
	if err := set(leaving, "a"); err != nil {
		t.Errorf("Set of a key n1 owns in the active deployment: %v", err)
	}
	if resp, err := c.BatchSet(ctx, []codec.Record{{Key: target, TS: ts, Value: []byte("t")}}); err != nil {
		t.Errorf("BatchSet of a key n1 owns in the target deployment: %v", err)
	} else {
		resp.Release()
	}
	for key, want := range map[string]string{string(leaving): "a", string(target): "t"} {
		if rec, err := store.Get([]byte(key), nil); err != nil || string(rec.Value) != want {
			t.Errorf("%q: %q %v, want %q", key, rec.Value, err, want)
		}
	}
	if !strings.Contains(logs.String(), "refused a peer write of a key this node does not own") {
		t.Errorf("the refusal was not logged:\n%s", logs.String())
	}

	// The migration finishes: n1 no longer owns leaving, but a writer still on
	// the previous configuration may write it; one configuration later it may not.
	if err := cluster.Update(finished); err != nil {
		t.Fatal(err)
	}
	if err := set(leaving, "b"); err != nil {
		t.Errorf("Set of a key n1 owned in the previous configuration: %v", err)
	}
	if err := cluster.Update(later); err != nil {
		t.Fatal(err)
	}
	if err := set(leaving, "c"); err == nil {
		t.Error("Set of a key n1 owned two configurations ago accepted")
	}
	if err := set(target, "d"); err != nil {
		t.Errorf("Set of a key n1 owns: %v", err)
	}
}
