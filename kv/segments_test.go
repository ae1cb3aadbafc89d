package kv

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// expectedSums recomputes every segment's summary from the records.
func expectedSums(t *testing.T, s *Store) map[int]SegmentSum {
	t.Helper()
	want := map[int]SegmentSum{}
	if err := s.Scan(nil, nil, func(key []byte, rec Record) error {
		seg := Segment(key)
		sum := want[seg]
		sum.add(RecordHash(key, rec), rec.Tombstone, 1)
		want[seg] = sum
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return want
}

func checkSums(t *testing.T, s *Store, what string) {
	t.Helper()
	want := expectedSums(t, s)
	for seg := range NumSegments {
		if got := s.SegmentSum(seg); got != want[seg] {
			t.Fatalf("%s: segment %d: %+v, want %+v", what, seg, got, want[seg])
		}
	}
	// The listing agrees with the records.
	for seg := range want {
		var sum SegmentSum
		if err := s.ScanSegment(seg, nil, func(key []byte, m Meta, h uint64) error {
			rec, err := s.Get(key, nil)
			if err != nil || rec.Meta() != m || RecordHash(key, rec) != h {
				t.Fatalf("%s: listing of %q: %+v %x, stored %+v %v", what, key, m, h, rec, err)
			}
			sum.add(h, m.Tombstone, 1)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if sum != want[seg] {
			t.Fatalf("%s: segment %d listing sums to %+v", what, seg, sum)
		}
	}
}

// The summaries follow every kind of write — new keys, overwrites, stale
// writes, ties, tombstones, drops, async groups — and survive a reopen; a
// store written before the index existed gets it built when it opens.
func TestSegmentSummaries(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() []byte { return fmt.Appendf(nil, "k%d", rng.IntN(300)) }
	for i := range 3000 {
		k := key()
		rec := Record{TS: int64(rng.IntN(50) + 1), Value: fmt.Appendf(nil, "v%d", rng.IntN(3))}
		switch rng.IntN(10) {
		case 0:
			rec = Record{TS: rec.TS, Tombstone: true}
		case 1:
			if cur, err := s.Get(k, nil); err == nil {
				if _, err := s.Drop(k, cur); err != nil {
					t.Fatal(err)
				}
			}
			continue
		case 2:
			done := make(chan struct{})
			s.ApplyAsync(k, rec, func(Result, error) { close(done) })
			<-done
			continue
		}
		if _, err := s.Apply(k, rec); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	checkSums(t, s, "after writes")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, s, "after reopen")
	// Forget the index, as a store from before it: it is rebuilt.
	if err := s.db.DeleteRange([]byte{indexPrefix}, []byte{indexPrefix + 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Delete(indexBuilt, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// And a record in the header format from before value hashes.
	legacy := make([]byte, headerLen, headerLen+3)
	putHeader(legacy, 7, 0, 0)
	if err := s.db.Set(appendDataKey(nil, []byte("legacy")), append(legacy, "old"...), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSums(t, s, "after rebuild")
	for _, rec := range []Record{{TS: 9, Value: []byte("newer")}, {TS: 9, Value: []byte("zzz")}, {TS: 10, Tombstone: true}} {
		if _, err := s.Apply([]byte("legacy"), rec); err != nil {
			t.Fatal(err)
		}
		checkSums(t, s, fmt.Sprintf("after writing %+v over a legacy record", rec))
	}
}

func BenchmarkRecordHash(b *testing.B) {
	v := make([]byte, 180<<10)
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		RecordHash([]byte("key"), Record{TS: 1, Value: v})
	}
}
