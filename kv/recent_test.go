package kv

import (
	"fmt"
	"testing"
)

// TestStripeRecent: entries are exact (a hash shared by another key is a
// miss), bounded, forgotten on drop.
func TestStripeRecent(t *testing.T) {
	var st stripe
	st.remember(1, []byte("a"), Meta{TS: 10}, 100)
	if m, h, ok := st.lookup(1, []byte("a")); !ok || m.TS != 10 || h != 100 {
		t.Fatalf("lookup a: %v %v %v", m, h, ok)
	}
	if _, _, ok := st.lookup(1, []byte("b")); ok {
		t.Fatal("another key with the same hash was served a's entry")
	}
	st.remember(1, []byte("a"), Meta{TS: 11, Tombstone: true}, 101)
	if m, _, ok := st.lookup(1, []byte("a")); !ok || m.TS != 11 || !m.Tombstone {
		t.Fatalf("after an overwrite: %v %v", m, ok)
	}
	st.forget(1, []byte("b")) // not the key remembered under 1: no effect
	if _, _, ok := st.lookup(1, []byte("a")); !ok {
		t.Fatal("forgetting another key dropped a")
	}
	st.forget(1, []byte("a"))
	if _, _, ok := st.lookup(1, []byte("a")); ok {
		t.Fatal("a dropped key is still remembered")
	}
	for i := range 3 * recentPerStripe {
		st.remember(uint64(i), []byte(fmt.Sprint(i)), Meta{TS: int64(i)}, 0)
	}
	if n := len(st.recent); n > recentPerStripe {
		t.Fatalf("%d entries, more than %d", n, recentPerStripe)
	}
	for i := 2 * recentPerStripe; i < 3*recentPerStripe; i++ { // the last recentPerStripe stay
		if m, _, ok := st.lookup(uint64(i), []byte(fmt.Sprint(i))); !ok || m.TS != int64(i) {
			t.Fatalf("entry %d of the last %d was evicted", i, recentPerStripe)
		}
	}
}

// TestRecentEntriesDecideLikePebble: last-write-wins decisions made from a
// stripe's entries agree with those made from Pebble — across a drop,
// evictions, and a reopened store that remembers nothing.
func TestRecentEntriesDecideLikePebble(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(key string, ts int64, want bool) {
		t.Helper()
		res, err := s.Apply([]byte(key), Record{TS: ts, Value: []byte(fmt.Sprint(ts))})
		if err != nil || res.Applied != want {
			t.Fatalf("apply %s@%d: applied %v (err %v), want %v", key, ts, res.Applied, err, want)
		}
	}
	apply("k", 20, true)
	apply("k", 15, false) // decided from the entry of the write above
	if ok, err := s.Drop([]byte("k"), Record{TS: 20, Value: []byte("20")}); err != nil || !ok {
		t.Fatalf("drop: %v %v", ok, err)
	}
	apply("k", 5, true) // the key is gone: an older write is the only record
	// recentPerStripe other keys of k's stripe evict k's entry: its record
	// stays.
	kh := keyHash([]byte("k"))
	for i, n := 0, 0; n < recentPerStripe; i++ {
		if other := fmt.Sprintf("other-%d", i); keyHash([]byte(other))%stripes == kh%stripes {
			apply(other, 1, true)
			n++
		}
	}
	st := &s.stripes[kh%stripes]
	st.Lock()
	_, _, remembered := st.lookup(kh, []byte("k"))
	st.Unlock()
	if remembered {
		t.Fatal("k's entry survived recentPerStripe writes of other keys of its stripe")
	}
	apply("k", 4, false)
	apply("k", 6, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{Sync: SyncNone}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	apply("k", 6, true) // identical record: applied, nothing written
	apply("k", 5, false)
	apply("k", 7, true)
	apply("k", 6, false)
}
