package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Config says which scenario to run and how.
type Config struct {
	Scenario string        // a name of Scenarios
	Duration time.Duration // of workload and nemesis; 0 for the scenario's default
	// History is where the JSON-lines history goes. "" writes it into the run's dir when that
	// is kept, else, when there are violations, into a new file under os.TempDir().
	History string
	Keep    bool      // keep the run's dir (configs, var dirs, logs)
	Out     io.Writer // events and progress as they happen; nil for none
	// Binary finds a Tako command ("tako-node", "tako-proxy"); bench.Binaries.Tako fits.
	Binary func(name string) (string, error)
	Seed   uint64
	Logger *slog.Logger // the harness's own troubles (interposer, unmount); nil discards
	// Network is how the hosts are separated: NetworkAuto (namespaces when root and
	// `ip netns` works, else loopback; $TAKO_CHAOS_NETWORK overrides), NetworkLoopback or
	// NetworkNetns.
	Network string
}

// Result is what a run did and what the checker found.
type Result struct {
	Scenario    string         `json:"scenario"`
	Mode        string         `json:"mode"`
	Skipped     string         `json:"skipped,omitempty"` // why the scenario could not run here
	Err         string         `json:"err,omitempty"`     // why the run stopped short: no verdict
	Duration    time.Duration  `json:"duration"`          // workload and nemesis
	Events      []Event        `json:"events"`
	Notes       []string       `json:"notes,omitempty"` // the scenario's own figures
	Ops         int            `json:"ops"`
	Acked       int            `json:"acked"` // writes and deletes answered 200
	Reads       int            `json:"reads"` // reads answered 200 or 404
	Outcomes    map[string]int `json:"outcomes"`
	OpsPerSec   float64        `json:"ops_per_sec"` // every operation, whatever its outcome
	OKPerSec    float64        `json:"ok_per_sec"`
	KeysChecked int            `json:"keys_checked"`
	Finals      map[string]int `json:"finals"` // final records by kind: value, tombstone, absent, mixed
	Convergence Convergence    `json:"convergence"`
	Violations  []Violation    `json:"violations"`
	History     string         `json:"history,omitempty"`
	Dir         string         `json:"dir,omitempty"` // kept run dir
}

// convergeBound bounds the wait for healing to make the replicas agree at the end.
const convergeBound = 60 * time.Second

