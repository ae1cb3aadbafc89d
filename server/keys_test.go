package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
)

// listAll pages through l's keys as GET /keys does, limit keys a page, and
// returns them and the sources named unanswered.
func listAll(t *testing.T, l httpproxy.Lister, limit int) ([]string, []string, error) {
	t.Helper()
	var keys, unanswered []string
	var start []byte
	for range 100000 {
		n := 0
		u, err := l.ListKeys(context.Background(), start, nil, limit+1, func(key []byte) bool {
			if n == limit {
				return false
			}
			keys = append(keys, string(key))
			n++
			return true
		})
		if err != nil {
			return keys, u, err
		}
		for _, name := range u {
			if !slices.Contains(unanswered, name) {
				unanswered = append(unanswered, name)
			}
		}
		if n < limit {
			return keys, unanswered, nil
		}
		start = append([]byte(keys[len(keys)-1]), 0)
	}
	t.Fatal("listing does not end")
	return nil, nil, nil
}

// writeKeys writes n keys named by format at every replica and returns
// them in order.
func writeKeys(t *testing.T, tc *testCluster, format string, n int) []string {
	t.Helper()
	var keys []string
	for i := range n {
		key := fmt.Sprintf(format, i)
		if _, err := tc.Apply([]byte(key), kv.Record{TS: 10, Value: []byte("v")}, httpproxy.AcksAll); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	return keys
}

func TestClusterListKeys(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	var want []string
	for i, key := range writeKeys(t, tc, "key-%04d", 600) {
		if i%7 == 0 { // deleted: not listed
			if _, err := tc.Apply([]byte(key), kv.Record{TS: 11, Tombstone: true}, httpproxy.AcksAll); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want = append(want, key)
	}
	// Replicas that disagree: the newest record decides.
	for _, c := range []struct {
		key    string
		n1, n3 kv.Record
		listed bool
	}{
		{"x-value-then-delete", kv.Record{TS: 5, Value: []byte("v")}, kv.Record{TS: 7, Tombstone: true}, false},
		{"x-delete-then-value", kv.Record{TS: 5, Tombstone: true}, kv.Record{TS: 7, Value: []byte("v")}, true},
		{"x-tie", kv.Record{TS: 5, Value: []byte("v")}, kv.Record{TS: 5, Tombstone: true}, false}, // a tombstone wins a tie
		{"x-one-replica", kv.Record{TS: 5, Value: []byte("v")}, kv.Record{}, true},
	} {
		tc.nodes["n1"].set(c.key, c.n1)
		if c.n3.TS != 0 {
			tc.nodes["n3"].set(c.key, c.n3)
		}
		if c.listed {
			want = append(want, c.key)
		}
	}
	slices.Sort(want)
	for _, limit := range []int{1, 7, 250, 1000, 10000} {
		got, unanswered, err := listAll(t, tc.Cluster, limit)
		if err != nil || len(unanswered) > 0 || !slices.Equal(got, want) {
			t.Fatalf("limit %d: %d keys (want %d), unanswered %v, %v; first differences: %v", limit, len(got), len(want), unanswered, err, firstDiff(got, want))
		}
	}

	// One mirror of a bucket down: the other still lists its keys.
	tc.nodes["n1"].setDown(true)
	got, unanswered, err := listAll(t, tc.Cluster, 100)
	if err != nil || !slices.Equal(unanswered, []string{"n1"}) || !slices.Equal(got, slices.DeleteFunc(slices.Clone(want), func(k string) bool {
		return k == "x-one-replica" // only n1 holds it
	})) {
		t.Fatalf("n1 down: %d keys, unanswered %v, %v", len(got), unanswered, err)
	}
	// A whole bucket down: its keys cannot be listed.
	tc.nodes["n2"].setDown(true)
	if _, _, err := listAll(t, tc.Cluster, 100); !errors.Is(err, httpproxy.ErrUnavailable) || !strings.Contains(err.Error(), "bucket b1") {
		t.Fatalf("b1 down: %v", err)
	}
}

// A node that stops answering in the middle of a listing is left out from
// there on; its mirror lists the rest.
func TestClusterListKeysNodeFailsMidway(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	want := writeKeys(t, tc, "key-%04d", 300)
	var got []string
	unanswered, err := tc.ListKeys(context.Background(), nil, nil, 5, func(key []byte) bool {
		got = append(got, string(key))
		if len(got) == 50 {
			tc.nodes["n4"].setDown(true)
		}
		return true
	})
	if err != nil || !slices.Equal(unanswered, []string{"n4"}) || !slices.Equal(got, want) {
		t.Fatalf("%d keys, unanswered %v, %v", len(got), unanswered, err)
	}
}

func TestLocalListKeys(t *testing.T) {
	store := openMemStore(t)
	var want []string
	for i := range 2500 {
		key := []byte(fmt.Sprintf("k%05d", i))
		rec := kv.Record{TS: 1, Value: bytes.Repeat([]byte("v"), i%100)}
		if i%3 == 0 {
			rec = kv.Record{TS: 1, Tombstone: true}
		} else {
			want = append(want, string(key))
		}
		if _, err := store.Apply(key, rec); err != nil {
			t.Fatal(err)
		}
	}
	got, unanswered, err := listAll(t, localKeys{store}, 999)
	if err != nil || unanswered != nil || !slices.Equal(got, want) {
		t.Fatalf("%d keys (want %d), %v %v; %v", len(got), len(want), unanswered, err, firstDiff(got, want))
	}
	var ranged []string
	if _, err := (localKeys{store}).ListKeys(context.Background(), []byte("k00100"), []byte("k00106"), 0, func(key []byte) bool {
		ranged = append(ranged, string(key))
		return true
	}); err != nil || strings.Join(ranged, " ") != "k00100 k00101 k00103 k00104" {
		t.Fatalf("range: %v %v", ranged, err)
	}
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d: %q, want %q", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// During a migration both deployments' nodes are listed; a target node that
// is down costs nothing while the active deployment answers.
func TestClusterListKeysMigrating(t *testing.T) {
	tc := newTestCluster(t, `
active_deployment: old
target_deployment: new
deployments:
    old:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101]}
    new:
        buckets:
            b1: {n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103]}
`)
	want := writeKeys(t, tc, "m%03d", 100)
	tc.nodes["n3"].set("only-on-target", kv.Record{TS: 1, Value: []byte("v")}) // copied there, not yet back
	want = append(want, "only-on-target")
	slices.Sort(want)
	if got, unanswered, err := listAll(t, tc.Cluster, 30); err != nil || unanswered != nil || !slices.Equal(got, want) {
		t.Fatalf("migrating: %d keys (want %d), %v %v", len(got), len(want), unanswered, err)
	}
	tc.nodes["n3"].setDown(true)
	got, unanswered, err := listAll(t, tc.Cluster, 30)
	if err != nil || !slices.Equal(unanswered, []string{"n3"}) || len(got) != len(want)-1 {
		t.Fatalf("target n3 down: %d keys, %v %v", len(got), unanswered, err)
	}
}
