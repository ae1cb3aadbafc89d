package server

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/kv/hlc"
)

// A record stamped beyond max_clock_skew (year 3000, MaxInt64) would lock
// its key forever once stored. Over the peer protocol it is refused and
// never stored; a record within the bound is stored and lifts the node's
// clock above it.
func TestPeerRefusesRecordsFromTheFuture(t *testing.T) {
	store, err := kv.Open("db", kv.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clock := hlc.New(0)
	h := newPeerHandler(store, clock, slog.Default())
	srv := eventloop.NewServer(eventloop.ServerConfig{Addr: "127.0.0.1:0", NodeID: "n1", Handler: h})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Stop(context.Background()); h.close() }()
	c := eventloop.NewClient(eventloop.ClientConfig{Addr: srv.Addr().String(), NodeID: "n2", Conns: 1})
	defer c.Close()
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
