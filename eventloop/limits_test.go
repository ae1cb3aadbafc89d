package eventloop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
)

// readerHandler serves Gets the way the node's peer handler does: a few reader goroutines
// take queued Gets, ask Admit, read a fresh value buffer (the store's) and reply with GetRef.
// live counts the value bytes it holds (read and not yet released by the server), peak
// the most it ever held.
type readerHandler struct {
	value []byte
	jobs  chan *ReplyWriter
	wg    sync.WaitGroup
	live  atomic.Int64
	peak  atomic.Int64
}

func newReaderHandler(t *testing.T, value []byte, readers int) *readerHandler {
	h := &readerHandler{value: value, jobs: make(chan *ReplyWriter, 4096)}
	for range readers {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for rw := range h.jobs {
				h.read(rw)
			}
		}()
	}
	t.Cleanup(func() { close(h.jobs); h.wg.Wait() })
	return h
}

func (h *readerHandler) Handle(req *codec.Request, rw *ReplyWriter) {
	if req.Op != codec.OpGet {
		rw.Error(codec.StatusUnsupported, "get only")
		return
	}
	h.queue(rw)
}

// queue never blocks the loop: a full queue reads on the loop, as the node does.
func (h *readerHandler) queue(rw *ReplyWriter) {
	select {
	case h.jobs <- rw:
	default:
		h.read(rw)
	}
}

func (h *readerHandler) read(rw *ReplyWriter) {
	if !rw.Admit(func() { h.queue(rw) }) {
		return
	}
	buf := bytes.Clone(h.value) // a fresh buffer per read, as a large Get is
	n := h.live.Add(int64(len(buf)))
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	rw.GetRef(codec.StatusOK, 1, 0, buf, func() { h.live.Add(-int64(len(buf))) })
}

// outboundBytes is what the server's connections hold in gnet's outbound buffers.
func outboundBytes(s *Server) int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	n := 0
	for pc := range s.conns {
		pc.mu.Lock()
		n += pc.queuedLocked()
		pc.mu.Unlock()
	}
	return n
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// probe checks that a well-behaved client is served while something else happens: it
// gets key every 20ms until stop and fails the test if a Get fails or takes over a second.
func probe(t *testing.T, c *Client, key []byte) (stop func()) {
	t.Helper()
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := c.Get(ctx, key)
			cancel()
			if err != nil {
				t.Errorf("probe: %v", err)
				return
			}
			resp.Release()
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() { close(quit); <-done }
}

// TestPipelinedGetsNeverRead: a raw client pipelines 3,000 Gets of a 1 MiB value on each
// of three connections and never reads. The server pauses each connection at its reply
// budget: the value bytes it holds stay under 3 budgets plus one value per reader, where
// before it read every value it was asked for (3 GiB). A well-behaved client is served
// throughout.
func TestPipelinedGetsNeverRead(t *testing.T) {
	const (
		valueSize = 1 << 20
		budget    = 8 << 20
		readers   = 4
		conns     = 3
		asked     = 3000
	)
	h := newReaderHandler(t, bytes.Repeat([]byte{'v'}, valueSize), readers)
	srv := startServer(t, h, "", func(c *ServerConfig) { c.MaxOutbound = budget })
	before := heapInuse()
	good := newTestClient(t, srv.Addr().String())
	stop := probe(t, good, []byte("k"))
	defer stop()

	var reqs []byte
	for i := range asked {
		reqs = codec.AppendGet(reqs, uint64(i+1), []byte("k"))
	}
	for range conns {
		nc := rawConn(t, srv.Addr().String())
		hello(t, nc)
		if _, err := nc.Write(reqs); err != nil {
			t.Fatal(err)
		}
	}
	var peakHeap uint64
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		peakHeap = max(peakHeap, heapInuse())
		time.Sleep(50 * time.Millisecond)
	}
	// Each connection: its budget, and the reply that crossed it; the replies admitted
	// before they were counted (at most one per reader); the probe's. A reply is its
	// value and a few dozen bytes of frame.
	const reply = valueSize + 64
	bound := int64(conns*(budget+reply) + (readers+2)*reply)
	if p := h.peak.Load(); p > bound {
		t.Errorf("the handler held up to %d MiB of values, want at most %d MiB", p>>20, bound>>20)
	}
	if q := outboundBytes(srv); q > int(bound) {
		t.Errorf("the connections hold %d bytes of replies, want at most %d", q, bound)
	}
	if grew := int64(peakHeap) - int64(before); grew > 2*bound {
		t.Errorf("heap grew by %d MiB, want at most %d MiB", grew>>20, 2*bound>>20)
	}
	t.Logf("held at most %d MiB of values (bound %d MiB); heap grew by at most %d MiB",
		h.peak.Load()>>20, bound>>20, (int64(peakHeap)-int64(before))>>20)
}

