// Package metricstest reads Prometheus text expositions in tests: parsed
// with Prometheus's own text-format parser (prometheus/common/expfmt), and
// linted by `promtool check metrics` when promtool is installed. Tests of
// the metrics package, the coordinator and cmd/e2e share it.
package metricstest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/valyala/fasthttp"
)

// Families is a parsed exposition by family name.
type Families map[string]*dto.MetricFamily

// Parse parses body in the text format; a parse error fails the test.
func Parse(t testing.TB, body []byte) Families {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	return fams
}

// Scrape calls serve (a Registry's Serve) as GET /metrics would, checks the
// status and content type, and parses the body, which it returns too.
func Scrape(t testing.TB, serve fasthttp.RequestHandler) (Families, []byte) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/metrics")
	serve(&ctx)
	if code := ctx.Response.StatusCode(); code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, ctx.Response.Body())
	}
	if ct := string(ctx.Response.Header.ContentType()); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: Content-Type %q", ct)
	}
	body := bytes.Clone(ctx.Response.Body())
	return Parse(t, body), body
}

// Value returns the value of name's first series carrying labels (name,
// value pairs): a counter's or gauge's value, a histogram's sample count.
// No such series fails the test.
func (f Families) Value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.Lookup(name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

// Lookup is Value reporting absence instead of failing.
func (f Families) Lookup(name string, labels ...string) (float64, bool) {
	fam, ok := f[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.Counter.GetValue(), true
		case dto.MetricType_GAUGE:
			return m.Gauge.GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.Histogram.GetSampleCount()), true
		}
		return m.Untyped.GetValue(), true
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.Label {
			found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
		}
		if !found {
			return false
		}
	}
	return true
}

// Promtool runs `promtool check metrics` (its linter: names, units, help
// texts) on body when promtool is on PATH, and logs a line when it is not.
func Promtool(t testing.TB, body []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not on PATH: skipping `promtool check metrics` (apt-get install prometheus)")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
