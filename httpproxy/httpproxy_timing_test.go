package httpproxy

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/metrics"
	"github.com/valyala/fasthttp"
)

// BenchmarkServeGet is the handler alone, no network: the per-request cost
// and allocations of the GET path, request metrics included.
func BenchmarkServeGet(b *testing.B) {
	s := newStore(b)
	if _, err := s.Apply([]byte("key"), kv.Record{TS: 1, Value: make([]byte, 100)}); err != nil {
		b.Fatal(err)
	}
	h := NewHandler(Config{Backend: storeBackend{s}, Metrics: metrics.NewHTTP(metrics.NewRegistry())})
	ctx := newCtx("GET", "/values/key")
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		h.Serve(ctx)
	}
}

// BenchmarkServeGetWithToken is BenchmarkServeGet with http_tokens_file
// on: the bearer token's check (a SHA-256 and constant-time compares).
func BenchmarkServeGetWithToken(b *testing.B) {
	s := newStore(b)
	if _, err := s.Apply([]byte("key"), kv.Record{TS: 1, Value: make([]byte, 100)}); err != nil {
		b.Fatal(err)
	}
	h := NewHandler(Config{Backend: storeBackend{s}, Tokens: testTokens(b)})
	ctx := newCtx("GET", "/values/key")
	ctx.Request.Header.Set("Authorization", "Bearer "+roToken)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		h.Serve(ctx)
	}
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("status %d", ctx.Response.StatusCode())
	}
}

// BenchmarkSideBySide measures, in one run over loopback with 64 keep-alive
// connections, a bare fasthttp handler returning a constant 100 B and a
// node's GET and durable (fsync'd) POST of 100 B values, and reports the
// ratios to the bare handler. Each phase runs for sideBySidePhase.
func BenchmarkSideBySide(b *testing.B) {
	const conns = 64
	value := make([]byte, 100)
	bare := func(ctx *fasthttp.RequestCtx) { ctx.SetBody(value) }

	s, err := kv.Open(b.TempDir(), kv.Options{Sync: kv.SyncAlways})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const keys = 10000
	for i := range keys {
		if _, err := s.Apply(fmt.Appendf(nil, "k%d", i), kv.Record{TS: 1, Value: value}); err != nil {
			b.Fatal(err)
		}
	}
	node := NewHandler(Config{Backend: storeBackend{s}})

	bareAddr := serveBench(b, &fasthttp.Server{Handler: bare})
	nodeAddr := serveBench(b, node.NewServer())

	b.ResetTimer()
	for b.Loop() {
		bareGet := load(b, bareAddr, conns, "GET", nil)
		nodeGet := load(b, nodeAddr, conns, "GET", nil)
		nodePost := load(b, nodeAddr, conns, "POST", value)
		b.ReportMetric(bareGet, "bare-get/s")
		b.ReportMetric(nodeGet, "node-get/s")
		b.ReportMetric(nodePost, "node-post/s")
		b.ReportMetric(nodeGet/bareGet, "get/bare")
		b.ReportMetric(nodePost/bareGet, "post/bare")
	}
}

const sideBySidePhase = 3 * time.Second

func serveBench(b *testing.B, srv *fasthttp.Server) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// load drives addr from conns goroutines, each with its own keep-alive
// connection, for sideBySidePhase and returns requests per second.
func load(b *testing.B, addr string, conns int, method string, body []byte) float64 {
	b.Helper()
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: conns}
	var ops atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(sideBySidePhase)
	var wg sync.WaitGroup
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod(method)
			var uri []byte
			for i := 0; time.Now().Before(stop); i++ {
				uri = fmt.Appendf(uri[:0], "http://%s/values/k%d", addr, (c*7919+i)%10000)
				req.SetRequestURIBytes(uri)
				req.SetBody(body)
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					failed.Store(fmt.Sprintf("%s %s: %v %d", method, uri, err, resp.StatusCode()))
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	return float64(ops.Load()) / sideBySidePhase.Seconds()
}
