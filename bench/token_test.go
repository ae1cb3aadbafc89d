package bench

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// A -token-file target sends its bearer token with every request: a server that
// requires it serves the target, and refuses one without it (401).
func TestHTTPTargetSendsToken(t *testing.T) {
	const token = "bench-token-0123456789abcdef"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Request.Header.Peek("Authorization")) != "Bearer "+token {
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			return
		}
		ctx.SetBodyString("v")
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# the bench\n"+token+" read-write\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{Proto: ProtoHTTP, Addr: ln.Addr().String()}
	plain, err := NewTarget(ep, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var se *StatusError
	if err := plain.Set([]byte("k"), []byte("v")); !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("without a token: %v, want a 401", err)
	}
	ep.TokenFile = file
	tt, err := NewTarget(ep, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	if err := tt.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatalf("set with the token: %v", err)
	}
	if v, err := tt.Get([]byte("k"), nil); err != nil || string(v) != "v" {
		t.Fatalf("get with the token: %q %v", v, err)
	}
	ep.TokenFile = filepath.Join(t.TempDir(), "absent")
	if _, err := NewTarget(ep, time.Second); err == nil {
		t.Fatal("a missing token file was accepted")
	}
}
