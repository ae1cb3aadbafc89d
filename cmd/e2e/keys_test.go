package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/admin"
)

// keysPage is a GET /keys reply.
type keysPage struct {
	Keys       []string `json:"keys"`
	Next       string   `json:"next"`
	Unanswered []string `json:"unanswered"`
}

// listKeys pages through base's GET /keys, limit keys a page, and returns
// the keys (decoded), the pages, and the nodes named unanswered.
func listKeys(t *testing.T, base string, limit int) (keys []string, pages int, unanswered []string) {
	t.Helper()
	after := ""
	for pages < 1000 {
		status, body, err := get(fmt.Sprintf("%s/keys?limit=%d&after=%s", base, limit, after))
		if err != nil || status != 200 {
			t.Fatalf("GET /keys after %q: %d %v %s", after, status, err, body)
		}
		var p keysPage
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("GET /keys: %v in %.200s", err, body)
		}
		pages++
		if len(p.Keys) > limit {
			t.Fatalf("page %d: %d keys, limit %d", pages, len(p.Keys), limit)
		}
		for _, k := range p.Keys {
			d, err := url.PathUnescape(k)
			if err != nil {
				t.Fatalf("listed key %q: %v", k, err)
			}
			keys = append(keys, d)
		}
		for _, n := range p.Unanswered {
			if !slices.Contains(unanswered, n) {
				unanswered = append(unanswered, n)
			}
		}
		if p.Next == "" {
			return keys, pages, unanswered
		}
		after = p.Next
	}
	t.Fatal("the listing does not end")
	return nil, 0, nil
}

// TestListKeys writes 20,000 keys through the proxy of the local cluster,
// deletes some, and lists them in pages of 1,000 through the proxy: every
// live key once, in order, none deleted; then again with a node killed
// (its mirror lists its keys), and with tako-admin keys.
func TestListKeys(t *testing.T) {
	c := startCluster(t)
	const n = 20000
	var want []string
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("e2e/list-%05d", i)
	}
	odd := []string{"odd \x00\xff", "plus+sign", "with space", "100%", "タコ", "\"quoted\""}
	copy(keys, odd)
	var failed atomic.Int32
	parallel(n, 16, func(i int) {
		if status, err := post(t.Context(), keyURL(c.proxyURL, []byte(keys[i])), []byte("v")); err != nil || status != 200 {
			failed.Add(1)
			t.Errorf("write %q: %d %v", keys[i], status, err)
		}
	})
	if failed.Load() > 0 {
		t.FailNow()
	}
	deleted := map[string]bool{}
	for i := 100; i < n; i += 97 {
		if status, err := del(keyURL(c.proxyURL, []byte(keys[i]))); err != nil || status != 200 {
			t.Fatalf("delete %q: %d %v", keys[i], status, err)
		}
		deleted[keys[i]] = true
	}
	for _, k := range keys {
		if !deleted[k] {
			want = append(want, k)
		}
	}
	slices.Sort(want)

	check := func(when string, got []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			seen := map[string]int{}
			for _, k := range got {
				seen[k]++
			}
			missing, twice := 0, 0
			for _, k := range want {
				if seen[k] == 0 {
					missing++
				}
			}
			for _, c := range seen {
				if c > 1 {
					twice++
				}
			}
			t.Fatalf("%s: %d keys listed, want %d (%d missing, %d more than once, sorted %v)",
				when, len(got), len(want), missing, twice, slices.IsSorted(got))
		}
	}
	began := time.Now()
	got, pages, unanswered := listKeys(t, c.proxyURL, 1000)
	t.Logf("listed %d keys in %d pages through the proxy in %v", len(got), pages, time.Since(began).Round(time.Millisecond))
	check("through the proxy", got)
	if pages != len(want)/1000+1 || len(unanswered) > 0 {
		t.Errorf("%d pages of 1000 for %d keys, unanswered %v", pages, len(want), unanswered)
	}

	// A node lists only its own keys: those it replicates.
	own, _, _ := listKeys(t, "http://"+c.cfg.Nodes()[0].HTTPAddr(), 1000)
	if len(own) == 0 || len(own) >= len(want) {
		t.Errorf("node n1 lists %d keys of %d", len(own), len(want))
	}
	for _, k := range own[:min(len(own), 200)] {
		if !slices.Contains(c.replicas([]byte(k)), c.cfg.Nodes()[0].ID) {
			t.Errorf("n1 lists %q, which it does not replicate", k)
		}
	}

	proxy := strings.TrimPrefix(c.proxyURL, "http://")
	code, out, errOut := takoAdmin(t, "-proxy", proxy, "keys", "--prefix", "e2e/list-0000")
	if code != admin.ExitOK || out != "e2e/list-00006\ne2e/list-00007\ne2e/list-00008\ne2e/list-00009\n" {
		t.Errorf("tako-admin keys --prefix: exit %d\n%s%s", code, out, errOut)
	}

	// n3 killed: n4 holds the same keys; the listing says it went without n3.
	c.nodes["n3"].kill(syscall.SIGKILL)
	got, _, unanswered = listKeys(t, c.proxyURL, 1000)
	check("with n3 killed", got)
	if !slices.Equal(unanswered, []string{"n3"}) {
		t.Errorf("with n3 killed: unanswered %v", unanswered)
	}
	code, out, errOut = takoAdmin(t, "-proxy", proxy, "keys")
	if lines := strings.Count(out, "\n"); code != admin.ExitUnhealthy || lines != len(want) || !strings.Contains(errOut, "n3") {
		t.Errorf("tako-admin keys with n3 killed: exit %d, %d lines (want %d, exit %d)\n%s", code, lines, len(want), admin.ExitUnhealthy, errOut)
	}
	// Its whole bucket down: the listing is refused, naming the bucket.
	c.nodes["n4"].kill(syscall.SIGKILL)
	if status, body, err := get(c.proxyURL + "/keys"); err != nil || status != 503 || !strings.Contains(string(body), "b2") {
		t.Errorf("with b2 down: %d %v %s", status, err, body)
	}
}
