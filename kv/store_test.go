package kv

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func openMem(t testing.TB, fs vfs.FS) *Store {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustApply(t *testing.T, s *Store, key string, rec Record) Result {
	t.Helper()
	res, err := s.Apply([]byte(key), rec)
	if err != nil {
		t.Fatalf("apply %q: %v", key, err)
	}
	return res
}

func mustGet(t *testing.T, s *Store, key string) Record {
	t.Helper()
	rec, err := s.Get([]byte(key), nil)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return rec
}

func TestLastWriteWins(t *testing.T) {
	s := openMem(t, nil)
	defer s.Close()

	type step struct {
		rec     Record
		applied bool
		ts      int64 // current timestamp reported
	}
	f := func(name string, steps []step, want Record) {
		t.Helper()
		key := name
		for i, st := range steps {
			res := mustApply(t, s, key, st.rec)
			if res.Applied != st.applied || res.TS != st.ts {
				t.Errorf("%s step %d: got %+v, want applied=%v ts=%d", name, i, res, st.applied, st.ts)
			}
		}
		got := mustGet(t, s, key)
		if got.TS != want.TS || got.Tombstone != want.Tombstone || !bytes.Equal(got.Value, want.Value) {
			t.Errorf("%s: stored %+v, want %+v", name, got, want)
		}
	}
	v := func(ts int64, s string) Record { return Record{TS: ts, Value: []byte(s)} }
	tomb := func(ts int64) Record { return Record{TS: ts, Tombstone: true} }

	f("newer-replaces", []step{{v(10, "a"), true, 10}, {v(20, "b"), true, 20}}, v(20, "b"))
	f("older-refused", []step{{v(20, "b"), true, 20}, {v(10, "a"), false, 20}}, v(20, "b"))
	f("tie-greater-bytes-first", []step{{v(5, "z"), true, 5}, {v(5, "a"), false, 5}}, v(5, "z"))
	f("tie-greater-bytes-second", []step{{v(5, "a"), true, 5}, {v(5, "z"), true, 5}}, v(5, "z"))
	f("identical-is-current", []step{{v(5, "a"), true, 5}, {v(5, "a"), true, 5}}, v(5, "a"))
	f("tombstone-beats-older", []step{{v(10, "a"), true, 10}, {tomb(11), true, 11}, {v(10, "a"), false, 11}}, tomb(11))
	f("tombstone-wins-tie", []step{{v(7, "a"), true, 7}, {tomb(7), true, 7}, {v(7, "zz"), false, 7}}, tomb(7))
	f("newer-beats-tombstone", []step{{tomb(3), true, 3}, {v(4, "back"), true, 4}}, v(4, "back"))
	f("empty-value", []step{{v(1, ""), true, 1}}, v(1, ""))
	f("negative-ts", []step{{v(-5, "neg"), true, -5}, {v(-6, "older"), false, -5}}, v(-5, "neg"))
}

func TestNotFoundAndKeyChecks(t *testing.T) {
	s := openMem(t, nil)
	defer s.Close()
	if _, err := s.Get([]byte("nope"), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get absent: %v", err)
	}
	if _, err := s.Stat([]byte("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat absent: %v", err)
	}
	if _, err := s.Apply(nil, Record{TS: 1}); !errors.Is(err, ErrKeyEmpty) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := s.Apply(make([]byte, MaxKeyLen+1), Record{TS: 1}); !errors.Is(err, ErrKeyTooLong) {
		t.Fatalf("long key: %v", err)
	}
	long := bytes.Repeat([]byte{0xff}, MaxKeyLen)
	if _, err := s.Apply(long, Record{TS: 1, Value: []byte("x")}); err != nil {
		t.Fatalf("max key: %v", err)
	}
	m, err := s.Stat(long)
	if err != nil || m.TS != 1 || m.Tombstone {
		t.Fatalf("stat max key: %+v %v", m, err)
	}
}

func TestCompressionRoundTrip(t *testing.T) {
	s := openMem(t, nil)
	defer s.Close()
	text := bytes.Repeat([]byte("tako stores keys and values; "), 4000)
	random := make([]byte, 180<<10)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	for name, val := range map[string][]byte{"text": text, "random": random, "small": []byte("x")} {
		mustApply(t, s, name, Record{TS: 1, Value: val})
		if got := mustGet(t, s, name); !bytes.Equal(got.Value, val) {
			t.Errorf("%s: value differs after round trip (%d vs %d bytes)", name, len(got.Value), len(val))
		}
	}
	if c := compressInto(nil, text); c == nil || len(c) > len(text)/4 {
		t.Errorf("text did not compress well: %d of %d", len(c), len(text))
	}
	if c := compressInto(nil, random); c != nil {
		t.Errorf("random data stored compressed")
	}
}

func TestScanOrderAndBounds(t *testing.T) {
	s := openMem(t, nil)
	defer s.Close()
	for i := range 20 {
		mustApply(t, s, fmt.Sprintf("k%02d", i), Record{TS: int64(i + 1), Value: []byte{byte(i)}})
	}
	mustApply(t, s, "k05", Record{TS: 100, Tombstone: true})
	var keys []string
	err := s.Scan([]byte("k03"), []byte("k08"), func(k []byte, r Record) error {
		keys = append(keys, fmt.Sprintf("%s:%v", k, r.Tombstone))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[k03:false k04:false k05:true k06:false k07:false]"
	if fmt.Sprint(keys) != want {
		t.Fatalf("scan = %v, want %s", keys, want)
	}
	// ScanMeta sees the same records, without their values.
	var metas []string
	err = s.ScanMeta([]byte("k03"), []byte("k08"), func(k []byte, m Meta) error {
		metas = append(metas, fmt.Sprintf("%s:%v", k, m.Tombstone))
		return nil
	})
	if err != nil || fmt.Sprint(metas) != want {
		t.Fatalf("scan meta = %v %v, want %s", metas, err, want)
	}
	n := 0
	stop := errors.New("stop")
	if err := s.ScanMeta(nil, nil, func([]byte, Meta) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("stop scan meta: n=%d err=%v", n, err)
	}
	n = 0
	if err := s.Scan(nil, nil, func([]byte, Record) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("stop scan: n=%d err=%v", n, err)
	}
}

func TestApplyAsyncAndClose(t *testing.T) {
	s := openMem(t, nil)
	key := []byte("async")
	val := []byte("value")
	done := make(chan Result, 1)
	s.ApplyAsync(key, Record{TS: 9, Value: val}, func(r Result, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- r
	})
	copy(val, "XXXXX") // the store must have copied the value
	if r := <-done; !r.Applied || r.TS != 9 {
		t.Fatalf("async result %+v", r)
	}
	if got := mustGet(t, s, "async"); string(got.Value) != "value" {
		t.Fatalf("async stored %q", got.Value)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(key, Record{TS: 10}); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}
}

// TestConcurrentWritersDurable runs many writers at once, some racing on the
// same keys, and checks after a reopen that every acknowledged write is there
// and that each contended key holds its newest write.
func TestConcurrentWritersDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 64, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Appendf(nil, "w%02d-%03d", w, i)
				if _, err := s.Apply(key, Record{TS: int64(i + 1), Value: key}); err != nil {
					t.Error(err)
					return
				}
				// Contended key: writer w writes timestamp w*each+i.
				if _, err := s.Apply([]byte("hot"), Record{TS: int64(w*each + i), Value: key}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := 0
	err = s.Scan([]byte("w"), []byte("x"), func(k []byte, r Record) error {
		if !bytes.Equal(k, r.Value) {
			return fmt.Errorf("key %q holds %q", k, r.Value)
		}
		count++
		return nil
	})
	if err != nil || count != writers*each {
		t.Fatalf("after reopen: %d records, err %v", count, err)
	}
	if hot := mustGet(t, s, "hot"); hot.TS != writers*each-1 {
		t.Fatalf("hot key ts %d, want %d", hot.TS, writers*each-1)
	}
}

func TestNewerIsTotalOrder(t *testing.T) {
	recs := []Record{{TS: 1, Value: []byte("a")}, {TS: 1, Value: []byte("b")}, {TS: 1, Tombstone: true},
		{TS: 2}, {TS: 2, Value: []byte("a")}, {TS: 0, Value: []byte("zz")}}
	for _, a := range recs {
		if Newer(a, a) {
			t.Errorf("Newer(%v, itself)", a)
		}
		for _, b := range recs {
			same := a.TS == b.TS && a.Tombstone == b.Tombstone && bytes.Equal(a.Value, b.Value)
			if !same && Newer(a, b) == Newer(b, a) {
				t.Errorf("Newer not antisymmetric for %v, %v", a, b)
			}
		}
	}
}

func TestDrop(t *testing.T) {
	s := openMem(t, nil)
	defer s.Close()
	mustApply(t, s, "k", Record{TS: 5, Value: []byte("v")})
	f := func(rec Record, want bool) {
		t.Helper()
		got, err := s.Drop([]byte("k"), rec)
		if err != nil || got != want {
			t.Fatalf("Drop(%+v) = %v, %v; want %v", rec, got, err, want)
		}
	}
	f(Record{TS: 4, Value: []byte("v")}, false) // a different (older) record is kept
	f(Record{TS: 5, Tombstone: true}, false)    // same timestamp, other kind
	f(Record{TS: 5, Value: []byte("u")}, false) // same timestamp, other value
	mustGet(t, s, "k")
	f(Record{TS: 5, Value: []byte("v")}, true)
	if _, err := s.Get([]byte("k"), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after drop: %v", err)
	}
	f(Record{TS: 5, Value: []byte("v")}, false) // nothing left to drop
}

// TestDiskFullRefusesValues: below MinFreeBytes of free space, values are
// refused with ErrDiskFull, and so are tombstones that would only add bytes
// (of a key holding nothing or a tombstone), while reads, tombstones over
// stored values and drops go on.
func TestDiskFullRefusesValues(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply([]byte("k"), Record{TS: 1, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply([]byte("gone"), Record{TS: 1, Tombstone: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// No file system has 4 EiB free: the guard sees a full disk.
	if s, err = Open(dir, Options{MinFreeBytes: 1 << 62}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	full := func(what string, key string, rec Record) {
		t.Helper()
		if _, err := s.Apply([]byte(key), rec); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("%s on a full disk: %v, want ErrDiskFull", what, err)
		}
		done := make(chan error, 1)
		s.ApplyAsync([]byte(key), rec, func(_ Result, err error) { done <- err })
		if err := <-done; !errors.Is(err, ErrDiskFull) {
			t.Fatalf("async %s on a full disk: %v, want ErrDiskFull", what, err)
		}
	}
	full("value", "k", Record{TS: 2, Value: []byte("v")})
	full("tombstone of a new key", "new", Record{TS: 2, Tombstone: true})
	full("tombstone over a tombstone", "gone", Record{TS: 2, Tombstone: true})
	if _, err := s.Get([]byte("k"), nil); err != nil {
		t.Fatalf("read on a full disk: %v", err)
	}
	if _, err := s.Apply([]byte("k"), Record{TS: 2, Tombstone: true}); err != nil {
		t.Fatalf("tombstone over a value on a full disk: %v", err)
	}
	if ok, err := s.Drop([]byte("k"), Record{TS: 2, Tombstone: true}); err != nil || !ok {
		t.Fatalf("drop on a full disk: %v %v", ok, err)
	}
}

// TestApplyAsyncGroups: many async writes, racing on a few hot keys and
// committed in groups, all complete and leave each key at its newest write.
func TestApplyAsyncGroups(t *testing.T) {
	s := openMem(t, nil)
	defer s.Close()
	const writers, each, hot = 32, 200, 7
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	for w := range writers {
		for i := range each {
			wg.Add(1)
			ts := int64(w*each + i)
			key := fmt.Appendf(nil, "hot%d", ts%hot)
			s.ApplyAsync(key, Record{TS: ts, Value: key}, func(_ Result, err error) {
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
				wg.Done()
			})
		}
	}
	wg.Wait()
	if failed != nil {
		t.Fatal(failed)
	}
	for k := range hot {
		want := int64(writers*each - 1)
		for want%hot != int64(k) {
			want--
		}
		if got := mustGet(t, s, fmt.Sprintf("hot%d", k)); got.TS != want {
			t.Errorf("hot%d at %d, want %d", k, got.TS, want)
		}
	}
}

// TestStats: the store's figures follow its writes (synced writes count WAL
// syncs and bytes) and report the file system's free space.
func TestStats(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Sync: SyncAlways, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := s.Stats()
	value := make([]byte, 1000)
	for i := range 10 {
		crand.Read(value) // incompressible
		if _, err := s.Apply(fmt.Appendf(nil, "k%d", i), Record{TS: 1, Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	after := s.Stats()
	if after.Records != before.Records+10 {
		t.Errorf("records %d, then %d after 10 writes", before.Records, after.Records)
	}
	if after.WALSyncs <= before.WALSyncs || after.WALBytesIn < before.WALBytesIn+10000 {
		t.Errorf("WAL syncs %d -> %d, bytes in %d -> %d after 10 synced 1000-byte writes",
			before.WALSyncs, after.WALSyncs, before.WALBytesIn, after.WALBytesIn)
	}
	if after.FreeBytes <= 0 || after.MinFreeBytes != 1 || after.DiskFull || after.DiskUsedBytes == 0 {
		t.Errorf("free %d, min free %d, full %v, disk used %d", after.FreeBytes, after.MinFreeBytes, after.DiskFull, after.DiskUsedBytes)
	}
}
