package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/kv"
)

// serveLimited serves cfg's Handler (over a fresh store unless cfg has a
// Backend) on 127.0.0.1 as nodes and proxies do, behind RetryAccept, and
// returns its address. ln, when set, is the listener to serve.
func serveLimited(t *testing.T, cfg Config, ln net.Listener) string {
	t.Helper()
	if cfg.Backend == nil {
		cfg.Backend = storeBackend{newStore(t)}
	}
	if ln == nil {
		var err error
		if ln, err = Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	srv := NewHandler(cfg).NewServer()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(RetryAccept(ln, nil)) }()
	t.Cleanup(func() {
		srv.Shutdown()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads from c until the server closes it, failing if that
// takes longer than within; it returns what was read.
func closedWithin(t *testing.T, c net.Conn, within time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %q)", within, b)
	}
	return b
}

// probe sends GET /health on c and returns the reply's status.
func probe(t *testing.T, c net.Conn) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatalf("probe: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	return resp.StatusCode
}

// TestSlowClientsCutOff: a client sending its headers a byte at a time
// (slow loris) and one that sends nothing are disconnected once
// HeaderTimeout has passed, while the server goes on serving.
func TestSlowClientsCutOff(t *testing.T) {
	const bound = time.Second
	addr := serveLimited(t, Config{Limits: Limits{HeaderTimeout: bound}}, nil)

	silent := dial(t, addr)
	loris := dial(t, addr)
	stopped := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req := "PUT /values/k HTTP/1.1\r\nHost: t\r\nX-Padding: " + strings.Repeat("a", 1000)
		for i := range len(req) {
			select {
			case <-stopped:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := loris.Write([]byte{req[i]}); err != nil {
				return // cut off
			}
		}
	}()
	defer func() { close(stopped); wg.Wait() }()

	start := time.Now()
	closedWithin(t, silent, bound+3*time.Second)
	closedWithin(t, loris, bound+3*time.Second)
	took := time.Since(start)
	if took < bound/2 {
		t.Fatalf("cut off after %v, before the %v bound", took, bound)
	}
	if code := probe(t, dial(t, addr)); code != 200 {
		t.Fatalf("probe: %d", code)
	}
}

// TestKeepAliveIdleTimeout: a keep-alive connection left idle is closed
// after IdleTimeout.
func TestKeepAliveIdleTimeout(t *testing.T) {
	addr := serveLimited(t, Config{Limits: Limits{IdleTimeout: 500 * time.Millisecond}}, nil)
	c := dial(t, addr)
	if code := probe(t, c); code != 200 {
		t.Fatalf("probe: %d", code)
	}
	closedWithin(t, c, 3*time.Second)
}

// TestBareLFAnswered: a request with bare LF line ends is answered, never
// left hanging: fasthttp takes bare LFs between header lines but finds the
// end of the headers only at CRLF CRLF, so a request ending them with bare
// LFs gets a 408 naming the cause once HeaderTimeout has passed.
func TestBareLFAnswered(t *testing.T) {
	const bound = time.Second
	addr := serveLimited(t, Config{Limits: Limits{HeaderTimeout: bound}}, nil)
	f := func(req string, want int, within time.Duration) {
		t.Helper()
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(within))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: no reply within %v: %v", req, within, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%q: status %d %q, want %d", req, resp.StatusCode, b, want)
		}
	}
	f("GET /health HTTP/1.1\nHost: t\n\n", 408, bound+3*time.Second)
	f("PUT /values/lf HTTP/1.1\nHost: t\nContent-Length: 2\n\nhi", 408, bound+3*time.Second)
	f("GET /health HTTP/1.1\r\nHost: t\n\r\n", 408, bound+3*time.Second)
	f("PUT /values/lf HTTP/1.1\nHost: t\nContent-Length: 2\r\n\r\nhi", 200, time.Second)
	f("GET /values/lf HTTP/1.1\nHost: t\r\n\r\n", 200, time.Second)
}

