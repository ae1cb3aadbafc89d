package server

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

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
