package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// CompareTargets are the stores Compare knows, in the order it runs them.
var CompareTargets = []string{"disk", "bare", "node", "node-peer", "cluster", "redis", "redis-always", "redis-replica", "etcd", "etcd3"}

// ClusterReplicas is how many replicas the cluster target keeps of each key
// (local_cluster.yaml: 2 buckets of 2 nodes): its durable ingest ceiling is
// the disk's synced bandwidth divided by this.
const ClusterReplicas = 4

// Baseline is the target every ratio is relative to: Tako's standalone node.
const Baseline = "node"

// CompareConfig is one side-by-side run.
type CompareConfig struct {
	Config              // the workload, run identically against every target
	Only   []string     // targets to run (default CompareTargets)
	Start  StartOptions // how servers are started
	Log    io.Writer    // skip lines and start/stop notes (progress goes to Config.Progress)
}

// Skipped is a target that was not measured, and why.
type Skipped struct {
	Target string `json:"target"`
	Reason string `json:"reason"`
}

// Ratios is every figure of a result divided by the baseline's (0 when undefined).
type Ratios struct {
	OpsPerSec float64 `json:"ops_per_s"`
	MBPerSec  float64 `json:"mb_per_s"`
	P50       float64 `json:"p50"`
	P99       float64 `json:"p99"`
	P999      float64 `json:"p999"`
	CPU       float64 `json:"server_cpu_s"`
	PeakRSS   float64 `json:"server_peak_rss"`
}

// Comparison is Compare's report; its JSON form is `compare -json`.
type Comparison struct {
	Workload  string             `json:"workload"`
	ValueSize int                `json:"value_size"`
	FilesDir  string             `json:"files_dir,omitempty"`
	Dist      string             `json:"dist"`
	Keys      int                `json:"keys"`
	Conns     int                `json:"conns"`
	Layout    string             `json:"cluster_layout"` // the cluster target's (LayoutPorts, LayoutHosts)
	Baseline  string             `json:"baseline"`
	Results   []*Result          `json:"results"`
	Ratios    map[string]*Ratios `json:"ratios,omitempty"` // by target; absent without a baseline
	Skipped   []Skipped          `json:"skipped"`
}

// ErrUnknownTarget reports a -only name Compare does not know.
var ErrUnknownTarget = errors.New("bench: unknown compare target")

// ParseTargets splits a comma list and checks each name.
func ParseTargets(list string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !slices.Contains(CompareTargets, t) {
			return nil, fmt.Errorf("%w %q (want %s)", ErrUnknownTarget, t, strings.Join(CompareTargets, ","))
		}
		out = append(out, t)
	}
	return out, nil
}

// Compare runs the workload against each target in turn: start it on free ports, preload,
// measure, stop it and remove its temp dir. A target that cannot be started is skipped with a
// line on cc.Log. It returns what was measured even when ctx is cancelled midway.
func Compare(ctx context.Context, cc CompareConfig) (*Comparison, error) {
	if err := cc.Config.check(); err != nil {
		return nil, err
	}
	layout, err := ParseLayout(cc.Start.Layout)
	if err != nil {
		return nil, err
	}
	ds, err := cc.Config.NewDataset()
	if err != nil {
		return nil, err
	}
	logw := cc.Log
	if logw == nil {
		logw = io.Discard
	}
	if cc.Start.Bins == nil {
		cc.Start.Bins = NewBinaries()
		defer cc.Start.Bins.Close()
	}
	if cc.Start.ValueSize == 0 && !ds.Files() {
		cc.Start.ValueSize = ds.AvgValueSize() // bare GETs return a value of the right length
	}
	cmp := &Comparison{
		Workload: cc.Workload.Name, ValueSize: ds.AvgValueSize(), FilesDir: ds.dir, Dist: cc.Dist,
		Keys: ds.Len(), Conns: cc.Conns, Layout: layout, Baseline: Baseline, Skipped: []Skipped{},
	}
	only := cc.Only
	if len(only) == 0 {
		only = CompareTargets
	}
	for _, name := range CompareTargets {
		if !slices.Contains(only, name) {
			continue
		}
		if name == "disk" && len(cc.Only) == 0 && (cc.Workload.ReadFrac > 0 || ds.Files()) {
			continue // the disk ceiling only means something for ingest
		}
		if ctx.Err() != nil {
			break
		}
		res, err := compareOne(ctx, cc, ds, name, logw)
		if err != nil {
			cmp.Skipped = append(cmp.Skipped, Skipped{Target: name, Reason: err.Error()})
			fmt.Fprintf(logw, "skip %s: %v\n", name, err)
			continue
		}
		cmp.Results = append(cmp.Results, res)
	}
	cmp.computeRatios()
	return cmp, ctx.Err()
}