// Run runs one scenario: cluster, workload and nemesis for the duration, then heals every
// fault and checks. A non-nil error means the harness itself failed (the Result, if any,
// says how far it got); violations are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	sc, ok := findScenario(cfg.Scenario)
	if !ok {
		return nil, fmt.Errorf("%w: %q (have %s)", ErrUnknownScenario, cfg.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	return runScenario(ctx, cfg, sc)
}

func runScenario(ctx context.Context, cfg Config, sc Scenario) (*Result, error) {
	res := &Result{Scenario: sc.Name, Outcomes: map[string]int{}}
	bins, err := findBinaries(cfg.Binary)
	if err != nil {
		return res, err
	}
	if why := sc.unsupported(bins.Features); why != "" {
		res.Skipped = why
		return res, nil
	}
	dir, err := os.MkdirTemp("", "tako-chaos-"+sc.Name+"-")
	if err != nil {
		return res, fmt.Errorf("chaos: %w", err)
	}
	defer func() {
		if cfg.Keep {
			res.Dir = dir
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := startCluster(ctx, clusterSpec{layout: sc.Layout, bins: bins, dir: dir, log: log, net: cfg.Network})
	if errors.Is(err, ErrNeedRoot) {
		res.Skipped = err.Error()
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer c.Stop()
	res.Mode = c.Mode()
	if cfg.Out != nil {
		fmt.Fprintf(cfg.Out, "chaos: hosts: %s\n", res.Mode)
	}
	e := newEnv(c, sc, cfg)
	err = e.run(ctx, res)
	if herr := writeHistory(cfg, dir, e.hist, res); herr != nil {
		err = errors.Join(err, herr)
	}
	if err != nil {
		res.Err = err.Error()
	}
	return res, err
}

// run drives the scenario, heals, converges and checks.
func (e *Env) run(ctx context.Context, res *Result) error {
	start := time.Now()
	serr := e.sc.Run(ctx, e)
	res.Duration = time.Since(start)
	if serr != nil {
		serr = fmt.Errorf("chaos: scenario %s: %w", e.sc.Name, serr)
	}
	herr := e.N.HealAll(ctx)
	res.Events = e.N.Events()
	e.mu.Lock()
	res.Notes = e.notes
	e.mu.Unlock()
	ops := e.hist.Ops()
	res.tally(ops)
	if herr != nil {
		return errors.Join(serr, fmt.Errorf("chaos: heal: %w", herr))
	}
	keys := e.checkedKeys()
	e.logf("checking %d keys: waiting up to %v for the replicas to converge", len(keys), convergeBound)
	finals, cv := e.C.Converge(ctx, keys, convergeBound)
	res.Convergence = cv
	res.KeysChecked = len(finals)
	res.Finals = finalKinds(finals)
	d := e.C.Cfg.ActiveDeployment()
	// Tombstones older than tombstone_grace may be purged; with the default (10 days) no run
	// lasts that long.
	opts := CheckOptions{Acks: d.WriteAcks, Purged: d.TombstoneGrace < time.Hour}
	res.Violations = append(e.failures(), Check(ops, finals, opts)...)
	return serr
}

// tally counts the operations by outcome and their rates over the run.
func (r *Result) tally(ops []Op) {
	r.Ops = len(ops)
	for i := range ops {
		r.Outcomes[ops[i].Outcome()]++
		if ops[i].Acked() {
			r.Acked++
		} else if ops[i].Kind == OpRead && ops[i].Outcome() == OutcomeOK {
			r.Reads++
		}
	}
	if secs := r.Duration.Seconds(); secs > 0 {
		r.OpsPerSec = float64(r.Ops) / secs
		r.OKPerSec = float64(r.Outcomes[OutcomeOK]) / secs
	}
}

func writeHistory(cfg Config, dir string, h *History, res *Result) error {
	path := cfg.History
	switch {
	case path != "":
	case cfg.Keep:
		path = filepath.Join(dir, "history.jsonl")
	case len(res.Violations) > 0:
		f, err := os.CreateTemp("", "tako-chaos-"+res.Scenario+"-*.jsonl")
		if err != nil {
			return fmt.Errorf("chaos: history: %w", err)
		}
		f.Close()
		path = f.Name()
	default:
		return nil
	}
	res.History = path
	return h.WriteFile(path)
}

// Failed reports whether the checker found anything wrong.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// WriteReport prints the verdict: what was injected, operations by outcome, throughput, keys
// checked and violations by kind with a few examples each.
func (r *Result) WriteReport(w io.Writer) {
	if r.Skipped != "" {
		fmt.Fprintf(w, "%s: skipped: %s\n", r.Scenario, r.Skipped)
		return
	}
	fmt.Fprintf(w, "%s (%s), %.1fs\n", r.Scenario, r.Mode, r.Duration.Seconds())
	for _, e := range r.Events {
		fmt.Fprintf(w, "  %v\n", e)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
	fmt.Fprintf(w, "  operations: %d (", r.Ops)
	for i, k := range []string{OutcomeOK, Outcome503, Outcome507, OutcomeTimeout, OutcomeOther} {
		if i > 0 {
			fmt.Fprint(w, ", ")
		}
		fmt.Fprintf(w, "%s %d", k, r.Outcomes[k])
	}
	fmt.Fprintf(w, "); %.0f ops/s, %.0f ok/s\n", r.OpsPerSec, r.OKPerSec)
	fmt.Fprintf(w, "  checked: %d acknowledged writes and deletes, %d reads\n", r.Acked, r.Reads)
	fmt.Fprintf(w, "  keys checked: %d on every replica (%d values, %d tombstones, %d absent, %d mixed)\n",
		r.KeysChecked, r.Finals["value"], r.Finals["tombstone"], r.Finals["absent"], r.Finals["mixed"])
	fmt.Fprintf(w, "  convergence: %d keys differed once every fault was undone; converged %v after %.1fs\n",
		r.Convergence.DivergedAtFirst, r.Convergence.Converged, r.Convergence.Wait.Seconds())
	if r.History != "" {
		fmt.Fprintf(w, "  history: %s\n", r.History)
	}
	if r.Dir != "" {
		fmt.Fprintf(w, "  run dir kept: %s\n", r.Dir)
	}
	switch {
	case r.Err != "" && !r.Failed():
		fmt.Fprintf(w, "  verdict: none, the run stopped short: %s\n", r.Err)
		return
	case !r.Failed():
		fmt.Fprintf(w, "  verdict: ok, no violation\n")
		return
	}
	byKind := map[string][]Violation{}
	var kinds []string
	for _, v := range r.Violations {
		if byKind[v.Kind] == nil {
			kinds = append(kinds, v.Kind)
		}
		byKind[v.Kind] = append(byKind[v.Kind], v)
	}
	slices.Sort(kinds)
	fmt.Fprintf(w, "  verdict: %d violations\n", len(r.Violations))
	for _, k := range kinds {
		fmt.Fprintf(w, "    %s: %d\n", k, len(byKind[k]))
		for _, v := range byKind[k][:min(3, len(byKind[k]))] {
			fmt.Fprintf(w, "      %v\n", v)
		}
	}
}

// finalKinds counts the keys whose replicas all hold a value, a tombstone or nothing, and
// those that differ.
func finalKinds(finals map[string][]Record) map[string]int {
	out := map[string]int{}
	for _, recs := range finals {
		kind := "mixed"
		if converged(map[string][]Record{"": recs}) && len(recs) > 0 {
			switch r := recs[0]; {
			case !r.Present:
				kind = "absent"
			case r.Tombstone:
				kind = "tombstone"
			default:
				kind = "value"
			}
		}
		out[kind]++
	}
	return out
}