// TestClosedConnWorkDropped: Gets queued for a connection that has closed are not read:
// Admit drops them.
func TestClosedConnWorkDropped(t *testing.T) {
	release := make(chan struct{})
	var started, dropped atomic.Int32
	var wg sync.WaitGroup
	h := HandlerFunc(func(req *codec.Request, rw *ReplyWriter) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			if rw.Admit(func() {}) {
				started.Add(1)
				rw.Get(codec.StatusNotFound, 0, 0, nil)
			} else {
				dropped.Add(1)
			}
		}()
	})
	srv := startServer(t, h, "")
	nc := rawConn(t, srv.Addr().String())
	hello(t, nc)
	var reqs []byte
	for i := range 100 {
		reqs = codec.AppendGet(reqs, uint64(i+1), []byte("k"))
	}
	if _, err := nc.Write(reqs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the requests to reach the handler", func() bool { return srv.inflight() == 100 })
	nc.Close()
	waitFor(t, "the server to notice the close", func() bool { return srv.openConns() == 0 })
	close(release)
	wg.Wait()
	if started.Load() != 0 || dropped.Load() != 100 {
		t.Fatalf("after the close: %d reads started, %d dropped; want 0 and 100", started.Load(), dropped.Load())
	}
}

// inflight sums the requests the server's connections have handed to the Handler and
// not answered.
func (s *Server) inflight() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	n := 0
	for pc := range s.conns {
		n += int(pc.inflight.Load())
	}
	return n
}

func (s *Server) openConns() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.conns)
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestMaxInflight: a connection stops being framed at MaxInflight unanswered requests and
// resumes as they are answered; every request is served.
func TestMaxInflight(t *testing.T) {
	const limit = 8
	var mu sync.Mutex
	var held []*ReplyWriter
	h := HandlerFunc(func(req *codec.Request, rw *ReplyWriter) {
		mu.Lock()
		held = append(held, rw)
		mu.Unlock()
	})
	srv := startServer(t, h, "", func(c *ServerConfig) { c.MaxInflight = limit })
	nc := rawConn(t, srv.Addr().String())
	hello(t, nc)
	var reqs []byte
	for i := range 3 * limit {
		reqs = codec.AppendGet(reqs, uint64(i+1), []byte("k"))
	}
	if _, err := nc.Write(reqs); err != nil {
		t.Fatal(err)
	}
	answered := 0
	for answered < 3*limit {
		waitFor(t, "requests", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) > 0 })
		time.Sleep(20 * time.Millisecond) // would more arrive?
		if n := srv.inflight(); n > limit {
			t.Fatalf("%d requests in flight, limit %d", n, limit)
		}
		mu.Lock()
		batch := held
		held = nil
		mu.Unlock()
		for _, rw := range batch {
			rw.Get(codec.StatusNotFound, 0, 0, nil)
			readReply(t, nc)
			answered++
		}
	}
}

