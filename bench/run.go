package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one workload run.
type Config struct {
	Workload  Workload
	ValueSize int    // bytes per value (synthetic dataset)
	FilesDir  string // if set, values are the files of this directory (ValueSize, Keys ignored)
	Dist      string // "uniform" or "zipfian"
	Keys      int    // keyspace size
	Duration  time.Duration
	Ops       int64 // total operations over all connections; 0 = bounded by Duration only
	Conns     int
	Timeout   time.Duration // per request
	Seed      uint64
	NoPreload bool // skip writing the keyspace before a read workload
	NoVerify  bool // do not check values read back
	Progress  io.Writer
}

// DefaultConfig is the CLI's defaults.
func DefaultConfig() Config {
	return Config{
		Workload: Workloads[0], ValueSize: 100, Dist: "uniform", Keys: 10000,
		Duration: 10 * time.Second, Conns: 64, Timeout: 10 * time.Second, Seed: 1,
	}
}

// ErrBadConfig reports an unusable Config.
var ErrBadConfig = errors.New("bench: bad config")

func (c Config) check() error {
	switch {
	case c.Conns <= 0:
		return fmt.Errorf("%w: connections must be positive", ErrBadConfig)
	case c.Duration <= 0 && c.Ops <= 0:
		return fmt.Errorf("%w: need a duration or an op count", ErrBadConfig)
	case c.Workload.Name == "":
		return fmt.Errorf("%w: no workload", ErrBadConfig)
	}
	return nil
}

// NewDataset builds the Config's dataset.
func (c Config) NewDataset() (*Dataset, error) {
	if c.FilesDir != "" {
		return LoadFilesDataset(c.FilesDir)
	}
	return NewSyntheticDataset(c.Keys, c.ValueSize, c.Seed)
}

// Endpoint is where a run sends its load, and which process (tree) to account for.
type Endpoint struct {
	Name  string // label in reports
	Proto string // ProtoHTTP, ProtoEtcd, ProtoRedis, ProtoPeer
	Addr  string // host:port
	Pid   int    // server process whose tree's CPU and RSS are reported; 0 = none
	// Addrs, when set, are every member of a replicated store that takes load: worker i
	// connects to Addrs[i%len(Addrs)] instead of Addr.
	Addrs []string
	// Pids are the store's other processes (members, replicas), accounted with Pid's tree.
	Pids []int
	// SecretFile is the cluster_secret_file whose secret a ProtoPeer target proves; "" for
	// a node without one.
	SecretFile string
	// TLSCAFile, TLSCertFile and TLSKeyFile reach a target whose tls_cert_file is set: the
	// CA verifies the server (HTTP or peer); the certificate and key are this client's,
	// which the peer port requires (mutual TLS). All "": plaintext.
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// TokenFile holds the bearer token a ProtoHTTP target sends with every request (the
	// target's http_tokens_file, or a file of its own; its first token); "" sends none.
	TokenFile string
}

// Run drives cfg's workload against ep and reports.
func Run(ctx context.Context, cfg Config, ep Endpoint) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ds, err := cfg.NewDataset()
	if err != nil {
		return nil, err
	}
	return RunDataset(ctx, cfg, ds, ep)
}

// worker is one connection's state; counters are read by the progress printer.
type worker struct {
	id    int
	t     Target
	rng   *rand.Rand
	hist  Histogram // all successful ops
	rhist Histogram // reads
	whist Histogram // writes
	errs  map[string]uint64
	kbuf  []byte
	vbuf  []byte
	ops   atomic.Uint64
	bytes atomic.Uint64
	nerr  atomic.Uint64
	_     [64]byte // keep neighbouring workers' counters off this cache line
}

// RunDataset is Run with a prepared dataset (Compare shares one between targets).
func RunDataset(ctx context.Context, cfg Config, ds *Dataset, ep Endpoint) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	keys, err := NewKeyChooser(cfg.Dist, ds.Len())
	if err != nil {
		return nil, err
	}
	ws, err := dialWorkers(cfg, ep)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, w := range ws {
			_ = w.t.Close()
		}
	}()
	if cfg.Workload.Reads() && !cfg.NoPreload {
		if err := preload(ctx, cfg, ds, ws, ep.Name); err != nil {
			return nil, err
		}
	}
	before := ep.usage()
	cpu0 := selfCPU()
	elapsed := measure(ctx, cfg, ds, keys, ws, ep.Name)
	res := newResult(cfg, ds, ep, elapsed, ws)
	res.ClientCPU = selfCPU() - cpu0
	if ep.Pid > 0 {
		after := ep.usage()
		res.ServerProcs, res.ServerCPU, res.ServerPeakRSS = after.Procs, after.CPUSecs-before.CPUSecs, after.PeakRSS
	}
	return res, ctx.Err()
}

// usage sums TreeUsage over the endpoint's server processes (zero without a Pid).
func (ep Endpoint) usage() Usage {
	var u Usage
	if ep.Pid <= 0 {
		return u
	}
	for _, pid := range append([]int{ep.Pid}, ep.Pids...) {
		t := TreeUsage(pid)
		u.Procs, u.CPUSecs, u.PeakRSS = u.Procs+t.Procs, u.CPUSecs+t.CPUSecs, u.PeakRSS+t.PeakRSS
	}
	return u
}

