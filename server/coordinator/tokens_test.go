package coordinator

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tako-kv/tako/server/config"
)

const (
	roToken = "ro-0123456789abcdef"
	rwToken = "rw-0123456789abcdef"
)

func writeTokens(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// With http_tokens_file, everything but /health needs a token: /configuration
// and /status a read-only one, POST /force-finish a read-write one. A new
// configuration reads the file again, so a rotated token works without a
// restart and the old one stops working.
func TestCoordinatorRequiresTokens(t *testing.T) {
	dir := t.TempDir()
	writeTokens(t, filepath.Join(dir, "tokens"), roToken+" read-only\n"+rwToken+" read-write\n")
	path := filepath.Join(dir, "tako.yaml")
	writeFile(t, path, doc("yes")+"http_tokens_file: tokens\n")
	c, err := New(Options{ID: "c1", File: path})
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, c)
	f := func(method, p, token string, want int, body string) {
		t.Helper()
		var hdr []string
		if token != "" {
			hdr = []string{"Authorization", "Bearer " + token}
		}
		resp, b := request(t, method, srv+p, hdr...)
		if resp.StatusCode != want || !strings.Contains(string(b), body) {
			t.Errorf("%s %s with %q: %d %q, want %d %q", method, p, token, resp.StatusCode, b, want, body)
		}
		if want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", method, p)
		}
	}
	f("GET", PathHealth, "", 200, "ok")
	f("GET", PathConfig, "", 401, "authorization required")
	f("GET", PathStatus, "", 401, "authorization required")
	f("GET", "/", "", 401, "authorization required")
	f("GET", PathConfig, "wrong-0123456789abcdef", 401, "unknown token")
	f("GET", PathConfig, roToken, 200, `"http_tokens_file":"tokens"`)
	f("POST", PathForceFinish, roToken, 403, "read-only token")
	f("POST", PathForceFinish, rwToken, 409, "no finishing configuration")

	const rotated = "rotated-0123456789abcdef"
	writeTokens(t, filepath.Join(dir, "tokens"), rotated+" read-only\n")
	cfg, err := config.Parse([]byte(doc("no") + "http_tokens_file: tokens\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.serve(cfg); err != nil {
		t.Fatal(err)
	}
	f("GET", PathConfig, roToken, 401, "unknown token")
	f("GET", PathConfig, rotated, 200, `"read_repair":false`)
	if tok := c.token.Load(); tok == nil || *tok != rotated {
		t.Errorf("the token sent to nodes is %v, want the first of the file", tok)
	}

	// An unusable file (here: readable by others) at start is an error naming it.
	if err := os.Chmod(filepath.Join(dir, "tokens"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{ID: "c1", File: path}); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("New with a world-readable tokens file: %v", err)
	}
}

func newTestServer(t *testing.T, c *Coordinator) string {
	t.Helper()
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}
