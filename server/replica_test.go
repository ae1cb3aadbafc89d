package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/kv/hlc"
)

// Every Replica implementation, and the test double, behaves the same.
func TestReplicaConformance(t *testing.T) {
	impls := map[string]func(t *testing.T) Replica{
		"local": func(t *testing.T) Replica { return localReplica{openMemStore(t)} },
		"peer": func(t *testing.T) Replica {
			store := openMemStore(t)
			h := newPeerHandler(store, hlc.New(0), nil, slog.Default())
			srv := eventloop.NewServer(eventloop.ServerConfig{Addr: "127.0.0.1:0", NodeID: "n1", Handler: h})
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			c := eventloop.NewClient(eventloop.ClientConfig{Addr: srv.Addr().String(), NodeID: "n2", Conns: 1})
			t.Cleanup(func() { c.Close(); srv.Stop(context.Background()); h.close() })
			return peerReplica{c}
		},
		"mem (test double)": func(*testing.T) Replica { return &memReplica{recs: map[string]kv.Record{}} },
	}
	for name, open := range impls {
		t.Run(name, func(t *testing.T) { conformance(t, open(t)) })
	}
}

func openMemStore(t *testing.T) *kv.Store {
	t.Helper()
	s, err := kv.Open("db", kv.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func conformance(t *testing.T, r Replica) {
	ctx := context.Background()
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if _, err := r.Get(ctx, []byte("a"), nil); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("get absent: %v", err)
	}
	if _, err := r.Stat(ctx, []byte("a")); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("stat absent: %v", err)
	}
	apply := func(key string, rec kv.Record, want kv.Result) {
		t.Helper()
		got, err := r.Apply(ctx, []byte(key), rec)
		if err != nil || got != want {
			t.Fatalf("apply %s %+v: %+v %v, want %+v", key, rec, got, err, want)
		}
	}
	apply("a", kv.Record{TS: 10, Value: []byte("ten")}, kv.Result{TS: 10, Applied: true})
	apply("a", kv.Record{TS: 5, Value: []byte("five")}, kv.Result{TS: 10})                // older loses
	apply("a", kv.Record{TS: 10, Value: []byte("tea")}, kv.Result{TS: 10})                // tie: smaller bytes lose
	apply("a", kv.Record{TS: 10, Value: []byte("two")}, kv.Result{TS: 10, Applied: true}) // tie: greater bytes win
	apply("b", kv.Record{TS: 3, Value: []byte("b")}, kv.Result{TS: 3, Applied: true})
	apply("b", kv.Record{TS: 3, Tombstone: true}, kv.Result{TS: 3, Applied: true}) // tombstone beats a value at a tie
	rec, err := r.Get(ctx, []byte("a"), make([]byte, 0, 1))
	if err != nil || rec.TS != 10 || string(rec.Value) != "two" || rec.Tombstone {
		t.Fatalf("get a: %+v %v", rec, err)
	}
	if m, err := r.Stat(ctx, []byte("b")); err != nil || m != (kv.Meta{TS: 3, Tombstone: true}) {
		t.Fatalf("stat b: %+v %v", m, err)
	}
	res, err := r.ApplyBatch(ctx, []codec.Record{{Key: []byte("c"), TS: 1, Value: []byte("c")}, {Key: []byte("a"), TS: 1, Value: []byte("old")}})
	if err != nil || len(res) != 2 || res[0] != (kv.Result{TS: 1, Applied: true}) || res[1] != (kv.Result{TS: 10}) {
		t.Fatalf("apply batch: %+v %v", res, err)
	}
	// Segment sums and listings agree with the records.
	seg := kv.Segment([]byte("a"))
	want := kv.RecordHash([]byte("a"), kv.Record{TS: 10, Value: []byte("two")})
	var found []string
	err = r.SegmentRecords(ctx, seg, func(key []byte, m kv.Meta, hash uint64) {
		found = append(found, string(key))
		if string(key) == "a" && (m != kv.Meta{TS: 10} || hash != want) {
			t.Errorf("segment record a: %+v %x, want hash %x", m, hash, want)
		}
	})
	if err != nil || !slices.Contains(found, "a") {
		t.Fatalf("segment %d records: %v %v", seg, found, err)
	}
	var x uint64
	for _, k := range []string{"a", "b", "c"} {
		if kv.Segment([]byte(k)) == seg {
			rec, _ := r.Get(ctx, []byte(k), nil)
			x ^= kv.RecordHash([]byte(k), rec)
		}
	}
	sums, err := r.Sums(ctx, 0, []codec.SegmentRange{{Lo: uint16(seg), Hi: uint16(seg)}})
	if err != nil || len(sums) != 1 || sums[0] != (codec.Sum{Group: uint16(seg), Count: uint64(len(found)), XOR: x}) {
		t.Fatalf("sums of segment %d: %+v %v, want count %d xor %x", seg, sums, err, len(found), x)
	}
	all, err := r.Sums(ctx, 16, []codec.SegmentRange{{Lo: 0, Hi: 65535}})
	if err != nil || len(all) != 1 || all[0].Count != 3 {
		t.Fatalf("sums of every segment: %+v %v", all, err)
	}
	// Key listings page through the range in order, tombstones included.
	keys := func(start, end string, limit int, want, wantNext string) {
		t.Helper()
		recs, next, err := r.Keys(ctx, []byte(start), []byte(end), limit)
		var got []string
		for _, rec := range recs {
			got = append(got, fmt.Sprintf("%s@%d/%d", rec.Key, rec.TS, rec.Flags))
			if len(rec.Value) != 0 {
				t.Errorf("keys %q..%q: %s carries a value", start, end, rec.Key)
			}
		}
		if err != nil || strings.Join(got, " ") != want || string(next) != wantNext || (next == nil) != (wantNext == "") {
			t.Fatalf("keys %q..%q limit %d: %v next %q %v, want %s next %q", start, end, limit, got, next, err, want, wantNext)
		}
	}
	keys("", "", 0, "a@10/0 b@3/1 c@1/0", "")
	keys("b", "", 1, "b@3/1", "c")
	keys("a", "c", 5, "a@10/0 b@3/1", "")
	keys("d", "", 5, "", "")
}
