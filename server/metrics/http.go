package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// HTTP is the request metrics of one HTTP API handler:
//
//	tako_http_requests_total{method,code}
//	tako_http_request_duration_seconds{method,code}   histogram
//
// The series of each method and code are resolved once, on first use, into
// a fixed table, so that counting a request allocates nothing.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	table    [len(methods)][len(codes) + 1]atomic.Pointer[httpSeries]
}

type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// methods are the method label's values; any other method counts as OTHER.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "OTHER"}

// codes are the statuses the API answers (README, HTTP API); any other is
// resolved on the slow path, each time.
var codes = [...]int{200, 202, 400, 404, 405, 408, 413, 414, 429, 500, 503, 507}

// NewHTTP returns the HTTP metrics, registered with r.
func NewHTTP(r *Registry) *HTTP {
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tako_http_requests_total",
			Help: "HTTP requests answered, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tako_http_request_duration_seconds",
			Help:    "Time from a request's headers to its response being ready (a streamed body's upload included), by method and status code.",
			Buckets: DurationBuckets,
		}, []string{"method", "code"}),
	}
	r.register(m.requests, m.duration)
	return m
}

// DurationBuckets are the upper bounds (seconds) of request duration
// histograms: 100µs to 10s.
var DurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Observe counts the request ctx answered, begun at start.
func (m *HTTP) Observe(ctx *fasthttp.RequestCtx, start time.Time) {
	s := m.series(methodIndex(ctx), ctx.Response.StatusCode())
	s.requests.Inc()
	s.duration.Observe(time.Since(start).Seconds())
}

func (m *HTTP) series(method, code int) *httpSeries {
	c := codeIndex(code)
	if c == len(codes) {
		return m.resolve(method, code) // a status Tako does not answer itself
	}
	if s := m.table[method][c].Load(); s != nil {
		return s
	}
	s := m.resolve(method, code)
	m.table[method][c].Store(s)
	return s
}

func (m *HTTP) resolve(method, code int) *httpSeries {
	labels := []string{methods[method], strconv.Itoa(code)}
	return &httpSeries{requests: m.requests.WithLabelValues(labels...), duration: m.duration.WithLabelValues(labels...)}
}

func methodIndex(ctx *fasthttp.RequestCtx) int {
	switch {
	case ctx.IsGet():
		return 0
	case ctx.IsHead():
		return 1
	case ctx.IsPost():
		return 2
	case ctx.IsPut():
		return 3
	case ctx.IsDelete():
		return 4
	}
	return 5
}

func codeIndex(code int) int {
	for i, c := range codes {
		if c == code {
			return i
		}
	}
	return len(codes)
}
