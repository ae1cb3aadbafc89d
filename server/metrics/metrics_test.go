package metrics

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/hints"
	"github.com/tako-kv/tako/server/metrics/metricstest"
	"github.com/tako-kv/tako/server/nodestatus"
	"github.com/valyala/fasthttp"
)

func scrape(t *testing.T, r *Registry) (metricstest.Families, []byte) {
	t.Helper()
	return metricstest.Scrape(t, r.Serve)
}

// nodeRegistry is a registry with every family a node registers, over
// fixed sources.
func nodeRegistry() (*Registry, *HTTP, *Cluster) {
	r := NewRegistry()
	h, c := NewHTTP(r), NewCluster(r)
	r.Store(func() kv.Stats {
		return kv.Stats{Records: 7, DiskUsedBytes: 1 << 20, WALSyncs: 3, WALBytesIn: 100, FreeBytes: 1 << 30, MinFreeBytes: 1 << 28}
	})
	r.Hints(func() hints.Stats {
		return hints.Stats{Stored: 5, Replayed: 4, Dropped: 1, Pending: 1, PendingBytes: 10}
	})
	began := time.Unix(1700000000, 0)
	r.Healing(func() Healing {
		return Healing{Passes: 2, PushedRecords: 9, ExchangedBytes: 4096,
			Last: &nodestatus.Pass{Began: began, Ended: began.Add(1500 * time.Millisecond), Unconfirmed: 3}}
	})
	r.Peers(func() []PeerConn { return []PeerConn{{Node: "n2", Conns: 1}, {Node: "n3"}} }, func() int { return 4 })
	r.Config(func() string { return "v7" })
	return r, h, c
}

// TestExposition: every family a node exposes parses, has its type and
// help, and carries the values of its sources.
func TestExposition(t *testing.T) {
	r, h, c := nodeRegistry()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("PUT")
	ctx.SetStatusCode(503)
	h.Observe(&ctx, time.Now())
	c.Write("quorum", WriteUnavailable)
	c.ReplicaError("n2", KindTimeout)
	c.ReadRepair()
	fams, body := scrape(t, r)
	for _, want := range []struct {
		name string
		typ  dto.MetricType
		v    float64
		l    []string
	}{
		{"tako_http_requests_total", dto.MetricType_COUNTER, 1, []string{"method", "PUT", "code", "503"}},
		{"tako_http_request_duration_seconds", dto.MetricType_HISTOGRAM, 1, []string{"method", "PUT", "code", "503"}},
		{"tako_write_acks_total", dto.MetricType_COUNTER, 1, []string{"write_acks", "quorum", "outcome", "unavailable"}},
		{"tako_write_acks_total", dto.MetricType_COUNTER, 0, []string{"write_acks", "all", "outcome", "applied"}},
		{"tako_replica_errors_total", dto.MetricType_COUNTER, 1, []string{"peer", "n2", "kind", "timeout"}},
		{"tako_read_repairs_total", dto.MetricType_COUNTER, 1, nil},
		{"tako_store_records", dto.MetricType_GAUGE, 7, nil},
		{"tako_store_disk_used_bytes", dto.MetricType_GAUGE, 1 << 20, nil},
		{"tako_store_free_bytes", dto.MetricType_GAUGE, 1 << 30, nil},
		{"tako_store_min_free_bytes", dto.MetricType_GAUGE, 1 << 28, nil},
		{"tako_pebble_wal_syncs_total", dto.MetricType_COUNTER, 3, nil},
		{"tako_pebble_wal_bytes_in_total", dto.MetricType_COUNTER, 100, nil},
		{"tako_pebble_compactions_total", dto.MetricType_COUNTER, 0, nil},
		{"tako_hints_stored_total", dto.MetricType_COUNTER, 5, nil},
		{"tako_hints_replayed_total", dto.MetricType_COUNTER, 4, nil},
		{"tako_hints_dropped_total", dto.MetricType_COUNTER, 1, nil},
		{"tako_healing_exchanged_bytes_total", dto.MetricType_COUNTER, 4096, nil},
		{"tako_healing_last_pass_unconfirmed_records", dto.MetricType_GAUGE, 3, nil},
		{"tako_healing_last_pass_duration_seconds", dto.MetricType_GAUGE, 1.5, nil},
		{"tako_peer_connections", dto.MetricType_GAUGE, 1, []string{"peer", "n2"}},
		{"tako_peer_connections", dto.MetricType_GAUGE, 0, []string{"peer", "n3"}},
		{"tako_peer_server_connections", dto.MetricType_GAUGE, 4, nil},
		{"tako_config_info", dto.MetricType_GAUGE, 1, []string{"version", "v7"}},
	} {
		if f := fams[want.name]; f == nil || f.GetType() != want.typ || f.GetHelp() == "" {
			t.Errorf("%s: family %v, want type %v with help", want.name, f, want.typ)
			continue
		}
		if v := fams.Value(t, want.name, want.l...); v != want.v {
			t.Errorf("%s%v = %v, want %v", want.name, want.l, v, want.v)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	metricstest.Promtool(t, body)
}

// TestHTTPCounts: N requests move the counter and the histogram by N, by
// method and code; an unusual status is counted too.
func TestHTTPCounts(t *testing.T) {
	r := NewRegistry()
	h := NewHTTP(r)
	f := func(method string, code, n int) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.SetStatusCode(code)
		for range n {
			h.Observe(&ctx, time.Now())
		}
	}
	f("GET", 200, 25)
	f("GET", 404, 3)
	f("PATCH", 405, 2)
	f("DELETE", 418, 4)
	fams, _ := scrape(t, r)
	for _, c := range []struct {
		method, code string
		n            float64
	}{{"GET", "200", 25}, {"GET", "404", 3}, {"OTHER", "405", 2}, {"DELETE", "418", 4}} {
		if v := fams.Value(t, "tako_http_requests_total", "method", c.method, "code", c.code); v != c.n {
			t.Errorf("requests %s %s = %v, want %v", c.method, c.code, v, c.n)
		}
		if v := fams.Value(t, "tako_http_request_duration_seconds", "method", c.method, "code", c.code); v != c.n {
			t.Errorf("durations %s %s = %v, want %v", c.method, c.code, v, c.n)
		}
	}
	if n := len(fams["tako_http_requests_total"].Metric); n != 4 {
		t.Errorf("%d request series, want the 4 used", n)
	}
}

// TestObserveDoesNotAllocate: counting a request allocates nothing once
// its series is resolved.
func TestObserveDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under -race")
	}
	h := NewHTTP(NewRegistry())
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	h.Observe(&ctx, time.Now())
	if n := testing.AllocsPerRun(1000, func() { h.Observe(&ctx, time.Now()) }); n != 0 {
		t.Fatalf("Observe allocates %.1f", n)
	}
}
