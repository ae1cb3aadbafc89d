package admin

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tako-kv/tako/httpproxy"
)

// listKeys is a Lister over a sorted set of keys, with unanswered returned
// as is.
type listKeys struct {
	keys       []string
	unanswered []string
}

func (l listKeys) ListKeys(_ context.Context, start, end []byte, _ int, emit func([]byte) bool) ([]string, error) {
	for _, k := range l.keys {
		if k >= string(start) && (end == nil || k < string(end)) && !emit([]byte(k)) {
			break
		}
	}
	return l.unanswered, nil
}

// serveKeys serves the real GET /keys over l and returns its address.
func serveKeys(t *testing.T, l httpproxy.Lister) string {
	t.Helper()
	h := httpproxy.NewHandler(httpproxy.Config{Keys: l})
	ln, err := httpproxy.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.NewServer()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func TestKeys(t *testing.T) {
	keys := []string{"a b", "a+b", "a/1", "a/2", "a\xff", "a~", "b", "\"q", "タコ"}
	slices.Sort(keys)
	addr := serveKeys(t, listKeys{keys: keys})

	// Text: one key a line, pages followed to the end.
	_, out, _ := run(t, "-proxy", addr, "keys", "--limit", "2")
	want := []string{`"\"q"`, `"a b"`, "a+b", "a/1", "a/2", "a~", `"a\xff"`, "b", "タコ"}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("keys:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	expect(t, ExitOK, []string{"-node", addr, "keys", "--prefix", "a/"}, "a/1\na/2\n")

	// JSON: the keys percent-encoded, in one object.
	_, out, _ = run(t, "-proxy", addr, "-json", "keys", "--prefix", "a", "--limit", "1")
	var j struct{ Keys []string }
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("keys -json: %v\n%s", err, out)
	}
	var decoded []string
	for _, k := range j.Keys {
		d, err := url.PathUnescape(k)
		if err != nil {
			t.Fatal(err)
		}
		decoded = append(decoded, d)
	}
	if !slices.Equal(decoded, keys[1:7]) || !slices.Contains(j.Keys, "a%2F1") {
		t.Errorf("keys -json --prefix a: %q", j.Keys)
	}
	if _, out, _ = run(t, "-proxy", serveKeys(t, listKeys{}), "-json", "keys"); strings.TrimSpace(out) != `{"keys":[]}` {
		t.Errorf("no keys, -json: %q", out)
	}

	// Unanswered nodes: the listing is printed, exit code 3 names them.
	partial := serveKeys(t, listKeys{keys: []string{"k"}, unanswered: []string{"n3"}})
	expect(t, ExitUnhealthy, []string{"-proxy", partial, "keys"}, "k\n", "stderr:n3")
	_, out, _ = run(t, "-proxy", partial, "-json", "keys")
	if !strings.Contains(out, `"unanswered":["n3"]`) {
		t.Errorf("-json partial: %s", out)
	}

	expect(t, ExitUsage, []string{"keys"}, "stderr:-proxy")
	expect(t, ExitUsage, []string{"-proxy", addr, "keys", "--limit", "0"}, "stderr:-limit")
	expect(t, ExitUsage, []string{"-proxy", addr, "keys", "extra"}, "stderr:keys")
	expect(t, ExitError, []string{"-proxy", "127.0.0.1:1", "keys"}, "stderr:127.0.0.1:1")
}