// compareOne starts, measures and stops one target.
func compareOne(ctx context.Context, cc CompareConfig, ds *Dataset, name string, logw io.Writer) (*Result, error) {
	cfg := cc.Config
	var srv *Server
	var err error
	switch name {
	case "disk":
		if cfg.Workload.ReadFrac > 0 || ds.Files() {
			return nil, fmt.Errorf("the disk ceiling is measured for the ingest workload of fixed-size values only")
		}
		return MeasureDisk(ctx, cc.Start.TempDir, ds.AvgValueSize(), cfg.Duration)
	case "bare":
		srv, err = StartBare(ctx, cc.Start)
		cfg.NoVerify = cfg.NoVerify || ds.Files() // it returns a constant value
	case "node":
		srv, err = StartNode(ctx, cc.Start)
	case "node-peer":
		srv, err = StartNodePeer(ctx, cc.Start)
	case "cluster":
		srv, err = StartCluster(ctx, cc.Start)
	case "redis", "redis-always":
		srv, err = StartRedis(ctx, cc.Start, name == "redis-always")
	case "redis-replica":
		srv, err = StartRedisReplica(ctx, cc.Start)
	case "etcd":
		srv, err = StartEtcd(ctx, cc.Start)
	case "etcd3":
		srv, err = StartEtcd3(ctx, cc.Start)
	default:
		err = fmt.Errorf("%w %q", ErrUnknownTarget, name)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "started %s on %s\n", name, srv.where())
	res, runErr := RunDataset(ctx, cfg, ds, srv.Endpoint)
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(logw, "stop %s: %v\n", name, err)
	}
	if runErr != nil && res == nil {
		return nil, fmt.Errorf("run failed: %w", runErr)
	}
	return res, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// computeRatios fills Ratios relative to the baseline result, if it was measured.
func (c *Comparison) computeRatios() {
	i := slices.IndexFunc(c.Results, func(r *Result) bool { return r.Target == c.Baseline })
	if i < 0 {
		return
	}
	b := c.Results[i]
	c.Ratios = map[string]*Ratios{}
	for _, r := range c.Results {
		c.Ratios[r.Target] = &Ratios{
			OpsPerSec: ratio(r.OpsPerSec, b.OpsPerSec), MBPerSec: ratio(r.MBPerSec, b.MBPerSec),
			P50: ratio(r.Latency.P50, b.Latency.P50), P99: ratio(r.Latency.P99, b.Latency.P99),
			P999: ratio(r.Latency.P999, b.Latency.P999), CPU: ratio(r.ServerCPU, b.ServerCPU),
			PeakRSS: ratio(float64(r.ServerPeakRSS), float64(b.ServerPeakRSS)),
		}
	}
}

func fmtRatio(f float64) string {
	if f == 0 {
		return "-"
	}
	return sig3(f) + "×"
}

// WriteTable prints the side-by-side table, then every figure as a ratio to the baseline, then
// errors and skipped targets.
func (c *Comparison) WriteTable(w io.Writer) error {
	what := FormatBytes(uint64(c.ValueSize)) + " values"
	if c.FilesDir != "" {
		what = "files of " + c.FilesDir + " (mean " + FormatBytes(uint64(c.ValueSize)) + ")"
	}
	fmt.Fprintf(w, "workload %s, %s, %d keys %s, %d connections", c.Workload, what, c.Keys, c.Dist, c.Conns)
	if c.result("cluster") != nil {
		fmt.Fprintf(w, ", cluster layout %s", c.Layout)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tops/s\tMB/s\tp50\tp99\tp99.9\tCPU s\tpeak RSS\terrors\tops vs node\t")
	for _, r := range c.Results {
		rt := "-"
		if q := c.Ratios[r.Target]; q != nil {
			rt = fmtRatio(q.OpsPerSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", r.Target, fmtRate(r.OpsPerSec),
			fmtRate(r.MBPerSec), fmtLatency(r.Latency.P50), fmtLatency(r.Latency.P99),
			fmtLatency(r.Latency.P999), fmtCPU(r), fmtRSS(r), r.ErrorCount, rt)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c.Ratios == nil {
		fmt.Fprintf(w, "no ratios: %s was not measured\n", c.Baseline)
	} else {
		fmt.Fprintf(w, "\nevery figure ÷ %s's (above 1× = more throughput, or more latency/CPU/RSS than Tako)\n", c.Baseline)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tops/s\tMB/s\tp50\tp99\tp99.9\tCPU s\tpeak RSS\t")
		for _, r := range c.Results {
			q := c.Ratios[r.Target]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Target, fmtRatio(q.OpsPerSec), fmtRatio(q.MBPerSec),
				fmtRatio(q.P50), fmtRatio(q.P99), fmtRatio(q.P999), fmtRatio(q.CPU), fmtRatio(q.PeakRSS))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	// For small values the disk row is a sync rate, not a bandwidth: group
	// commit puts many values in one sync, so the ratio means nothing there.
	if disk, cl := c.result("disk"), c.result("cluster"); disk != nil && cl != nil && c.ValueSize >= 64<<10 {
		ceiling := disk.MBPerSec / ClusterReplicas
		fmt.Fprintf(w, "cluster ingest %.1f MB/s of unique data = %.0f%% of the disk's synced bandwidth ÷ %d replicas (%.1f MB/s)\n",
			cl.MBPerSec, 100*cl.MBPerSec/ceiling, ClusterReplicas, ceiling)
	}
	for _, r := range c.Results {
		if r.ErrorCount > 0 {
			fmt.Fprintf(w, "errors %s: %s\n", r.Target, r.ErrorSummary())
		}
	}
	for _, s := range c.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.Target, firstLine(s.Reason))
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// result returns the result of target, nil when it was not measured.
func (c *Comparison) result(target string) *Result {
	for _, r := range c.Results {
		if r.Target == target {
			return r
		}
	}
	return nil
}
