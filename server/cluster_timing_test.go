package server

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/config"
)

// benchCluster runs four nodes in process — each a store, a peer handler
// and a real eventloop server on 127.0.0.1 — and a proxy-side Cluster over
// them: two buckets of two nodes, two buckets per key, so each key has four
// replicas, as in local_cluster.yaml.
func benchCluster(b testing.TB, readRepair bool) *Cluster {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	addrs := map[string]string{}
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		store, err := kv.Open("db", kv.Options{FS: vfs.NewMem(), Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		h := newPeerHandler(store, log)
		srv := eventloop.NewServer(eventloop.ServerConfig{Addr: "127.0.0.1:0", NodeID: id, Handler: h, Logger: log})
		if err := srv.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { srv.Stop(context.Background()); h.close(); store.Close() })
		addrs[id] = srv.Addr().String()
	}
	rr := "no"
	if readRepair {
		rr = "yes"
	}
	doc := fmt.Sprintf(`
active_deployment: d
deployments:
    d:
        read_repair: %s
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 1], n2: [127.0.0.1, 9002, 2]}
            b2: {n3: [127.0.0.1, 9003, 3], n4: [127.0.0.1, 9004, 4]}
`, rr)
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		b.Fatal(err)
	}
	peers := newPeerPool("", codec.DefaultMaxFrame, log)
	b.Cleanup(peers.close)
	c, err := NewCluster(cfg, ClusterConfig{Logger: log, Replica: func(n config.Node) Replica {
		return peers.replica(config.Node{ID: n.ID, Host: "127.0.0.1", PeerPort: portOf(b, addrs[n.ID])})
	}})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func portOf(b testing.TB, addr string) int {
	var port int
	if _, err := fmt.Sscanf(addr[len("127.0.0.1:"):], "%d", &port); err != nil {
		b.Fatal(err)
	}
	return port
}

func BenchmarkClusterGet(b *testing.B) {
	for _, rr := range []bool{false, true} {
		b.Run(fmt.Sprintf("read_repair=%v", rr), func(b *testing.B) {
			c := benchCluster(b, rr)
			const keys = 1000
			for i := range keys {
				if _, err := c.Apply(fmt.Appendf(nil, "k%d", i), kv.Record{TS: 1, Value: make([]byte, 100)}, httpproxy.AcksAll); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetParallelism(32) // 64 requests in flight, as 64 HTTP connections
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := make([]byte, 0, 16)
				dst := make([]byte, 0, 256)
				i := 0
				for pb.Next() {
					key = strconv.AppendInt(append(key[:0], 'k'), int64(i%keys), 10)
					rec, err := c.Get(key, dst)
					if err != nil || len(rec.Value) != 100 {
						b.Fatal(err)
					}
					dst = rec.Value
					i++
				}
			})
		})
	}
}

func BenchmarkClusterApply(b *testing.B) {
	c := benchCluster(b, true)
	val := make([]byte, 100)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := make([]byte, 0, 16)
		i := 0
		for pb.Next() {
			key = fmt.Appendf(key[:0], "w%d", i)
			if _, err := c.Apply(key, kv.Record{TS: 1, Value: val}, httpproxy.AcksDefault); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// TestClusterGetDoesNotAllocate: a proxy's read, fanned out to four replicas
// over the peer protocol with read repair, allocates nothing in steady state
// (counted over the whole process, the in-process peer servers included).
func TestClusterGetDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	for _, rr := range []bool{false, true} {
		c := benchCluster(t, rr)
		key := []byte("key")
		if _, err := c.Apply(key, kv.Record{TS: 1, Value: make([]byte, 100)}, httpproxy.AcksAll); err != nil {
			t.Fatal(err)
		}
		dst := make([]byte, 0, 256)
		get := func() {
			if rec, err := c.Get(key, dst); err != nil || len(rec.Value) != 100 {
				t.Fatal(err)
			}
		}
		for range 100 {
			get()
		}
		if n := testing.AllocsPerRun(500, get); n > 0.05 {
			t.Errorf("read_repair=%v: %.2f allocations per Get", rr, n)
		}
	}
}