func dialWorkers(cfg Config, ep Endpoint) ([]*worker, error) {
	ws := make([]*worker, cfg.Conns)
	for i := range ws {
		e := ep
		if len(ep.Addrs) > 0 {
			e.Addr = ep.Addrs[i%len(ep.Addrs)]
		}
		t, err := NewTarget(e, cfg.Timeout)
		if err != nil {
			for _, w := range ws[:i] {
				_ = w.t.Close()
			}
			return nil, fmt.Errorf("bench: connect %s %s: %w", ep.Name, e.Addr, err)
		}
		ws[i] = &worker{id: i, t: t, rng: newRand(cfg.Seed, i), errs: map[string]uint64{}}
	}
	return ws, nil
}

// preload writes every key once (worker i takes keys i, i+n, …) so reads hit; not measured.
// It fails if any write fails: a read workload over a half-loaded keyspace measures nothing.
func preload(ctx context.Context, cfg Config, ds *Dataset, ws []*worker, name string) error {
	var done atomic.Int64
	stop := startProgress(cfg.Progress, func(el time.Duration) string {
		return fmt.Sprintf("%s preload %d/%d keys", name, done.Load(), ds.Len())
	})
	defer stop()
	errc := make(chan error, len(ws))
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for i := w.id; i < ds.Len() && ctx.Err() == nil; i += len(ws) {
				w.kbuf = ds.Key(w.kbuf[:0], i)
				if err := w.t.Set(w.kbuf, ds.Value(i)); err != nil {
					errc <- fmt.Errorf("bench: preload %s key %q: %w", name, w.kbuf, err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}

// measure runs the workload on every worker until the duration or op budget is spent and
// returns the elapsed time.
func measure(ctx context.Context, cfg Config, ds *Dataset, keys KeyChooser, ws []*worker, name string) time.Duration {
	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var budget *atomic.Int64
	if cfg.Ops > 0 {
		budget = new(atomic.Int64)
		budget.Store(cfg.Ops)
	}
	stop := startProgress(cfg.Progress, progressLine(name, ws))
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.loop(ctx, cfg, ds, keys, deadline, budget) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	return elapsed
}

// loop is the hot path: one sequential request at a time, no allocation on success.
func (w *worker) loop(ctx context.Context, cfg Config, ds *Dataset, keys KeyChooser, deadline time.Time, budget *atomic.Int64) {
	done := ctx.Done()
	backoff := time.Duration(0)
	for {
		select {
		case <-done:
			return
		default:
		}
		if budget != nil && budget.Add(-1) < 0 {
			return
		}
		i := keys.Next(w.rng)
		w.kbuf = ds.Key(w.kbuf[:0], i)
		read := cfg.Workload.IsRead(w.rng)
		t0 := time.Now()
		if !deadline.IsZero() && !t0.Before(deadline) {
			return
		}
		var n int
		var err error
		if read {
			var got []byte
			got, err = w.t.Get(w.kbuf, w.vbuf[:0])
			if err == nil {
				n = len(got)
				w.vbuf = got[:0]
				if !cfg.NoVerify && !ds.Verify(i, got) {
					err = ErrMismatch
				}
			}
		} else {
			v := ds.Value(i)
			err = w.t.Set(w.kbuf, v)
			n = len(v)
		}
		lat := int64(time.Since(t0))
		if err != nil {
			w.errs[ErrorKind(err)]++
			w.nerr.Add(1)
			if transportError(err) {
				backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
				time.Sleep(backoff)
			}
			continue
		}
		backoff = 0
		w.hist.Record(lat)
		if read {
			w.rhist.Record(lat)
		} else {
			w.whist.Record(lat)
		}
		w.ops.Add(1)
		w.bytes.Add(uint64(n))
	}
}

// progressLine renders the once-a-second status from the workers' counters.
func progressLine(name string, ws []*worker) func(time.Duration) string {
	var lastOps, lastBytes uint64
	var lastT time.Duration
	return func(el time.Duration) string {
		var ops, bytes, errs uint64
		for _, w := range ws {
			ops += w.ops.Load()
			bytes += w.bytes.Load()
			errs += w.nerr.Load()
		}
		dt := (el - lastT).Seconds()
		line := fmt.Sprintf("%s %5.1fs  %s ops/s  %s MB/s  ops %d  errors %d", name, el.Seconds(),
			fmtRate(float64(ops-lastOps)/dt), fmtRate(float64(bytes-lastBytes)/dt/1e6), ops, errs)
		lastOps, lastBytes, lastT = ops, bytes, el
		return line
	}
}

// startProgress prints line(elapsed) to w once per second, and once more when the returned
// stop is called.
func startProgress(w io.Writer, line func(time.Duration) string) (stop func()) {
	if w == nil {
		return func() {}
	}
	start := time.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tk.C:
				fmt.Fprintln(w, line(time.Since(start)))
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
		fmt.Fprintln(w, line(time.Since(start))) // the final state, also for runs under a second
	}
}
