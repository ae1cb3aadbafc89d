package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
)

// Abuse of a node's peer port (issue 9, deliverable 4): the node stays up, a peer probe is
// served throughout, its memory stays under a stated bound.

// peerNode starts a standalone node with the storage settings given (YAML flow map
// entries, may be empty) and returns it, its HTTP base URL and its peer address.
func peerNode(t *testing.T, storage string) (*proc, string, string) {
	t.Helper()
	dir := t.TempDir()
	p := freePorts(t, 2)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
active_deployment: standalone
storage: {%s}
deployments:
    standalone:
        read_repair: no
        background_healing: no
        hash:
            buckets_per_key: 1
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
`, storage, p[0], p[1]))
	node := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", dir+"/var")
	base := fmt.Sprintf("http://127.0.0.1:%d", p[0])
	waitHTTP(t, base+"/health", node)
	return node, base, fmt.Sprintf("127.0.0.1:%d", p[1])
}

// peerProbe gets key over the peer protocol every 50ms until stop, failing the test if a
// Get fails or takes over 2s.
func peerProbe(t *testing.T, addr string, key []byte) (stop func()) {
	c := eventloop.NewClient(eventloop.ClientConfig{Addr: addr, Conns: 1})
	done, quit := make(chan struct{}), make(chan struct{})
	var served int
	go func() {
		defer close(done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := c.Get(ctx, key)
			cancel()
			if err != nil {
				t.Errorf("peer probe after %d gets: %v", served, err)
				return
			}
			resp.Release()
			served++
			select {
			case <-quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() { close(quit); <-done; c.Close() }
}

// rawPeer dials addr; with hello it completes the unauthenticated handshake.
func rawPeer(t *testing.T, addr string, hello bool) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if hello {
		if _, err := nc.Write(codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte("abuser"))); err != nil {
			t.Fatal(err)
		}
		var h [codec.HeaderSize]byte
		_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(nc, h[:]); err != nil {
			t.Fatalf("hello reply: %v", err)
		}
		hd, err := codec.ParseHeader(h[:], 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, nc, int64(hd.BodyLen)); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Time{})
	}
	return nc
}

// TestPeerPipelinedGetsBounded: three raw clients each pipeline 3,000 Gets of a 1 MiB value
// and never read. Each connection's reply budget is 16 MiB: the node pauses them there. Before, one such client took a node
// from 47 MiB to 1.1 GiB in 0.5s, three to 5.9 GiB.
func TestPeerPipelinedGetsBounded(t *testing.T) {
	const rssBound = 200 << 20
	node, base, peer := peerNode(t, "")
	if code, err := post(context.Background(), base+"/values/big", bytes.Repeat([]byte{'v'}, 1<<20)); err != nil || code != 200 {
		t.Fatalf("storing the value: %d %v", code, err)
	}
	stop := peerProbe(t, peer, []byte("big"))
	t.Logf("before: peak RSS %d MiB", vmHWM(t, node.cmd.Process.Pid)>>20)
	var reqs []byte
	for i := range 3000 {
		reqs = codec.AppendGet(reqs, uint64(i+1), []byte("big"))
	}
	for range 3 {
		nc := rawPeer(t, peer, true)
		if _, err := nc.Write(reqs); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	stop()
	alive(t, node, "with three clients that never read")
	if rss := vmHWM(t, node.cmd.Process.Pid); rss > rssBound {
		t.Fatalf("peak RSS %d MiB, want under %d MiB", rss>>20, rssBound>>20)
	} else {
		t.Logf("3 × 3,000 pipelined 1 MiB Gets never read: peak RSS %d MiB (bound %d MiB)", rss>>20, rssBound>>20)
	}
}

// TestPeerPartialFramesTimedOut: 8 connections announce a 60 MiB frame before their Hello
// and send 16 MiB of it: refused at once (handshake frames are capped at 64 KiB). 8 more
// do so after the Hello and send 4 MiB: closed after the 10s read timeout. Before, such
// frames were held forever (16 connections pinned 1.74 GiB).
func TestPeerPartialFramesTimedOut(t *testing.T) {
	const rssBound = 300 << 20
	node, base, peer := peerNode(t, "")
	if code, err := post(context.Background(), base+"/values/k", []byte("v")); err != nil || code != 200 {
		t.Fatalf("storing the probe's value: %d %v", code, err)
	}
	stop := peerProbe(t, peer, []byte("k"))
	defer stop()
	head := codec.AppendSetHead(nil, 1, []byte("big"), 1, 0, 60<<20)
	var wg sync.WaitGroup
	watch := func(name string, nc net.Conn, lo, hi time.Duration) {
		start := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = nc.SetReadDeadline(time.Now().Add(hi + 5*time.Second))
			_, err := io.Copy(io.Discard, nc)
			if el := time.Since(start); err != nil && strings.Contains(err.Error(), "timeout") || el < lo || el > hi {
				t.Errorf("%s: closed after %v (%v), want between %v and %v", name, el, err, lo, hi)
			}
		}()
	}
	for range 8 {
		nc := rawPeer(t, peer, false)
		_, _ = nc.Write(append(head, make([]byte, 16<<20)...)) // fails once the node refuses it
		watch("before the hello", nc, 0, 2*time.Second)
	}
	for range 8 {
		nc := rawPeer(t, peer, true)
		if _, err := nc.Write(append(head, make([]byte, 4<<20)...)); err != nil {
			t.Fatal(err)
		}
		watch("after the hello", nc, 9*time.Second, 13*time.Second)
	}
	wg.Wait()
	alive(t, node, "after the partial frames")
	if rss := vmHWM(t, node.cmd.Process.Pid); rss > rssBound {
		t.Fatalf("peak RSS %d MiB, want under %d MiB", rss>>20, rssBound>>20)
	} else {
		t.Logf("16 partial 60 MiB frames: peak RSS %d MiB (bound %d MiB)", rss>>20, rssBound>>20)
	}
}

// TestPeerDescriptorExhaustion: a node held to 256 descriptors gets 400 silent
// connections on its peer port. gnet stopped its engine on the first EMFILE; now the
// node's own accept loop backs off, and once the connections close a peer client is
// served again within seconds.
func TestPeerDescriptorExhaustion(t *testing.T) {
	const limit, conns = 256, 400
	node, base, peer := peerNode(t, "")
	if err := unix.Prlimit(node.cmd.Process.Pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Skipf("cannot lower the node's descriptor limit (prlimit): %v", err)
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.DialTimeout("tcp", peer, 2*time.Second)
		if err != nil {
			break // the backlog is full: enough
		}
		held = append(held, c)
	}
	if len(held) <= limit {
		t.Fatalf("only %d connections opened; need more than %d", len(held), limit)
	}
	time.Sleep(2 * time.Second) // the node meets EMFILE meanwhile (and sheds some)
	alive(t, node, "while out of descriptors")
	if !strings.Contains(node.logs.String(), "too many open files") {
		t.Fatalf("no accept error logged with %d connections at a limit of %d:\n%s", len(held), limit, node.logs)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil

	c := eventloop.NewClient(eventloop.ClientConfig{Addr: peer, Conns: 1, MaxBackoff: 100 * time.Millisecond})
	defer c.Close()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("peer port not served within 5s of the connections closing: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, err := get(base + "/health"); err != nil || code != 200 {
		t.Fatalf("/health: %d %v", code, err)
	}
	t.Logf("up to %d peer connections at a limit of %d: node up, peer port served %v after they closed",
		conns, limit, time.Since(start).Round(time.Millisecond))
}
