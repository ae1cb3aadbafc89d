package bench

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

// memStore is an in-memory Tako-API lookalike for tests: POST/PUT store, GET returns or 404s.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) handle(ctx *fasthttp.RequestCtx) {
	key := string(ctx.Path()) // percent-decoded by fasthttp
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ctx.IsPost() || ctx.IsPut():
		s.m[key] = append([]byte(nil), ctx.PostBody()...)
	case ctx.IsGet():
		v, ok := s.m[key]
		if !ok {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
		ctx.SetBody(v)
	}
}

// serveHTTP runs h on a free 127.0.0.1 port for the test's lifetime and returns its address.
func serveHTTP(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	return serveHTTPTLS(t, h, nil)
}

// serveHTTPTLS is serveHTTP under TLS with cfg (nil: plaintext).
func serveHTTPTLS(t *testing.T, h fasthttp.RequestHandler, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	s := &fasthttp.Server{Handler: h, MaxRequestBodySize: 16 << 20}
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(ln) })
	t.Cleanup(func() { _ = s.ShutdownWithContext(context.Background()); wg.Wait() })
	return ln.Addr().String()
}

func newMemStore(t *testing.T) (string, *memStore) {
	s := &memStore{m: map[string][]byte{}}
	return serveHTTP(t, s.handle), s
}
