package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/kv/hlc"
	"github.com/tako-kv/tako/server/config"
)

// benchCluster runs four nodes — each a store, a peer handler and a real
// eventloop server on 127.0.0.1 — and a proxy-side Cluster over them: two
// buckets of two nodes, two buckets per key, so each key has four replicas,
// as in local_cluster.yaml. With separate, each node is a child process
// (this test binary, see TestMain), so that what the test measures in this
// process is the proxy alone.
func benchCluster(b testing.TB, readRepair, separate bool) *Cluster {
	return benchClusterConns(b, readRepair, separate, 1)
}

// benchClusterConns is benchCluster with conns connections to each peer.
func benchClusterConns(b testing.TB, readRepair, separate bool, conns int) *Cluster {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	addrs := map[string]string{}
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		if separate {
			addrs[id] = startPeerProcess(b, id)
			continue
		}
		addr, stop, err := servePeerNode(id, log)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(stop)
		addrs[id] = addr
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
	peers.perPeer = conns
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

// BenchmarkClusterGet runs the proxy and its four replicas in one process,
// so allocs/op counts the peer servers' too; the proxy's own are 0, see
// TestClusterGetDoesNotAllocate.
func BenchmarkClusterGet(b *testing.B) {
	for _, rr := range []bool{false, true} {
		b.Run(fmt.Sprintf("read_repair=%v", rr), func(b *testing.B) {
			c := benchCluster(b, rr, false)
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

func BenchmarkClusterApply(b *testing.B) { benchApply(b, benchCluster(b, true, false)) }

// BenchmarkClusterConns: one connection per peer against a few, for reads
// and writes (replicas in separate processes, so that the proxy's side is
// what changes).
func BenchmarkClusterConns(b *testing.B) {
	for _, conns := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("get/conns=%d", conns), func(b *testing.B) {
			c := benchClusterConns(b, true, true, conns)
			if _, err := c.Apply([]byte("k"), kv.Record{TS: 1, Value: make([]byte, 100)}, httpproxy.AcksAll); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key, dst := []byte("k"), make([]byte, 0, 256)
				for pb.Next() {
					if _, err := c.Get(key, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		b.Run(fmt.Sprintf("apply/conns=%d", conns), func(b *testing.B) { benchApply(b, benchClusterConns(b, true, true, conns)) })
	}
}

func benchApply(b *testing.B, c *Cluster) {
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

// TestClusterGetDoesNotAllocate: a proxy's read, fanned out to its replicas
// over the peer protocol, with and without read repair, allocates nothing in
// steady state: in the proxy (replicas in separate processes), and in the
// proxy and the replicas' peer servers together (all in this process: the
// servers answer reads from reader goroutines, with recycled ReplyWriters,
// and wake their loops with doorbells).
func TestClusterGetDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	for _, tc := range []struct{ rr, separate bool }{{false, true}, {true, true}, {false, false}, {true, false}} {
		rr := tc.rr
		c := benchCluster(t, rr, tc.separate)
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
			t.Errorf("read_repair=%v, separate=%v: %.2f allocations per Get", rr, tc.separate, n)
		}
	}
}

// peerNodeEnv turns the test binary into a peer node (see TestMain).
const peerNodeEnv = "TAKO_TEST_PEER_NODE"

func TestMain(m *testing.M) {
	if id := os.Getenv(peerNodeEnv); id != "" {
		addr, stop, err := servePeerNode(id, slog.New(slog.DiscardHandler))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(addr)
		io.Copy(io.Discard, os.Stdin) // until the parent closes our stdin
		stop()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// servePeerNode serves the peer protocol from an in-memory store.
func servePeerNode(id string, log *slog.Logger) (addr string, stop func(), err error) {
	store, err := kv.Open("db", kv.Options{FS: vfs.NewMem(), Logger: log})
	if err != nil {
		return "", nil, err
	}
	h := newPeerHandler(store, hlc.New(0), nil, log)
	srv := eventloop.NewServer(eventloop.ServerConfig{Addr: "127.0.0.1:0", NodeID: id, Handler: h, Logger: log})
	if err := srv.Start(); err != nil {
		store.Close()
		return "", nil, err
	}
	return srv.Addr().String(), func() { srv.Stop(context.Background()); h.close(); store.Close() }, nil
}

// startPeerProcess runs a peer node as a child process and returns its
// address; it stops when the test ends.
func startPeerProcess(tb testing.TB, id string) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), peerNodeEnv+"="+id)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("peer node %s: %v", id, err)
	}
	return strings.TrimSpace(line)
}
