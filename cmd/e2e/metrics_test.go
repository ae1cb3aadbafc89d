package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/metrics/metricstest"
)

// scrape fetches base's GET /metrics, lints it with promtool when installed,
// and parses it.
func scrape(t *testing.T, base string) metricstest.Families {
	t.Helper()
	code, body, err := get(base + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET %s/metrics: %d %v %s", base, code, err, body)
	}
	metricstest.Promtool(t, body)
	return metricstest.Parse(t, body)
}

// waitReady polls base's GET /ready until it answers want and returns the
// body.
func waitReady(t *testing.T, base string, want int, within time.Duration) string {
	t.Helper()
	var code int
	var body []byte
	eventually(t, within, fmt.Sprintf("%s/ready answers %d", base, want), func() bool {
		var err error
		code, body, err = get(base + "/ready")
		return err == nil && code == want
	})
	return string(body)
}

// TestMetricsAndReadiness runs a coordinator, two buckets of two nodes and
// a proxy as processes: every one serves metrics Prometheus parses (and
// promtool accepts); the request and write counters move exactly with the
// traffic; with both nodes of a bucket killed, /ready on the proxy and on a
// node answers 503 naming that bucket, the failed writes and their hints
// are counted, and once a node of it is back /ready answers 200 again and
// the hints are replayed.
func TestMetricsAndReadiness(t *testing.T) {
	coord, nodes, addrs := smallCluster(t)
	port := freePorts(t, 1)[0]
	proxyURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	proxy := start(t, "tako-proxy", "-host", "127.0.0.1", "-p", strconv.Itoa(port), "-c", coord, "-v", t.TempDir())
	waitHTTP(t, proxyURL+"/health", proxy)
	n1 := "http://" + addrs["n1"]
	waitReady(t, proxyURL, 200, 20*time.Second)
	waitReady(t, n1, 200, 20*time.Second)

	const n = 40
	key := func(i int) string { return fmt.Sprintf("%s/values/metrics-%d", proxyURL, i) }
	before := scrape(t, proxyURL)
	for i := range n {
		if code, err := post(context.Background(), key(i), []byte("v")); err != nil || code != 200 {
			t.Fatalf("POST %d: %d %v", i, code, err)
		}
		if code, _, err := get(key(i)); err != nil || code != 200 {
			t.Fatalf("GET %d: %d %v", i, code, err)
		}
		if code, _, err := get(key(i) + "-absent"); err != nil || code != 404 {
			t.Fatalf("GET absent %d: %d %v", i, code, err)
		}
	}
	after := scrape(t, proxyURL)
	moved := func(name string, labels ...string) float64 {
		v0, _ := before.Lookup(name, labels...)
		return after.Value(t, name, labels...) - v0
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tako_http_requests_total", []string{"method", "POST", "code", "200"}, n},
		{"tako_http_request_duration_seconds", []string{"method", "POST", "code", "200"}, n},
		{"tako_http_requests_total", []string{"method", "GET", "code", "404"}, n},
		// The first scrape is counted once it has answered.
		{"tako_http_requests_total", []string{"method", "GET", "code", "200"}, n + 1},
		{"tako_write_acks_total", []string{"write_acks", "quorum", "outcome", "applied"}, n},
	} {
		if got := moved(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v moved by %v over the traffic, want %v", c.name, c.labels, got, c.want)
		}
	}
	node := scrape(t, n1)
	for _, name := range []string{"tako_pebble_wal_syncs_total", "tako_pebble_wal_bytes_in_total", "tako_store_disk_used_bytes",
		"tako_store_free_bytes", "tako_peer_server_connections"} {
		if v := node.Value(t, name); v <= 0 {
			t.Errorf("n1 %s = %v after %d writes", name, v, n)
		}
	}
	scrape(t, "http://"+coord)

	// Both nodes of b2 down: writes to its keys cannot reach a quorum.
	nodes["n3"].kill(syscall.SIGKILL)
	nodes["n4"].kill(syscall.SIGKILL)
	for _, base := range []string{proxyURL, n1} {
		body := waitReady(t, base, 503, 10*time.Second)
		if !strings.Contains(body, "b2") || strings.Contains(body, "b1") || !strings.Contains(body, "n3, n4") {
			t.Errorf("%s/ready with b2 down: %q", base, body)
		}
	}
	if code, _, err := get(proxyURL + "/health"); err != nil || code != 200 {
		t.Errorf("/health with b2 down: %d %v (liveness, not readiness)", code, err)
	}
	before = scrape(t, proxyURL)
	refused := 0
	for i := range n {
		code, err := post(context.Background(), key(n+i), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		if code == 503 {
			refused++
		}
	}
	after = scrape(t, proxyURL)
	if refused == 0 || refused == n {
		t.Fatalf("%d of %d writes refused with one of two buckets down", refused, n)
	}
	if got := moved("tako_write_acks_total", "write_acks", "quorum", "outcome", "unavailable"); got != float64(refused) {
		t.Errorf("unavailable writes moved by %v, %d answered 503", got, refused)
	}
	// Each refused write missed both nodes of b2: two hints.
	if got := moved("tako_hints_stored_total"); got != float64(2*refused) {
		t.Errorf("hints stored moved by %v, want 2 for each of %d refused writes", got, refused)
	}
	if v, _ := after.Lookup("tako_replica_errors_total", "peer", "n3"); v == 0 {
		t.Error("no replica errors counted for n3")
	}
	if v := scrape(t, "http://"+coord).Value(t, "tako_node_up", "node", "n4"); v != 0 {
		t.Errorf("coordinator: n4 up = %v while killed", v)
	}

	// One node of b2 back (its disk lost): ready again.
	nodes["n3"] = start(t, "tako-node", "-id", "n3", "-c", coord, "-v", filepath.Join(t.TempDir(), "var"))
	waitHTTP(t, "http://"+addrs["n3"]+"/health", nodes["n3"])
	for _, base := range []string{proxyURL, n1} {
		waitReady(t, base, 200, 20*time.Second)
	}
	// The proxy hands n3 the writes it missed.
	eventually(t, 20*time.Second, "the proxy replays n3's hints", func() bool {
		v, _ := scrape(t, proxyURL).Lookup("tako_hints_replayed_total")
		return v >= float64(refused)
	})
}
