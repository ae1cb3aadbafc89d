package metrics

import (
	"strconv"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// The libraries side by side, doing what the HTTP handler does per request:
// one counter increment and one histogram observation, both labelled by
// method and code and resolved ahead (a table indexed by method and code, as
// the handler keeps). Run with -cpu 1,2: a serial and a contended figure.

var (
	benchMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OTHER"}
	benchCodes   = []int{200, 404, 503}
)

type (
	vmTable struct {
		c [6][3]*vm.Counter
		h [6][3]*vm.PrometheusHistogram
	}
	promTable struct {
		c [6][3]prometheus.Counter
		h [6][3]prometheus.Observer
	}
)

func newVMTable() *vmTable {
	s, t := vm.NewSet(), &vmTable{}
	for m, method := range benchMethods {
		for c, code := range benchCodes {
			labels := `{method="` + method + `",code="` + strconv.Itoa(code) + `"}`
			t.c[m][c] = s.NewCounter("tako_http_requests_total" + labels)
			t.h[m][c] = s.NewPrometheusHistogramExt("tako_http_request_duration_seconds"+labels, DurationBuckets)
		}
	}
	return t
}

func newPromTable() *promTable {
	reg, t := prometheus.NewRegistry(), &promTable{}
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tako_http_requests_total", Help: "h"}, []string{"method", "code"})
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tako_http_request_duration_seconds", Help: "h", Buckets: DurationBuckets}, []string{"method", "code"})
	reg.MustRegister(cv, hv)
	for m, method := range benchMethods {
		for c, code := range benchCodes {
			t.c[m][c] = cv.WithLabelValues(method, strconv.Itoa(code))
			t.h[m][c] = hv.WithLabelValues(method, strconv.Itoa(code))
		}
	}
	return t
}

func BenchmarkLibraries(b *testing.B) {
	d := (350 * time.Microsecond).Seconds()
	b.Run("victoriametrics", func(b *testing.B) {
		t := newVMTable()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				t.c[0][0].Inc()
				t.h[0][0].Update(d)
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		t := newPromTable()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				t.c[0][0].Inc()
				t.h[0][0].Observe(d)
			}
		})
	})
}