// TestHandshakeAndPartialFrameTimeouts: connections that never send a Hello, send a
// Hello and never prove the secret, or announce a large frame and stall are closed after
// the timeouts; a large frame announced before the Hello is refused at once without being
// buffered; a probe is served throughout and the heap stays bounded.
func TestHandshakeAndPartialFrameTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	secret := bytes.Repeat([]byte{'s'}, MinSecretLen)
	store := newFakeStore()
	srv := startServer(t, store, "", withSecrets(secret), func(c *ServerConfig) {
		c.HandshakeTimeout, c.ReadTimeout = timeout, timeout
	})
	addr := srv.Addr().String()
	good := newTestClient(t, addr, clientSecrets(secret))
	if _, err := good.Set(testCtx(t), []byte("k"), 1, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	before := heapInuse()
	stop := probe(t, good, []byte("k"))
	defer stop()

	// Each victim expects the server to close it between lo and hi after it connected,
	// or, with fromSend, after its send returned (a stalled frame's clock starts at its
	// last bytes, and writing 4 MiB takes a while on a loaded machine).
	var wg sync.WaitGroup
	add := func(name string, lo, hi time.Duration, fromSend bool, send func(nc net.Conn)) {
		for range 4 {
			start := time.Now()
			nc := rawConn(t, addr)
			send(nc)
			if fromSend {
				start = time.Now()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := io.Copy(io.Discard, nc) // error replies, then EOF
				el := time.Since(start)
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
					t.Errorf("%s: not closed within 10s", name)
				case el < lo || el > hi:
					t.Errorf("%s: closed after %v, want between %v and %v", name, el, lo, hi)
				}
			}()
		}
	}
	huge := func(id uint64) []byte { // header of a 60 MiB Set
		return codec.AppendSetHead(nil, id, []byte("big"), 1, 0, 60<<20)
	}
	add("silent before hello", timeout, 4*timeout, false, func(net.Conn) {})
	add("hello without proof", timeout, 4*timeout, false, func(nc net.Conn) {
		_, _ = nc.Write(codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte("x"),
			codec.TLV{Type: codec.TLVNonce, Value: newNonce()}))
	})
	add("huge frame before hello", 0, timeout/2, false, func(nc net.Conn) {
		_, _ = nc.Write(append(huge(1), make([]byte, 1<<20)...))
	})
	add("huge partial frame after the handshake", timeout/2, 4*timeout, true, func(nc net.Conn) {
		rawAuthHandshake(t, nc, "attacker", secret)
		_, _ = nc.Write(append(huge(1), make([]byte, 4<<20)...))
	})
	wg.Wait()
	if grew := int64(heapInuse()) - int64(before); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB holding 16 stalled connections", grew>>20)
	}
	if _, ok := store.get([]byte("big")); ok {
		t.Error("the partial frame was served")
	}
}

// TestAcceptSurvivesEMFILE: with the process out of descriptors, accept fails with EMFILE;
// the server backs off instead of stopping its engine (as gnet does on accept errors) and
// serves new connections once descriptors are free again.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	srv := startServer(t, newFakeStore(), "")
	addr := srv.Addr().String()
	c := newTestClient(t, addr)
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Lower the soft limit to what is open now plus a few, then fill it with connections
	// to the server: their server ends exhaust the process's descriptors.
	open := countOpenFDs(t)
	low := lim
	low.Cur = uint64(open + 40)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Errorf("restoring RLIMIT_NOFILE: %v", err)
			}
		}
	}
	defer restore()
	var flood []net.Conn
	defer func() {
		for _, nc := range flood {
			nc.Close()
		}
	}()
	for range 200 {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // our own end ran out of descriptors: the limit is reached
		}
		flood = append(flood, nc)
	}
	time.Sleep(200 * time.Millisecond) // the server's accept loop meets EMFILE
	for _, nc := range flood {
		nc.Close()
	}
	flood = nil
	restore()
	c2 := newTestClient(t, addr)
	waitFor(t, "a new connection to be served", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		return c2.Ping(ctx) == nil
	})
}

func countOpenFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting descriptors: %v", err)
	}
	return len(fds)
}

func TestRequestTimeoutGrowsWithSize(t *testing.T) {
	f := func(base time.Duration, bytes, rate int, want time.Duration) {
		t.Helper()
		if got := requestTimeout(base, bytes, rate); got != want {
			t.Errorf("requestTimeout(%v, %d, %d) = %v, want %v", base, bytes, rate, got, want)
		}
	}
	f(5*time.Second, 0, 20e6, 5*time.Second)
	f(5*time.Second, 100, 20e6, 5*time.Second+5*time.Microsecond)
	f(5*time.Second, 60e6, 20e6, 8*time.Second)
	f(5*time.Second, 8*60e6, 20e6, 29*time.Second) // eight 60 MB values on one connection
	f(time.Second, 1e6, 1e6, 2*time.Second)
}

// TestLargeRequestGetsMoreTime: with a 100ms RequestTimeout, a small request to a handler
// that answers after 300ms times out, and an 8 MiB Set to it does not: at a MinRate of
// 2 MB/s its deadline is 100ms + 4.2s, room for a loaded machine (or -race) to move 8 MiB
// over loopback.
func TestLargeRequestGetsMoreTime(t *testing.T) {
	h := HandlerFunc(func(req *codec.Request, rw *ReplyWriter) {
		time.AfterFunc(300*time.Millisecond, func() { rw.Set(codec.StatusApplied, 1) })
	})
	srv := startServer(t, h, "")
	c := newTestClient(t, srv.Addr().String(), func(cfg *ClientConfig) {
		cfg.RequestTimeout, cfg.MinRate = 100*time.Millisecond, 2e6
	})
	if _, err := c.Set(context.Background(), []byte("small"), 1, 0, []byte("v")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("small set: err = %v, want a timeout", err)
	}
	if _, err := c.Set(context.Background(), []byte("large"), 1, 0, make([]byte, 8<<20)); err != nil {
		t.Fatalf("8 MiB set: %v", err)
	}
}

