package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/metrics"
	"github.com/tako-kv/tako/server/metrics/metricstest"
)

// watch runs c's watcher until the test ends.
func watch(t *testing.T, c *Coordinator) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// scrapeMetrics parses GET /metrics.
func scrapeMetrics(t *testing.T, base string) metricstest.Families {
	t.Helper()
	resp, body := request(t, "GET", base+metrics.Path)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", metrics.Path, resp.StatusCode, body)
	}
	metricstest.Promtool(t, body)
	return metricstest.Parse(t, body)
}

// TestMetrics: the coordinator's metrics say the version served, count
// edits served and refused, the migration state and the nodes down.
func TestMetrics(t *testing.T) {
	c, path, base, _ := newCoordinator(t, doc("yes"), 10*time.Millisecond)
	watch(t, c)

	v1, v2 := versionOf(t, doc("yes")), versionOf(t, doc("no"))
	fams := scrapeMetrics(t, base)
	if v := fams.Value(t, "tako_config_info", "version", v1); v != 1 {
		t.Errorf("config info %s = %v", v1, v)
	}
	if v := fams.Value(t, "tako_migration_state", "state", StateNone); v != 1 {
		t.Errorf("migration state none = %v", v)
	}
	if v := fams.Value(t, "tako_migration_state", "state", StateCopying); v != 0 {
		t.Errorf("migration state copying = %v", v)
	}
	if v := fams.Value(t, "tako_node_up", "node", "n1"); v != 0 {
		t.Errorf("n1 (not running) up = %v", v)
	}

	writeFile(t, path, strings.Replace(doc("yes"), "read_repair", "read_repiar", 1))
	deadline := time.Now().Add(5 * time.Second)
	for c.refused.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	writeFile(t, path, doc("no"))
	waitVersion(t, base, v2)
	fams = scrapeMetrics(t, base)
	if v := fams.Value(t, "tako_config_info", "version", v2); v != 1 {
		t.Errorf("config info %s = %v", v2, v)
	}
	for name, want := range map[string]float64{"tako_coordinator_config_changes_total": 1, "tako_coordinator_config_refused_total": 1} {
		if got := fams.Value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
