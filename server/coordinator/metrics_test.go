package coordinator

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tako-kv/tako/metrics"
)

// scrapeMetrics parses GET /metrics with Prometheus's text-format parser.
func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := request(t, "GET", base+metrics.Path)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", metrics.Path, resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return fams
}

// seriesWith returns the value of name's series whose label key is val.
func seriesWith(t *testing.T, fams map[string]*dto.MetricFamily, name, key, val string) float64 {
	t.Helper()
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == key && l.GetValue() == val {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, key, val)
	return 0
}

// TestMetrics: the coordinator's metrics say the version served, count
// edits served and refused, the migration state and the nodes down.
func TestMetrics(t *testing.T) {
	c, path, base, _ := newCoordinator(t, doc("yes"), 10*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Watch(ctx) }()
	defer func() { cancel(); <-done }()

	v1, v2 := versionOf(t, doc("yes")), versionOf(t, doc("no"))
	fams := scrapeMetrics(t, base)
	if v := seriesWith(t, fams, "tako_config_info", "version", v1); v != 1 {
		t.Errorf("config info %s = %v", v1, v)
	}
	if v := seriesWith(t, fams, "tako_migration_state", "state", StateNone); v != 1 {
		t.Errorf("migration state none = %v", v)
	}
	if v := seriesWith(t, fams, "tako_migration_state", "state", StateCopying); v != 0 {
		t.Errorf("migration state copying = %v", v)
	}
	if v := seriesWith(t, fams, "tako_node_up", "node", "n1"); v != 0 {
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
	if v := seriesWith(t, fams, "tako_config_info", "version", v2); v != 1 {
		t.Errorf("config info %s = %v", v2, v)
	}
	for name, want := range map[string]float64{"tako_coordinator_config_changes_total": 1, "tako_coordinator_config_refused_total": 1} {
		if got := fams[name].GetMetric()[0].GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
