package eventloop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/internal/logbuf"
	"github.com/tako-kv/tako/internal/tlstest"
)

// testTLS is a CA and the configurations a cluster's members derive from it: the server
// requires a client certificate signed by the CA (mutual TLS), the client verifies the
// server against the CA and presents its own certificate.
type testTLS struct {
	ca             *tlstest.CA
	server, client *tls.Config
}

var (
	testTLSOnce sync.Once
	testTLSVal  testTLS
)

// sharedTLS returns one CA and its configurations for the whole test binary (generating
// keys costs milliseconds; benchmarks must not measure it).
func sharedTLS(t testing.TB) testTLS {
	testTLSOnce.Do(func() { testTLSVal = newTestTLS(t) })
	return testTLSVal
}

func newTestTLS(t testing.TB) testTLS {
	ca := tlstest.NewCA(t, "tako test CA")
	srv, cli := ca.Leaf(t, "node"), ca.Leaf(t, "client")
	return testTLS{
		ca: ca,
		server: &tls.Config{Certificates: []tls.Certificate{srv.TLS(t)}, ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		client: &tls.Config{Certificates: []tls.Certificate{cli.TLS(t)}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
	}
}

func withServerTLS(cfg *tls.Config) func(*ServerConfig) { return func(c *ServerConfig) { c.TLS = cfg } }
func withClientTLS(cfg *tls.Config) func(*ClientConfig) { return func(c *ClientConfig) { c.TLS = cfg } }

// TestTLSRoundTrip: under mutual TLS with the cluster secret on top, small and large
// requests (values larger than a TLS record and than the bridge's buffers) round-trip,
// pipelined from many goroutines; the handler sees the client's Hello.
func TestTLSRoundTrip(t *testing.T) {
	tt := sharedTLS(t)
	for _, secrets := range [][][]byte{nil, {secretA}} {
		h := &countingHandler{h: newFakeStore()}
		srv := startServer(t, h, "", withServerTLS(tt.server), withSecrets(secrets...))
		c := newTestClient(t, srv.Addr().String(), withClientTLS(tt.client), clientSecrets(secrets...))
		ctx := testCtx(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				key := []byte{'k', byte(i)}
				value := bytes.Repeat([]byte{byte(i)}, []int{10, 20 << 10, 600 << 10, 3 << 20}[i%4])
				if _, err := c.Set(ctx, key, int64(i+1), 0, value); err != nil {
					errs <- err
					return
				}
				resp, err := c.Get(ctx, key)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(resp.Value, value) {
					errs <- errors.New("value differs")
				}
				resp.Release()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("secrets %d: %v", len(secrets), err)
		}
		if n := h.n.Load(); n != 32 {
			t.Fatalf("handler served %d requests, want 32", n)
		}
	}
}

// TestTLSRefused: a plaintext client, a client without a certificate, one whose
// certificate another CA signed, and a client that does not trust the server's CA get no
// request served; the server logs the failed TLS handshakes with the remote address.
func TestTLSRefused(t *testing.T) {
	tt := sharedTLS(t)
	other := newTestTLS(t)
	h := &countingHandler{h: newFakeStore()}
	logs := &logbuf.Buffer{}
	srv := startServer(t, h, "", withServerTLS(tt.server), func(cfg *ServerConfig) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
		cfg.HandshakeTimeout = time.Second
	})
	addr := srv.Addr().String()
	noCert := tt.client.Clone()
	noCert.Certificates = nil
	untrusting := tt.client.Clone()
	untrusting.RootCAs = other.ca.Pool()
	cases := []struct {
		name string
		tls  *tls.Config
	}{
		{"plaintext", nil},
		{"no client certificate", noCert},
		{"certificate of another CA", other.client},
		{"server not trusted", untrusting},
	}
	ctx := testCtx(t)
	for _, tc := range cases {
		c := newTestClient(t, addr, withClientTLS(tc.tls), func(cfg *ClientConfig) { cfg.DialTimeout = 2 * time.Second })
		if _, err := c.Set(ctx, []byte("k"), 1, 0, []byte("v")); err == nil {
			t.Fatalf("%s: set succeeded", tc.name)
		} else if !errors.Is(err, ErrHandshake) && !errors.Is(err, ErrConnLost) {
			t.Fatalf("%s: %v, want a handshake failure", tc.name, err)
		}
	}
	// By hand: a raw Hello in plaintext gets no Hello reply, and the connection closes.
	nc := rawConn(t, addr)
	_, _ = nc.Write(codec.AppendHello(nil, 1, codec.MinVersion, codec.MaxVersion, []byte("x")))
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _ := readAll(nc, buf)
	if n >= codec.HeaderSize && bytes.Equal(buf[:2], codec.AppendHelloReply(nil, 1, 1, nil)[:2]) {
		t.Fatalf("plaintext hello got a peer-protocol reply: %q", buf[:n])
	}
	if got := h.n.Load(); got != 0 {
		t.Fatalf("handler served %d requests, want 0", got)
	}
	waitFor(t, "the refusals to be logged", func() bool { return strings.Contains(logs.String(), "TLS handshake failed") })
	if !strings.Contains(logs.String(), "remote=127.0.0.1:") {
		t.Fatalf("refusal logged without the remote address:\n%s", logs)
	}
}

// readAll reads until EOF, an error or a full buf.
func readAll(nc net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := nc.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestTLSSilentHandshakeClosed: a connection that never starts the TLS handshake is
// closed after HandshakeTimeout, and Stop ends handshakes and bridges under way.
func TestTLSSilentHandshakeClosed(t *testing.T) {
	tt := sharedTLS(t)
	srv := startServer(t, newFakeStore(), "", withServerTLS(tt.server), func(cfg *ServerConfig) {
		cfg.HandshakeTimeout = 200 * time.Millisecond
	})
	nc := rawConn(t, srv.Addr().String())
	start := time.Now()
	expectEOF(t, nc)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
	// A bridged connection and a silent one are both ended by Stop.
	c := newTestClient(t, srv.Addr().String(), withClientTLS(tt.client))
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	_ = rawConn(t, srv.Addr().String())
	stopServer(t, srv)
}

// TestTLSBackpressure: a TLS client that pipelines Gets of a 1 MiB value and reads none
// of the replies is held to the connection's reply budget through the bridge (far fewer
// Gets are served than asked), and the stalled connection is closed after WriteTimeout.
func TestTLSBackpressure(t *testing.T) {
	const (
		valueSize = 1 << 20
		budget    = 4 << 20
		asked     = 200
	)
	tt := sharedTLS(t)
	h := &countingHandler{h: &nullHandler{value: bytes.Repeat([]byte{'v'}, valueSize)}}
	srv := startServer(t, h, "", withServerTLS(tt.server), func(cfg *ServerConfig) {
		cfg.MaxOutbound = budget
		cfg.WriteTimeout = 300 * time.Millisecond
	})
	tc := tls.Client(rawConn(t, srv.Addr().String()), clientTLS(tt.client, srv.Addr().String()))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	hello(t, tc)
	var reqs []byte
	for i := range asked {
		reqs = codec.AppendGet(reqs, uint64(i+1), []byte("k"))
	}
	if _, err := tc.Write(reqs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled connection to be closed", func() bool { return srv.openConns() == 0 })
	// The budget, the reply that crossed it, and what the socket buffers on the way (the
	// socketpair, the bridge's buffer, loopback TCP) took before the stall.
	if n := h.n.Load(); n >= asked/2 {
		t.Fatalf("%d of %d Gets served to a client that reads nothing", n, asked)
	}
	t.Logf("%d of %d Gets served before the stall closed the connection", h.n.Load(), asked)
}

// TestTLSStopWithStalledPeer: Stop ends a bridge whose peer reads nothing (its copy into
// TLS blocked) at once, not after WriteTimeout.
func TestTLSStopWithStalledPeer(t *testing.T) {
	tt := sharedTLS(t)
	h := &nullHandler{value: bytes.Repeat([]byte{'v'}, 1<<20)}
	srv := startServer(t, h, "", withServerTLS(tt.server), func(cfg *ServerConfig) { cfg.WriteTimeout = time.Minute })
	tc := tls.Client(rawConn(t, srv.Addr().String()), clientTLS(tt.client, srv.Addr().String()))
	_ = tc.SetDeadline(time.Now().Add(time.Minute)) // rawConn's 5s would end the stall
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	hello(t, tc)
	var reqs []byte
	for i := range 64 {
		reqs = codec.AppendGet(reqs, uint64(i+1), []byte("k"))
	}
	if _, err := tc.Write(reqs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the replies fill the socket buffers
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("stop with a stalled TLS peer: %v after %v", err, time.Since(start))
	}
}
