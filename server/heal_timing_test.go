package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/config"
)

// BenchmarkAntiEntropyPass: one pass between two mirrors of 1M keys (100 B
// values, in-memory file systems, so this is the CPU and bytes of the
// comparison, not the disk), with 0 and with 1,000 differences. It reports
// the bytes the pass moved.
func BenchmarkAntiEntropyPass(b *testing.B) {
	const keys = 1_000_000
	for _, diffs := range []int{0, 1000} {
		b.Run(fmt.Sprintf("diffs=%d", diffs), func(b *testing.B) {
			stores := map[string]*kv.Store{}
			for _, id := range []string{"n1", "n2"} {
				s, err := kv.Open("db", kv.Options{FS: vfs.NewMem(), NoCompression: true})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				stores[id] = s
			}
			val := make([]byte, 100)
			size := 0
			for i := range keys {
				key := fmt.Appendf(nil, "key-%07d", i)
				size += len(key) + len(val)
				for _, s := range stores {
					done := make(chan struct{})
					s.ApplyAsync(key, kv.Record{TS: int64(i + 1), Value: val}, func(kv.Result, error) { close(done) })
					if i%4096 == 0 {
						<-done // keep the queue from filling
					}
				}
			}
			cfg, err := config.Parse([]byte(`
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
`))
			if err != nil {
				b.Fatal(err)
			}
			c, err := NewCluster(cfg, ClusterConfig{Self: "n1", Replica: func(n config.Node) Replica { return localReplica{stores[n.ID]} }})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			h := newHealer(stores["n1"], c, slog.Default())
			h.minPace = 0
			if _, err := h.pass(context.Background()); err != nil { // settle the async writes' stragglers
				b.Fatal(err)
			}
			b.ResetTimer()
			moved, round := int64(0), int64(0)
			for b.Loop() {
				b.StopTimer()
				round++
				for i := range diffs {
					key := fmt.Appendf(nil, "key-%07d", i*(keys/max(diffs, 1)))
					stores["n1"].Apply(key, kv.Record{TS: 1<<50 + round, Value: []byte("differs")})
				}
				before := h.exchanged.Load()
				b.StartTimer()
				st, err := h.pass(context.Background())
				if err != nil || st.pushed != diffs {
					b.Fatalf("pass: %+v %v", st, err)
				}
				moved = h.exchanged.Load() - before
			}
			b.ReportMetric(float64(moved), "bytes/pass")
			b.ReportMetric(100*float64(moved)/float64(size), "%data/pass")
		})
	}
}

// BenchmarkMigrationCopy: a migration's copy (node n1's anti-entropy pushing
// 100 MB to the target's n2, on disk with synced writes) while 16 writers
// keep writing 100 B values to n1. It reports the copy's MB/s and the
// writers' throughput without and with the copy running, side by side. Run
// it with -benchtime 1x: a second copy has nothing left to copy.
func BenchmarkMigrationCopy(b *testing.B) {
	open := func(dir string) *kv.Store {
		s, err := kv.Open(dir, kv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	n1, n2 := open(b.TempDir()), open(b.TempDir())
	defer n1.Close()
	defer n2.Close()
	val := make([]byte, 1<<10)
	for i := range val {
		val[i] = byte(i * 7919 >> 3)
	}
	const preload = 100_000
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < preload; i += 16 {
				n1.Apply(fmt.Appendf(nil, "pre-%06d", i), kv.Record{TS: 1, Value: val})
			}
		}()
	}
	wg.Wait()
	cfg, err := config.Parse([]byte(`
active_deployment: old
target_deployment: new
deployments:
    old:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101]}
    new:
        buckets:
            b1: {n2: [127.0.0.1, 9002, 9102]}
`))
	if err != nil {
		b.Fatal(err)
	}
	stores := map[string]*kv.Store{"n1": n1, "n2": n2}
	c, err := NewCluster(cfg, ClusterConfig{Self: "n1", Replica: func(n config.Node) Replica { return localReplica{stores[n.ID]} }})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	h := newHealer(n1, c, slog.Default())
	// foreground writes to n1 for d and returns ops/s.
	foreground := func(d time.Duration) float64 {
		var ops atomic.Int64
		stop := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				small := make([]byte, 100)
				for i := 0; time.Now().Before(stop); i++ {
					n1.Apply(fmt.Appendf(nil, "fg-%d-%d", w, i), kv.Record{TS: 2, Value: small})
					ops.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(ops.Load()) / d.Seconds()
	}
	b.ResetTimer()
	for b.Loop() {
		base := foreground(2 * time.Second)
		before := h.exchanged.Load()
		began := time.Now()
		copied := make(chan healStats, 1)
		go func() {
			st, err := h.pass(context.Background())
			if err != nil {
				b.Error(err)
			}
			copied <- st
		}()
		during := foreground(2 * time.Second)
		st := <-copied
		took := time.Since(began)
		if st.pushed < preload {
			b.Fatalf("copied %d of %d", st.pushed, preload)
		}
		b.ReportMetric(float64(h.exchanged.Load()-before)/took.Seconds()/1e6, "copy-MB/s")
		b.ReportMetric(took.Seconds(), "copy-s")
		b.ReportMetric(base, "fg-ops/s-alone")
		b.ReportMetric(during, "fg-ops/s-copying")
		b.ReportMetric(100*(1-during/base), "fg-drop-%")
	}
}
