package server

import (
	"bufio"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/tlsconf"
)

// TestHTTPListenerTLS: the HTTP API under TLS keeps its limits: a silent connection is
// closed after the header timeout, a connection over the per-IP cap is closed unserved,
// and a plaintext request gets no HTTP answer; a client trusting the CA is served.
func TestHTTPListenerTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	set, err := tlsconf.Load(config.TLSFiles(ca.WriteFiles(t, t.TempDir(), ca.Leaf(t, "n1"))))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	h := httpproxy.NewHandler(httpproxy.Config{Logger: log,
		Limits: httpproxy.Limits{HeaderTimeout: 300 * time.Millisecond, MaxConnsPerIP: 2}})
	srv := h.NewServer()
	go srv.Serve(httpListener(ln, set.HTTPServer(), log))
	t.Cleanup(func() { srv.Shutdown() })
	addr := ln.Addr().String()
	cli := set.HTTPClient()
	cli.ServerName = "127.0.0.1"

	// Served over TLS, on kept-alive connections that count against the cap.
	var held []*tls.Conn
	for range 2 {
		c, err := tls.Dial("tcp", addr, cli)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if code := healthOn(t, c); code != 200 {
			t.Fatalf("GET /health over TLS: %d", code)
		}
		held = append(held, c)
	}
	// A third connection from the same address is closed without being served.
	if c, err := tls.Dial("tcp", addr, cli); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")); err == nil {
			if b, _ := io.ReadAll(c); len(b) > 0 {
				t.Fatalf("a connection over the per-IP cap was answered %q", b)
			}
		}
		c.Close()
	}
	held[0].Close()
	held[1].Close()
	time.Sleep(100 * time.Millisecond) // the server notices the closes

	// A silent connection is closed after the header timeout, its TLS handshake unstarted.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if n, err := raw.Read(make([]byte, 1)); err == nil || time.Since(start) > 4*time.Second {
		t.Fatalf("silent connection: read %d bytes, err %v after %v", n, err, time.Since(start))
	}
	// Plaintext gets no HTTP answer.
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_ = plain.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = plain.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
	if b, _ := io.ReadAll(plain); strings.HasPrefix(string(b), "HTTP/") {
		t.Fatalf("a plaintext request was answered: %q", b)
	}
}

// healthOn sends GET /health on c and returns the status code.
func healthOn(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
