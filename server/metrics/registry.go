package metrics

import (
	"bytes"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

// Path is where every process serves its metrics.
const Path = "/metrics"

// Registry is one process's metrics (a node, a proxy, a coordinator), with
// the Go runtime's and the process's own. Processes in one test binary
// each have their own.
type Registry struct{ reg *prometheus.Registry }

// NewRegistry returns a registry holding the Go and process collectors.
func NewRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg}
}

// register adds cs to r; a nil r (metrics nobody scrapes, in tests) keeps
// them unregistered, counting all the same.
func (r *Registry) register(cs ...prometheus.Collector) {
	if r != nil {
		r.reg.MustRegister(cs...)
	}
}

// textFormat is the Prometheus text exposition format, version 0.0.4.
var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// Serve answers GET Path on fasthttp (nodes and proxies) in the text format.
func (r *Registry) Serve(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		ctx.Error("method not allowed; allowed: GET, HEAD\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	var buf bytes.Buffer
	if err := r.write(&buf); err != nil {
		ctx.Error(err.Error()+"\n", fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType(string(textFormat))
	ctx.SetBody(buf.Bytes())
}

// write gathers every metric and encodes it in the text format.
func (r *Registry) write(buf *bytes.Buffer) error {
	mfs, err := r.reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(buf, textFormat)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encode metric %s: %w", mf.GetName(), err)
		}
	}
	return nil
}

// Handler serves GET Path on net/http (the coordinator).
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}

// scraped is metrics read at each scrape: describe lists their families
// and collect sends their values (computing what they share once).
type scraped struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (s scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
}

func (s scraped) Collect(ch chan<- prometheus.Metric) { s.collect(ch) }

// family is one metric family read at scrape time.
type family struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

func counterFamily(name, help string, labels ...string) family {
	return family{prometheus.NewDesc(name, help, labels, nil), prometheus.CounterValue}
}

func gaugeFamily(name, help string, labels ...string) family {
	return family{prometheus.NewDesc(name, help, labels, nil), prometheus.GaugeValue}
}

// emit sends one value of f.
func (f family) emit(ch chan<- prometheus.Metric, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(f.desc, f.typ, v, labels...)
}

// registerScraped registers fams, collected by collect.
func (r *Registry) registerScraped(collect func(ch chan<- prometheus.Metric), fams ...family) {
	s := scraped{collect: collect}
	for _, f := range fams {
		s.descs = append(s.descs, f.desc)
	}
	r.register(s)
}

// stat is one unlabelled family read from a snapshot T of its source.
type stat[T any] struct {
	family
	value   func(T) float64
	present func(T) bool // nil: always
}

func gauge[T any](name, help string, value func(T) float64) stat[T] {
	return stat[T]{family: gaugeFamily(name, help), value: value}
}

func counter[T any](name, help string, value func(T) float64) stat[T] {
	return stat[T]{family: counterFamily(name, help), value: value}
}

// when leaves s out of scrapes whose snapshot fails present.
func (s stat[T]) when(present func(T) bool) stat[T] {
	s.present = present
	return s
}

// registerStats registers stats, read from one snapshot of read per scrape.
func registerStats[T any](r *Registry, read func() T, stats ...stat[T]) {
	fams := make([]family, len(stats))
	for i, s := range stats {
		fams[i] = s.family
	}
	r.registerScraped(func(ch chan<- prometheus.Metric) {
		snap := read()
		for _, s := range stats {
			if s.present == nil || s.present(snap) {
				s.emit(ch, s.value(snap))
			}
		}
	}, fams...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