// TestMaxConnsPerIP: one address holds at most MaxConnsPerIP connections; the next is
// closed at once, while another address is still served; once connections close, the
// address is served again.
// TestConnIPMatchesAcceptCount: the address a closing connection gives back its per-IP
// count under is the one accept counted it under, for every kind of remote address. An
// IPv6 link-local peer's zone, kept in the connection's address string but not in the
// count, leaked one count per connection until the address was refused for good.
func TestConnIPMatchesAcceptCount(t *testing.T) {
	for _, a := range []*net.TCPAddr{
		{IP: net.ParseIP("127.0.0.1"), Port: 5000},
		{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 5000},
		{IP: net.ParseIP("2001:db8::1"), Port: 5000},
		{IP: net.ParseIP("fe80::1"), Port: 5000, Zone: "eth0"},
	} {
		pc := &peerConn{remote: a.String()}
		if got, want := pc.ip(), remoteIP(a); got != want {
			t.Errorf("%s: given back as %v, counted as %v", a, got, want)
		}
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	const limit = 4
	store := newFakeStore()
	srv := startServer(t, store, "", func(c *ServerConfig) { c.MaxConnsPerIP, c.HandshakeTimeout = limit, time.Minute })
	addr := srv.Addr().String()
	// open reports whether the server keeps nc open (it reads nothing for 300ms) rather
	// than closing it.
	open := func(nc net.Conn) bool {
		_ = nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := nc.Read(make([]byte, 1))
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	var held []net.Conn
	for range limit {
		held = append(held, rawConn(t, addr))
	}
	for i, nc := range held {
		if !open(nc) {
			t.Fatalf("connection %d of %d closed", i+1, limit)
		}
	}
	if open(rawConn(t, addr)) {
		t.Fatalf("connection %d from one address kept open", limit+1)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: time.Second}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if !open(other) {
		t.Fatal("another address was refused")
	}
	held[0].Close()
	held[1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for !open(rawConn(t, addr)) {
		if time.Now().After(deadline) {
			t.Fatal("the address is still refused after two of its connections closed")
		}
	}
	c := newTestClient(t, addr, func(c *ClientConfig) { c.Conns = 1 })
	if _, err := c.Set(testCtx(t), []byte("k"), 1, 0, []byte("v")); err != nil {
		t.Fatalf("a client within the cap: %v", err)
	}
}

// TestClientFailsAReplyStalledMidFrame: a peer that stops in the middle of a reply frame
// (a paused process; TCP still answers for it) costs the connection, not every later call
// on it: the client fails the connection once the frame is late, and the next call dials
// anew. Before, the reader waited for the rest forever and the connection was never
// redialled.
func TestClientFailsAReplyStalledMidFrame(t *testing.T) {
	store := newFakeStore()
	srv := startServer(t, store, "")
	cut := stallingProxy(t, srv.Addr().String())
	c := newTestClient(t, cut.addr, func(cfg *ClientConfig) { cfg.Conns, cfg.RequestTimeout = 1, 100*time.Millisecond })
	if _, err := c.Set(testCtx(t), []byte("k"), 1, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	cut.stallNext.Store(true) // the next reply stops after its first bytes
	if _, err := c.Get(testCtx(t), []byte("k")); err == nil {
		t.Fatal("a reply cut in the middle of its frame was delivered")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := c.Get(testCtx(t), []byte("k"))
		if err == nil {
			if string(resp.Value) != "v" {
				t.Fatalf("get after the stall: %q", resp.Value)
			}
			resp.Release()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client never recovered from a reply stalled mid-frame: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stallProxy forwards TCP connections to a server; with stallNext set, the next chunk of
// replies it forwards is cut after its first bytes and that connection forwards nothing
// more (it stays open).
type stallProxy struct {
	addr      string
	stallNext atomic.Bool
}

func stallingProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{addr: ln.Addr().String()}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			conns.Add(2)
			go func() { defer conns.Done(); _, _ = io.Copy(server, client); server.Close() }()
			go func() { defer conns.Done(); p.forward(client, server); client.Close() }()
		}
	}()
	return p
}

func (p *stallProxy) forward(client, server net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && p.stallNext.CompareAndSwap(true, false) {
			_, _ = client.Write(buf[:min(n, 5)])
			_, _ = io.Copy(io.Discard, server) // forward nothing more, until the server closes
			return
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
