// Command tako-bench is Tako's load harness: it runs a YCSB-style workload against one running
// store (`tako-bench [run]`), or side by side against a bare fasthttp server, a standalone
// tako-node, a local cluster, Redis and etcd that it starts itself (`tako-bench compare`).
// `tako-bench chaos` breaks a cluster it starts on purpose and checks what survived.
// See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/tako-kv/tako/bench"
	"github.com/tako-kv/tako/bench/chaos"
	"github.com/tako-kv/tako/cmd/internal/cli"
)

const usage = `usage:
  tako-bench [run] [flags]       one workload against a running store (-addr, -proto)
  tako-bench compare [flags]     the same workload against disk, bare, node, node-peer, node-peer-secret,
                                 node-peer-tls, cluster, redis, redis-always, redis-replica, etcd, etcd3 (each started
                                 on free loopback ports and stopped afterwards)
  tako-bench chaos -scenario NAME|all [-d DURATION] [-history FILE] [-keep]
                                 workload + nemesis + checker on a cluster of loopback hosts (tako-bench chaos -h)
flags:
`

func main() {
	cli.HandleVersion("tako-bench")
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mode := "run"
	if len(args) > 0 && (args[0] == "run" || args[0] == "compare" || args[0] == "bare") {
		mode, args = args[0], args[1:]
	}
	if mode == "bare" {
		return bare(ctx, args, stderr)
	}
	if len(args) > 0 && args[0] == "chaos" {
		return chaosCmd(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("tako-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	cfg := bench.DefaultConfig()
	workload := fs.String("workload", "ingest", "ingest (write-only), a (50/50 read/update), b (95/5), c (read-only)")
	fs.Func("size", "value size: 100, 180k (SI), 180KiB (binary) (default 100)", func(s string) (err error) {
		cfg.ValueSize, err = bench.ParseSize(s)
		return err
	})
	fs.StringVar(&cfg.FilesDir, "files", "", "use the files of `DIR` as values, basenames as keys (overrides -size, -keys)")
	fs.StringVar(&cfg.Dist, "dist", cfg.Dist, "key distribution: uniform or zipfian (YCSB, θ=0.99)")
	fs.IntVar(&cfg.Keys, "keys", cfg.Keys, "keyspace size")
	fs.IntVar(&cfg.Conns, "c", cfg.Conns, "connections, one goroutine each, sequential requests")
	fs.DurationVar(&cfg.Duration, "d", cfg.Duration, "measured duration per target (0 with -n: until -n ops)")
	fs.Int64Var(&cfg.Ops, "n", 0, "stop after this many operations in total (0: duration only)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (key choice, op mix, value bytes)")
	fs.BoolVar(&cfg.NoPreload, "no-preload", false, "do not write the keyspace before a read workload")
	jsonOut := fs.Bool("json", false, "print JSON instead of the table")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	cpuProf := fs.String("cpuprofile", "", "write a CPU profile of tako-bench to `FILE`")
	memProf := fs.String("memprofile", "", "write a heap profile of tako-bench to `FILE` at exit")
	// run
	ep := bench.Endpoint{Name: "target", Proto: bench.ProtoHTTP, Addr: "127.0.0.1:5711"}
	fs.StringVar(&ep.Addr, "addr", ep.Addr, "run: host:port of the store")
	fs.StringVar(&ep.Proto, "proto", ep.Proto, "run: http (Tako API), etcd (v3 JSON gateway), redis, redis-wait (every SET followed by WAIT 1), peer")
	fs.StringVar(&ep.Name, "name", ep.Name, "run: label in the report")
	fs.IntVar(&ep.Pid, "pid", 0, "run: report CPU and peak RSS of this process and its descendants")
	fs.StringVar(&ep.SecretFile, "secret-file", "", "run -proto peer: the node's cluster_secret_file, to prove membership")
	fs.StringVar(&ep.TokenFile, "token-file", "", "run -proto http: send the first bearer token of this `FILE` (a target with http_tokens_file)")
	fs.StringVar(&ep.TLSCAFile, "tls-ca", "", "run: the target's tls_ca_file: speak TLS (-proto http or peer), verifying the server against it")
	fs.StringVar(&ep.TLSCertFile, "tls-cert", "", "run -tls-ca: this client's certificate (PEM; the peer port requires one)")
	fs.StringVar(&ep.TLSKeyFile, "tls-key", "", "run -tls-cert: its key (PEM)")
	// compare
	only := fs.String("only", "", "compare: comma list of targets (default all: "+strings.Join(bench.CompareTargets, ",")+")")
	sync := fs.String("sync", "always", "compare: Tako storage.sync for node and cluster (always, interval, none)")
	layout := fs.String("layout", bench.LayoutPorts, "compare: cluster layout: ports (every node on 127.0.0.1, ports of its own) or hosts (node i on 127.0.0.(10+i), the same ports on every host)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := bench.ParseLayout(*layout); err != nil {
		fmt.Fprintln(stderr, "-layout:", err)
		return 2
	}
	w, err := bench.ParseWorkload(*workload)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cfg.Workload = w
	if !*quiet {
		cfg.Progress = stderr
	}
	stopProf, err := bench.StartProfiles(*cpuProf, *memProf)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	code := 0
	if mode == "compare" {
		code = compare(ctx, cfg, *only, bench.StartOptions{Sync: *sync, Layout: *layout}, *jsonOut, stdout, stderr)
	} else {
		code = runOne(ctx, cfg, ep, *jsonOut, stdout, stderr)
	}
	if err := stopProf(); err != nil {
		fmt.Fprintln(stderr, err)
		code = max(code, 1)
	}
	return code
}

func runOne(ctx context.Context, cfg bench.Config, ep bench.Endpoint, jsonOut bool, stdout, stderr io.Writer) int {
	res, err := bench.Run(ctx, cfg, ep)
	if res == nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return report(err, jsonOut, res, func(w io.Writer) error { return bench.WriteTable(w, []*bench.Result{res}) }, stdout, stderr)
}

// report prints a finished or interrupted (runErr) run as JSON or a table
// and returns the exit code.
func report(runErr error, jsonOut bool, v any, table func(io.Writer) error, stdout, stderr io.Writer) int {
	code := 0
	if runErr != nil {
		fmt.Fprintln(stderr, "interrupted:", runErr)
		code = 130
	}
	var err error
	if jsonOut {
		err = bench.WriteJSON(stdout, v)
	} else {
		err = table(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return code
}

func compare(ctx context.Context, cfg bench.Config, only string, start bench.StartOptions, jsonOut bool, stdout, stderr io.Writer) int {
	targets, err := bench.ParseTargets(only)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	c, err := bench.Compare(ctx, bench.CompareConfig{
		Config: cfg, Only: targets, Log: stderr, Start: start,
	})
	if c == nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return report(err, jsonOut, c, c.WriteTable, stdout, stderr)
}

// bare is the hidden subcommand Compare starts: `tako-bench bare -p PORT [-size N]`.
func bare(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("tako-bench bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("p", 0, "port on 127.0.0.1")
	size := fs.Int("size", 100, "bytes returned by GET")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := bench.RunBare(ctx, "127.0.0.1:"+strconv.Itoa(*port), *size); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// chaosCmd is `tako-bench chaos`: one scenario or all, each with its verdict; exit status 1
// on any violation or harness failure.
func chaosCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tako-bench chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "all", "scenario: all, or one of "+strings.Join(chaos.ScenarioNames(), ", "))
	var cfg chaos.Config
	fs.DurationVar(&cfg.Duration, "d", 0, "duration of workload and nemesis per scenario (0: the scenario's default)")
	fs.StringVar(&cfg.History, "history", "", "write the operation history (JSON lines) to `FILE` (with all: FILE-<scenario>.jsonl)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep each run's dir: config, var dirs, logs, history")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed (workload and nemesis choices)")
	quiet := fs.Bool("q", false, "do not print events as they happen")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tako-bench chaos -scenario NAME|all [-d DURATION] [-history FILE] [-keep] [-seed N] [-q]\nscenarios:")
		for _, s := range chaos.Scenarios {
			fmt.Fprintf(stderr, "  %-17s %s\n", s.Name, s.About)
		}
		fmt.Fprintln(stderr, "flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	names := []string{*scenario}
	if *scenario == "all" {
		names = chaos.ScenarioNames()
	}
	bins := bench.NewBinaries()
	defer bins.Close()
	cfg.Binary = bins.Tako
	if !*quiet {
		cfg.Out = stderr
	}
	code, history := 0, cfg.History
	for _, name := range names {
		cfg.Scenario = name
		if history != "" && len(names) > 1 {
			cfg.History = strings.TrimSuffix(history, ".jsonl") + "-" + name + ".jsonl"
		}
		res, err := chaos.Run(ctx, cfg)
		if errors.Is(err, chaos.ErrUnknownScenario) {
			fmt.Fprintln(stderr, err)
			return 2
		}
		if res != nil {
			res.WriteReport(stdout)
			if res.Failed() {
				code = 1
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			code = 1
		}
		if ctx.Err() != nil {
			return 130
		}
	}
	return code
}
