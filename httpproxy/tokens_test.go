package httpproxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/internal/logbuf"
	"github.com/tako-kv/tako/kv"
	"github.com/valyala/fasthttp"
)

const (
	roToken = "ro-0123456789abcdef"
	rwToken = "rw-0123456789abcdef"
)

var testTokensFile = "# tokens of the tests\n\n" + roToken + " read-only   # the checker\n" + rwToken + "\tread-write\n"

func testTokens(t testing.TB) *TokenGuard {
	t.Helper()
	tok, err := ParseTokens([]byte(testTokensFile))
	if err != nil {
		t.Fatal(err)
	}
	var g TokenGuard
	g.Set(tok)
	return &g
}

func TestParseTokens(t *testing.T) {
	f := func(name, doc string, wantLen int, wantErr string) {
		t.Helper()
		tok, err := ParseTokens([]byte(doc))
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case wantErr == "" && tok.Len() != wantLen:
			t.Errorf("%s: %d tokens, want %d", name, tok.Len(), wantLen)
		case wantErr != "" && (err == nil || !errors.Is(err, ErrTokensFile) || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: err = %v, want ErrTokensFile with %q", name, err, wantErr)
		}
	}
	f("two", testTokensFile, 2, "")
	f("crlf", roToken+" read-only\r\n", 1, "")
	f("padding", "abcdefghijklmnop== read-write", 1, "")
	f("empty", "", 0, "no tokens")
	f("comments only", "# nothing\n   # here\n", 0, "no tokens")
	f("no access", roToken+"\n", 0, "line 1: want `TOKEN read-only`")
	f("three fields", roToken+" read-only extra\n", 0, "3 fields")
	f("bad access", "\n"+roToken+" admin\n", 0, `line 2: access "admin"`)
	f("short", "short read-only", 0, "token of 5 characters")
	f("long", strings.Repeat("a", MaxTokenLen+1)+" read-only", 0, "token of 257 characters")
	f("bad char", "abcdefghijklmnop\"q read-only", 0, `character '"'`)
	f("only padding", strings.Repeat("=", 20)+" read-only", 0, "only = padding")
	f("duplicate", roToken+" read-only\n"+roToken+" read-write\n", 0, "line 2: the token of line 1 again")
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(testTokensFile))
	f.Add([]byte("x read-only\n#\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		tok, err := ParseTokens(doc)
		if err != nil {
			if tok != nil || !errors.Is(err, ErrTokensFile) {
				t.Fatalf("error %v with tokens %v", err, tok)
			}
			return
		}
		if tok.Len() == 0 {
			t.Fatal("parsed a file without tokens")
		}
	})
}

func TestTokenCheck(t *testing.T) {
	g := testTokens(t)
	f := func(authz string, write bool, want int, reason string) {
		t.Helper()
		status, why := g.check([]byte(authz), write)
		if status != want || !strings.Contains(why, reason) {
			t.Errorf("%q write=%v: %d %q, want %d %q", authz, write, status, why, want, reason)
		}
	}
	f("", false, 401, "send Authorization: Bearer")
	f("Basic dXNlcjpwYXNz", false, 401, "not a Bearer token")
	f("Bearer", false, 401, "not a Bearer token")
	f("Bearer nope-0123456789abcdef", false, 401, "unknown token")
	f("Bearer "+roToken+"x", false, 401, "unknown token")
	f("Bearer "+roToken, false, 0, "")
	f("bearer  "+roToken+" ", false, 0, "")
	f("Bearer "+roToken, true, 403, "read-only token")
	f("Bearer "+rwToken, true, 0, "")
	f("Bearer "+rwToken, false, 0, "")
	var open TokenGuard
	if s, _ := open.check(nil, true); s != 0 || open.Enabled() {
		t.Error("an empty guard refused a request")
	}
}

// Every path but /health needs a token: none is 401 with WWW-Authenticate, a
// read-only token reads but cannot write (403), a read-write one does both.
func TestHandlerRequiresTokens(t *testing.T) {
	s := newStore(t)
	h := NewHandler(Config{Backend: storeBackend{s}, Local: s, Tokens: testTokens(t), OpenPaths: []string{"/ready"},
		Routes: map[string]fasthttp.RequestHandler{
			"/ready":   func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ready") },
			"/metrics": func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("metrics") },
		}})
	serve := func(method, uri, token string) (int, string, string) {
		ctx := newCtx(method, uri)
		if token != "" {
			ctx.Request.Header.Set("Authorization", "Bearer "+token)
		}
		ctx.Request.SetBodyString("v")
		h.Serve(ctx)
		return ctx.Response.StatusCode(), string(ctx.Response.Body()), string(ctx.Response.Header.Peek("WWW-Authenticate"))
	}
	f := func(method, uri, token string, want int, body, challenge string) {
		t.Helper()
		code, got, ch := serve(method, uri, token)
		if code != want || !strings.Contains(got, body) || ch != challenge {
			t.Errorf("%s %s with %q: %d %q (challenge %q), want %d %q (%q)", method, uri, token, code, got, ch, want, body, challenge)
		}
	}
	const challenge, scope = `Bearer realm="tako"`, `Bearer realm="tako", error="insufficient_scope"`
	f("GET", "/health", "", 200, "ok", "")
	f("GET", "/ready", "", 200, "ready", "")
	f("GET", "/metrics", "", 401, "authorization required", challenge)
	f("GET", "/metrics", roToken, 200, "metrics", "")
	f("POST", "/values/k", "", 401, "authorization required", challenge)
	f("GET", "/values/k", "", 401, "authorization required", challenge)
	f("GET", "/replica/k", "", 401, "authorization required", challenge)
	f("GET", "/stat/k", "wrong-0123456789abc", 401, "unknown token", challenge)
	f("POST", "/values/k", roToken, 403, "read-only token", scope)
	f("DELETE", "/values/k", roToken, 403, "read-only token", scope)
	f("GET", "/values/k", roToken, 404, "not found", "")
	f("POST", "/values/k", rwToken, 200, "", "")
	f("GET", "/values/k", roToken, 200, "v", "")
	f("GET", "/replica/k", roToken, 200, "v", "")
	f("DELETE", "/values/k", rwToken, 200, "", "")
}