// TestMaxConnsPerIP: past MaxConnsPerIP connections from one address the
// next is refused (429, closed) while those within the cap are served.
func TestMaxConnsPerIP(t *testing.T) {
	const limit = 8
	addr := serveLimited(t, Config{Limits: Limits{MaxConnsPerIP: limit}}, nil)
	conns := make([]net.Conn, limit)
	for i := range conns {
		conns[i] = dial(t, addr)
	}
	// The server counts a connection once it accepts it: make sure all are.
	for _, c := range conns[1:] {
		if code := probe(t, c); code != 200 {
			t.Fatalf("connection within the cap: %d", code)
		}
	}
	over := dial(t, addr)
	if got := closedWithin(t, over, 3*time.Second); !bytes.Contains(got, []byte(" 429 ")) {
		t.Fatalf("connection over the cap got %q, want a 429", got)
	}
	if code := probe(t, conns[0]); code != 200 {
		t.Fatalf("probe within the cap: %d", code)
	}
	conns[1].Close()
	// Once one closes, a new connection fits again.
	for deadline := time.Now().Add(3 * time.Second); ; {
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(time.Second))
		io.WriteString(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode == 200 {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no room after a connection closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gatedBackend holds every Apply until its gate opens.
type gatedBackend struct {
	storeBackend
	entered chan struct{}
	gate    chan struct{}
}

func (b gatedBackend) Apply(key []byte, rec kv.Record, acks Acks) (kv.Result, error) {
	b.entered <- struct{}{}
	<-b.gate
	return b.storeBackend.Apply(key, rec, acks)
}

// TestBodyBudget: while request bodies in flight fill the budget, another
// write is answered 503 with Retry-After (its body read and dropped, not
// buffered); once they finish, writes go through again. A body over the
// largest value is refused with 413 before it is read.
func TestBodyBudget(t *testing.T) {
	const budget = 1 << 20
	be := gatedBackend{storeBackend{newStore(t)}, make(chan struct{}, 4), make(chan struct{})}
	addr := serveLimited(t, Config{Backend: be, MaxValueBytes: 4 << 20, Limits: Limits{BodyBudgetBytes: budget}}, nil)
	base := "http://" + addr

	first := make(chan reply, 1)
	go func() {
		first <- doNoFatal(base+"/values/big", bytes.Repeat([]byte("a"), budget-100))
	}()
	select {
	case <-be.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first write did not reach the backend")
	}
	r := doNoFatal(base+"/values/second", bytes.Repeat([]byte("b"), 200))
	if r.status != 503 || r.header.Get("Retry-After") != "1" || !bytes.Contains(r.body, []byte("memory budget")) {
		t.Fatalf("write over the budget: %d %v %q, want 503 with Retry-After: 1", r.status, r.header, r.body)
	}
	close(be.gate)
	if r := <-first; r.status != 200 {
		t.Fatalf("first write: %d %q", r.status, r.body)
	}
	if r := doNoFatal(base+"/values/second", bytes.Repeat([]byte("b"), 200)); r.status != 200 {
		t.Fatalf("write once the budget is free: %d %q", r.status, r.body)
	}
	// A chunked body counts as the largest value, which a budget below it
	// admits only alone: it goes through now.
	if r := doNoFatal(base+"/values/chunked", nil, io.MultiReader(strings.NewReader("chunked"))); r.status != 200 {
		t.Fatalf("chunked write: %d %q", r.status, r.body)
	}

	c := dial(t, addr)
	// fasthttp reads up to 8 KiB of a streamed body before the handler runs.
	fmt.Fprintf(c, "PUT /values/huge HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s", 5<<20, make([]byte, 16<<10))
	if got := closedWithin(t, c, 3*time.Second); !bytes.Contains(got, []byte(" 413 ")) {
		t.Fatalf("body over the largest value: %q, want 413", got)
	}
}

// doNoFatal PUTs body (or, with a reader, a chunked body) to url from any
// goroutine; a failure is a reply with status 0.
func doNoFatal(url string, body []byte, chunked ...io.Reader) reply {
	var rd io.Reader = bytes.NewReader(body)
	if len(chunked) > 0 {
		rd = struct{ io.Reader }{chunked[0]} // hides the length: chunked
	}
	req, err := http.NewRequest("PUT", url, rd)
	if err != nil {
		return reply{body: []byte(err.Error())}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b, resp.Header}
}

// TestBodyBudgetReleased: many concurrent writers, some refused, leave
// nothing reserved behind.
func TestBodyBudgetReleased(t *testing.T) {
	h := NewHandler(Config{Backend: storeBackend{newStore(t)}, Limits: Limits{BodyBudgetBytes: 256 << 10}})
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.NewServer()
	go srv.Serve(RetryAccept(ln, nil))
	defer srv.Shutdown()
	base := "http://" + ln.Addr().String()
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch r := doNoFatal(fmt.Sprintf("%s/values/k%d", base, i), make([]byte, 100<<10)); r.status {
			case 200:
				ok.Add(1)
			case 503:
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load()+refused.Load() != 16 || ok.Load() == 0 {
		t.Fatalf("%d ok, %d refused of 16", ok.Load(), refused.Load())
	}
	if u := h.bodies.used.Load(); u != 0 {
		t.Fatalf("%d bytes still reserved", u)
	}
}

// flakyListener fails its first fails Accepts with err.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
	err   error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

// TestAcceptRetries: descriptor exhaustion (EMFILE) and its kin no longer
// end Serve: it backs off and goes on serving. Close wakes a backing-off
// Accept.
func TestAcceptRetries(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED} {
		ln, err := Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fl := &flakyListener{Listener: ln, err: &net.OpError{Op: "accept", Net: "tcp", Err: errno}}
		fl.fails.Store(5)
		addr := serveLimited(t, Config{}, fl)
		if code := probe(t, dial(t, addr)); code != 200 {
			t.Fatalf("%v: probe %d", errno, code)
		}
	}

	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln, err: &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}}
	fl.fails.Store(1 << 30)
	rl := RetryAccept(fl, nil)
	accepted := make(chan error, 1)
	go func() { _, err := rl.Accept(); accepted <- err }()
	time.Sleep(50 * time.Millisecond)
	rl.Close()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not wake a backing-off Accept")
	}
}

// TestSlowBodyCutOff: a body that stops arriving is cut off once its
// deadline (HeaderTimeout plus its length at MinRate) passes, and its
// reservation is returned.
func TestSlowBodyCutOff(t *testing.T) {
	h := NewHandler(Config{Backend: storeBackend{newStore(t)}, Limits: Limits{HeaderTimeout: 500 * time.Millisecond}})
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.NewServer()
	go srv.Serve(RetryAccept(ln, nil))
	defer srv.Shutdown()
	c := dial(t, ln.Addr().String())
	// More than fasthttp's 8 KiB pre-read, so the handler is reading it.
	fmt.Fprintf(c, "PUT /values/slow HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s", 100<<10, make([]byte, 20<<10))
	if got := closedWithin(t, c, 4*time.Second); !bytes.Contains(got, []byte(" 400 ")) {
		t.Fatalf("stalled body: %q, want a 400", got)
	}
	if u := h.bodies.used.Load(); u != 0 {
		t.Fatalf("%d bytes still reserved", u)
	}
}
