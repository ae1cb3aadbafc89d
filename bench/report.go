package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Latency is a histogram's summary in microseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// Summarize reads the report's percentiles off h.
func Summarize(h *Histogram) Latency {
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return Latency{
		Count: h.Count(), Mean: h.Mean() / 1e3,
		P50: us(h.Quantile(0.5)), P99: us(h.Quantile(0.99)), P999: us(h.Quantile(0.999)), Max: us(h.Max()),
	}
}

// Result is one run's report; its JSON form is the -json output.
type Result struct {
	Target        string            `json:"target"`
	Proto         string            `json:"proto"`
	Addr          string            `json:"addr"`
	Workload      string            `json:"workload"`
	ValueSize     int               `json:"value_size"` // mean for -files
	FilesDir      string            `json:"files_dir,omitempty"`
	Dist          string            `json:"dist"`
	Keys          int               `json:"keys"`
	Conns         int               `json:"conns"`
	ElapsedSecs   float64           `json:"elapsed_s"`
	Ops           uint64            `json:"ops"` // successful operations
	Reads         uint64            `json:"reads"`
	Writes        uint64            `json:"writes"`
	Bytes         uint64            `json:"bytes"` // value bytes written + read
	OpsPerSec     float64           `json:"ops_per_s"`
	MBPerSec      float64           `json:"mb_per_s"` // 10^6 bytes of values per second
	Latency       Latency           `json:"latency"`
	ReadLatency   Latency           `json:"read_latency"`
	WriteLatency  Latency           `json:"write_latency"`
	ErrorCount    uint64            `json:"error_count"`
	Errors        map[string]uint64 `json:"errors"` // by kind: "http 500", "timeout", "conn refused", "mismatch", …
	ServerProcs   int               `json:"server_procs"`
	ServerCPU     float64           `json:"server_cpu_s"`          // over the measured phase
	ServerPeakRSS uint64            `json:"server_peak_rss_bytes"` // VmHWM summed over the tree
	ClientCPU     float64           `json:"client_cpu_s"`          // tako-bench itself
}

func newResult(cfg Config, ds *Dataset, ep Endpoint, elapsed time.Duration, ws []*worker) *Result {
	var all, rd, wr Histogram
	r := &Result{
		Target: ep.Name, Proto: ep.Proto, Addr: ep.Addr, Workload: cfg.Workload.Name,
		ValueSize: ds.AvgValueSize(), FilesDir: ds.dir, Dist: cfg.Dist, Keys: ds.Len(),
		Conns: len(ws), ElapsedSecs: elapsed.Seconds(), Errors: map[string]uint64{},
	}
	for _, w := range ws {
		all.Merge(&w.hist)
		rd.Merge(&w.rhist)
		wr.Merge(&w.whist)
		r.Bytes += w.bytes.Load()
		for k, n := range w.errs {
			r.Errors[k] += n
			r.ErrorCount += n
		}
	}
	r.Ops, r.Reads, r.Writes = all.Count(), rd.Count(), wr.Count()
	if s := elapsed.Seconds(); s > 0 {
		r.OpsPerSec = float64(r.Ops) / s
		r.MBPerSec = float64(r.Bytes) / s / 1e6
	}
	r.Latency, r.ReadLatency, r.WriteLatency = Summarize(&all), Summarize(&rd), Summarize(&wr)
	return r
}

// ErrorSummary renders errors by kind, most frequent first: "http 500=12 timeout=3", or "0".
func (r *Result) ErrorSummary() string {
	if r.ErrorCount == 0 {
		return "0"
	}
	kinds := slices.SortedFunc(maps.Keys(r.Errors), func(a, b string) int {
		return cmp.Or(cmp.Compare(r.Errors[b], r.Errors[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k + "=" + strconv.FormatUint(r.Errors[k], 10)
	}
	return strings.Join(parts, " ")
}

// WriteTable prints results as a human table.
func WriteTable(w io.Writer, rs []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tworkload\tvalue\tconns\ttime\tops\tops/s\tMB/s\tp50\tp99\tp99.9\tmax\tCPU s\tpeak RSS\terrors\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1fs\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
			r.Target, r.Workload, FormatBytes(uint64(r.ValueSize)), r.Conns, r.ElapsedSecs, r.Ops,
			fmtRate(r.OpsPerSec), fmtRate(r.MBPerSec), fmtLatency(r.Latency.P50), fmtLatency(r.Latency.P99),
			fmtLatency(r.Latency.P999), fmtLatency(r.Latency.Max), fmtCPU(r), fmtRSS(r), r.ErrorCount)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		if r.ErrorCount > 0 {
			if _, err := fmt.Fprintf(w, "errors %s: %s\n", r.Target, r.ErrorSummary()); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteJSON prints v indented.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fmtRate renders a rate with three significant digits and a k/M suffix.
func fmtRate(f float64) string {
	switch {
	case f >= 1e6:
		return sig3(f/1e6) + "M"
	case f >= 1e4:
		return sig3(f/1e3) + "k"
	case f >= 1000:
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return sig3(f)
}

// fmtLatency renders microseconds with three significant digits and a unit.
func fmtLatency(us float64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1:
		return sig3(us*1e3) + "ns"
	case us < 1e3:
		return sig3(us) + "µs"
	case us < 1e6:
		return sig3(us/1e3) + "ms"
	}
	return sig3(us/1e6) + "s"
}

func fmtCPU(r *Result) string {
	if r.ServerProcs == 0 {
		return "-"
	}
	return strconv.FormatFloat(r.ServerCPU, 'f', 2, 64)
}

func fmtRSS(r *Result) string {
	if r.ServerProcs == 0 {
		return "-"
	}
	return FormatBytes(r.ServerPeakRSS)
}
