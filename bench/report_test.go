package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// sampleResult is a result with round figures for formatting tests.
func sampleResult(name string, ops float64) *Result {
	return &Result{
		Target: name, Proto: ProtoHTTP, Addr: "127.0.0.1:1", Workload: "c", ValueSize: 100, Dist: "uniform",
		Keys: 1000, Conns: 64, ElapsedSecs: 10, Ops: uint64(ops * 10), Reads: uint64(ops * 10),
		Bytes: uint64(ops * 1000), OpsPerSec: ops, MBPerSec: ops * 100 / 1e6,
		Latency:    Latency{Count: uint64(ops * 10), Mean: 600, P50: 512, P99: 1500, P999: 4200, Max: 12000},
		ErrorCount: 3, Errors: map[string]uint64{"timeout": 1, "http 500": 2},
		ServerProcs: 1, ServerCPU: 12.5, ServerPeakRSS: 64 << 20,
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, []*Result{sampleResult("node", 95123)}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"target", "ops/s", "p99.9", "peak RSS", "node", "95.1k", "9.51",
		"512µs", "1.50ms", "4.20ms", "12.0ms", "12.50", "64.0 MiB", "100 B", "errors node: http 500=2 timeout=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestResultJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleResult("node", 1000)); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"target", "workload", "ops", "ops_per_s", "mb_per_s", "latency", "errors",
		"error_count", "server_cpu_s", "server_peak_rss_bytes", "read_latency", "write_latency"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b.String())
		}
	}
	lat := m["latency"].(map[string]any)
	if lat["p99_us"] != 1500.0 || lat["p999_us"] != 4200.0 {
		t.Errorf("latency JSON %v", lat)
	}
	if m["errors"].(map[string]any)["http 500"] != 2.0 {
		t.Errorf("errors JSON %v", m["errors"])
	}
}

func TestComparisonTable(t *testing.T) {
	c := &Comparison{Workload: "c", ValueSize: 100, Dist: "uniform", Keys: 1000, Conns: 64, Baseline: Baseline,
		Results: []*Result{sampleResult("bare", 120000), sampleResult("node", 96000), sampleResult("redis", 92000)},
		Skipped: []Skipped{{Target: "etcd", Reason: "bench: binary not found: etcd not on PATH (apt-get install -y etcd-server)\nmore"}}}
	c.computeRatios()
	if r := c.Ratios["bare"]; r.OpsPerSec != 1.25 || r.P99 != 1 {
		t.Fatalf("bare ratios %+v", r)
	}
	var b bytes.Buffer
	if err := c.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"workload c, 100 B values, 1000 keys uniform, 64 connections", "ops vs node",
		"1.25×", "0.96×", "every figure ÷ node's", "skipped etcd: bench: binary not found: etcd not on PATH (apt-get install -y etcd-server) …"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
	c.Results = c.Results[2:]
	c.Ratios = nil
	c.computeRatios()
	b.Reset()
	_ = c.WriteTable(&b)
	if !strings.Contains(b.String(), "no ratios: node was not measured") {
		t.Errorf("missing baseline not said:\n%s", b.String())
	}
	if strings.Contains(b.String(), "layout") {
		t.Errorf("layout named without a cluster result:\n%s", b.String())
	}
	c.Results, c.Layout = append(c.Results, sampleResult("cluster", 30000)), LayoutHosts
	b.Reset()
	_ = c.WriteTable(&b)
	if !strings.Contains(b.String(), "64 connections, cluster layout hosts\n") {
		t.Errorf("cluster layout not said:\n%s", b.String())
	}
}

func TestFormatters(t *testing.T) {
	for in, want := range map[float64]string{0: "-", 0.5: "500ns", 12.34: "12.3µs", 999: "999µs", 1500: "1.50ms", 2.5e6: "2.50s"} {
		if got := fmtLatency(in); got != want {
			t.Errorf("fmtLatency(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{0.5: "0.50", 42: "42.0", 7809: "7809", 95123: "95.1k", 2.5e6: "2.50M"} {
		if got := fmtRate(in); got != want {
			t.Errorf("fmtRate(%v) = %q, want %q", in, got, want)
		}
	}
	if got, err := ParseTargets("bare, redis"); err != nil || len(got) != 2 {
		t.Errorf("ParseTargets: %v %v", got, err)
	}
	if _, err := ParseTargets("bare,mysql"); err == nil {
		t.Error("unknown target accepted")
	}
}
