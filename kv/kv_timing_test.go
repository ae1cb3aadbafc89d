package kv

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// Benchmarks run on the real file system: syncs are what is being measured.
// Compare the rows of one run (go test -bench . ./kv/) — synced-write cost
// drifts 25-50% between runs on these disks.

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

var benchValue = make([]byte, 100)

func BenchmarkGet100B(b *testing.B) {
	s := openBench(b)
	const n = 10000
	var key [8]byte
	for i := range n {
		binary.BigEndian.PutUint64(key[:], uint64(i))
		if _, err := s.Apply(key[:], Record{TS: 1, Value: benchValue}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var key [8]byte
		dst := make([]byte, 0, 256)
		i := 0
		for pb.Next() {
			binary.BigEndian.PutUint64(key[:], uint64(i%n))
			rec, err := s.Get(key[:], dst)
			if err != nil || len(rec.Value) != len(benchValue) {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkApplySerial is one writer, each write synced on its own.
func BenchmarkApplySerial(b *testing.B) {
	s := openBench(b)
	b.ReportAllocs()
	var key [8]byte
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(key[:], uint64(i))
		if _, err := s.Apply(key[:], Record{TS: 1, Value: benchValue}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApply64 is 64 concurrent durable writers through group commit.
func BenchmarkApply64(b *testing.B) {
	s := openBench(b)
	benchParallel64(b, func(key []byte) error {
		_, err := s.Apply(key, Record{TS: 1, Value: benchValue})
		return err
	})
}

// BenchmarkApply64Large is 64 concurrent durable writers of 180 KiB values.
func BenchmarkApply64Large(b *testing.B) {
	s := openBench(b)
	big := make([]byte, 180<<10)
	for i := range big {
		big[i] = byte(i * 7919 >> 3)
	}
	b.SetBytes(int64(len(big)))
	benchParallel64(b, func(key []byte) error {
		_, err := s.Apply(key, Record{TS: 1, Value: big})
		return err
	})
}

// BenchmarkPebbleSync64 is the same load straight into Pebble (Set + Sync
// per write, no LWW read): what Pebble's own commit pipeline coalesces.
func BenchmarkPebbleSync64(b *testing.B) {
	s := openBench(b)
	benchParallel64(b, func(key []byte) error {
		return s.db.Set(key, benchValue, pebble.Sync)
	})
}

// BenchmarkPebbleSyncSerial is the single synced writer with Pebble alone.
func BenchmarkPebbleSyncSerial(b *testing.B) {
	s := openBench(b)
	var key [8]byte
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(key[:], uint64(i))
		if err := s.db.Set(key[:], benchValue, pebble.Sync); err != nil {
			b.Fatal(err)
		}
	}
}

func benchParallel64(b *testing.B, write func(key []byte) error) {
	b.Helper()
	b.ReportAllocs()
	var next atomic.Uint64
	b.SetParallelism(32) // 2 cores here -> 64 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var key [8]byte
		for pb.Next() {
			binary.BigEndian.PutUint64(key[:], next.Add(1))
			if err := write(key[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCompressInto measures the compression step of a write on 180 KiB
// values: what it costs and what it saves (ratio = stored/original) for
// text-like data, and what the entropy estimate costs on random data, which
// is stored as is.
func BenchmarkCompressInto(b *testing.B) {
	text := make([]byte, 0, 180<<10)
	for i := 0; len(text) < 180<<10; i++ {
		text = fmt.Appendf(text, "song %d by artist %d, %d plays, tags: rock, live, %d\n", i, i%97, i*31%1000, i%13)
	}
	random := make([]byte, 180<<10)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	for _, c := range []struct {
		name string
		v    []byte
	}{{"text", text[:180<<10]}, {"random", random}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.v)))
			var dst []byte
			stored := len(c.v)
			for b.Loop() {
				if out := compressInto(dst, c.v); out != nil {
					dst, stored = out, len(out)
				}
			}
			b.ReportMetric(float64(stored)/float64(len(c.v)), "ratio")
		})
	}
}

// BenchmarkApplyAsync keeps a fixed number of ApplyAsync writes in flight,
// as a replication stream over the peer protocol does, on the real disk.
func BenchmarkApplyAsync(b *testing.B) {
	for _, inflight := range []int{16, 256} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			s := openBench(b)
			b.ReportAllocs()
			overwrite(b, s, inflight, 10000, benchValue)
		})
	}
}

// overwrite writes b.N records of value with inflight ApplyAsync writes in
// flight, over keys keys in turn, each newer than the last.
func overwrite(b *testing.B, s *Store, inflight, keys int, value []byte) {
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		wg.Add(1)
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], uint64(i%keys))
		s.ApplyAsync(key[:], Record{TS: int64(i + 1), Value: value}, func(Result, error) { <-sem; wg.Done() })
	}
	wg.Wait()
}

// BenchmarkOverwriteLarge overwrites 2,000 keys of 180 KiB (random bytes,
// so stored as they are) with 16 ApplyAsync writes in flight, on the real
// disk: each write competes with a stored record that, once memtables have
// flushed, sits in an sstable. Finding it through the index entry instead of
// the record spares reading the old value back.
func BenchmarkOverwriteLarge(b *testing.B) {
	s := openBench(b)
	big := make([]byte, 180<<10)
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	b.SetBytes(int64(len(big)))
	overwrite(b, s, 16, 2000, big)
}

// BenchmarkOverwriteUnsynced overwrites 10,000 keys of 100 B with 256
// ApplyAsync writes in flight and no fsync: the CPU of a replica's write
// path (the last-write-wins decision, the batch, the memtable), which the
// synced benchmarks hide behind the disk.
func BenchmarkOverwriteUnsynced(b *testing.B) {
	s, err := Open(b.TempDir(), Options{Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	b.ReportAllocs()
	overwrite(b, s, 256, 10000, benchValue)
}

// BenchmarkStatLarge stats 500 keys of 180 KiB (random bytes, in blob
// files once flushed): a read quorum's second replica answers a Stat, and
// its cost must not grow with the value.
func BenchmarkStatLarge(b *testing.B) {
	s, err := Open(b.TempDir(), Options{Sync: SyncNone, CacheBytes: 8 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	big := make([]byte, 180<<10)
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	var key [8]byte
	for i := range 500 {
		binary.BigEndian.PutUint64(key[:], uint64(i))
		if _, err := s.Apply(key[:], Record{TS: 1, Value: big}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(key[:], uint64(i%500))
		if _, err := s.Stat(key[:]); err != nil {
			b.Fatal(err)
		}
	}
}