// The GET path with a token still does not allocate.
func TestGetWithTokenDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under -race")
	}
	s := newStore(t)
	if _, err := s.Apply([]byte("key"), kv.Record{TS: 1, Value: make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	h := NewHandler(Config{Backend: storeBackend{s}, Tokens: testTokens(t)})
	ctx := newCtx("GET", "/values/key")
	ctx.Request.Header.Set("Authorization", "Bearer "+roToken)
	h.Serve(ctx)
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("setup GET: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if allocs := testing.AllocsPerRun(200, func() { ctx.Response.Reset(); h.Serve(ctx) }); allocs != 0 {
		t.Fatalf("GET with a token allocates %.1f per request", allocs)
	}
}

func TestRequireTokens(t *testing.T) {
	h := RequireTokens(testTokens(t), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("served")) }), "/health")
	f := func(method, path, token string, want int) {
		t.Helper()
		r := httptest.NewRequest(method, path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want || want != 200 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s %q: %d %q, want %d", method, path, token, w.Code, w.Body, want)
		}
	}
	f("GET", "/health", "", 200)
	f("GET", "/configuration", "", 401)
	f("GET", "/configuration", roToken, 200)
	f("POST", "/force-finish", roToken, 403)
	f("POST", "/force-finish", rwToken, 200)
}

func TestReadTokenFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	servers := write("tokens", testTokensFile, 0o600)
	if tok, err := ReadTokensFile(servers); err != nil || tok.Len() != 2 {
		t.Fatalf("ReadTokensFile: %v %v", tok, err)
	}
	if tok, err := ReadClientToken(servers); err != nil || tok != roToken {
		t.Fatalf("ReadClientToken of the tokens file: %q %v, want the first token", tok, err)
	}
	if tok, err := ReadClientToken(write("bare", rwToken+"\n", 0o400)); err != nil || tok != rwToken {
		t.Fatalf("ReadClientToken of a bare token: %q %v", tok, err)
	}
	open := write("open", testTokensFile, 0o644)
	for _, err := range []error{second(ReadTokensFile(open)), second(ReadClientToken(open))} {
		if !errors.Is(err, eventloop.ErrNotPrivate) || !strings.Contains(err.Error(), open) || !strings.Contains(err.Error(), "mode 0644") {
			t.Errorf("a world-readable file: %v, want ErrNotPrivate naming it", err)
		}
	}
	bad := write("bad", "x read-only\n", 0o600)
	if err := second(ReadTokensFile(bad)); !errors.Is(err, ErrTokensFile) || !strings.Contains(err.Error(), bad) {
		t.Errorf("a bad tokens file: %v", err)
	}
	if err := second(ReadClientToken(write("empty", "# none\n", 0o600))); !errors.Is(err, ErrTokensFile) {
		t.Errorf("an empty client token file: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestMalformedRequestKeepsTokenSecret: a request fasthttp cannot parse is
// answered 400 without echoing its headers, and the log does not keep them
// either: they hold the bearer token (fasthttp quotes the raw header buffer
// in its parse errors unless told not to).
func TestMalformedRequestKeepsTokenSecret(t *testing.T) {
	logger, logs := logbuf.Logger()
	base := serveConfig(t, Config{Backend: storeBackend{newStore(t)}, Tokens: testTokens(t), Logger: logger})
	nc, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST /values/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + rwToken + "\r\nContent-Length: x1\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(nc) // fasthttp closes after a parse error
	if !strings.HasPrefix(string(reply), "HTTP/1.1 400") {
		t.Fatalf("reply %q, want a 400", reply)
	}
	if strings.Contains(string(reply), rwToken) {
		t.Errorf("the 400 echoes the token: %q", reply)
	}
	if strings.Contains(logs.String(), rwToken) {
		t.Errorf("the log holds the token:\n%s", logs.String())
	}
}
