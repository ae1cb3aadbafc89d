package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bareChildEnv turns the test binary into the bare server, so Compare's subprocess path is
// tested without building tako-bench.
const bareChildEnv = "TAKO_BENCH_TEST_BARE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(bareChildEnv) == "1" {
		os.Exit(bareChild(os.Args[slices.Index(os.Args, "bare")+1:]))
	}
	os.Exit(m.Run())
}

func bareChild(args []string) int {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	port := fs.Int("p", 0, "")
	size := fs.Int("size", 100, "")
	if fs.Parse(args) != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := RunBare(ctx, "127.0.0.1:"+strconv.Itoa(*port), *size); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func testStartOptions(t *testing.T) StartOptions {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bins := NewBinaries()
	t.Cleanup(func() { _ = bins.Close() })
	return StartOptions{Bins: bins, Self: []string{exe}, SelfEnv: []string{bareChildEnv + "=1"}, TempDir: t.TempDir()}
}

func TestCompareBareSubprocess(t *testing.T) {
	cfg := shortConfig("c")
	cfg.ValueSize = 300
	var log strings.Builder
	o := testStartOptions(t)
	c, err := Compare(context.Background(), CompareConfig{Config: cfg, Only: []string{"bare"}, Start: o, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Results) != 1 || len(c.Skipped) != 0 {
		t.Fatalf("results %d skipped %+v\n%s", len(c.Results), c.Skipped, log.String())
	}
	r := c.Results[0]
	if r.Target != "bare" || r.Ops == 0 || r.ErrorCount != 0 || r.Bytes != r.Ops*300 {
		t.Fatalf("bare result: ops %d bytes %d errors %v", r.Ops, r.Bytes, r.Errors)
	}
	if r.ServerProcs != 1 || r.ServerCPU <= 0 || r.ServerPeakRSS == 0 {
		t.Fatalf("bare accounting: procs %d cpu %v rss %d", r.ServerProcs, r.ServerCPU, r.ServerPeakRSS)
	}
	if !strings.Contains(log.String(), "started bare on 127.0.0.1:") {
		t.Errorf("log: %s", log.String())
	}
	if ents, _ := os.ReadDir(o.TempDir); len(ents) != 0 {
		t.Errorf("temp dirs left behind: %v", ents)
	}
}

func TestCompareSkipsMissingPeers(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing installed
	cfg := shortConfig("ingest")
	var log strings.Builder
	c, err := Compare(context.Background(), CompareConfig{Config: cfg, Only: []string{"redis", "redis-always", "redis-replica", "etcd", "etcd3"}, Start: testStartOptions(t), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Results) != 0 || len(c.Skipped) != 5 {
		t.Fatalf("results %d skipped %+v", len(c.Results), c.Skipped)
	}
	for _, want := range []string{"skip redis: ", "apt-get install -y redis-server", "skip etcd: ", "apt-get install -y etcd-server",
		"skip redis-replica: ", "skip etcd3: "} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

func TestCompareRejectsBadLayout(t *testing.T) {
	o := testStartOptions(t)
	o.Layout = "racks"
	if _, err := Compare(context.Background(), CompareConfig{Config: shortConfig("c"), Only: []string{"bare"}, Start: o}); !errors.Is(err, ErrUnknownLayout) {
		t.Fatalf("bad layout: %v", err)
	}
}

func TestServerStopCleansUp(t *testing.T) {
	o := testStartOptions(t)
	s, err := StartBare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("temp dir %s still there: %v", s.Dir, err)
	}
	if err := syscall.Kill(s.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("bare pid %d still alive: %v", s.Pid, err)
	}
	// A server that exits at once is reported with its log, and cleaned up.
	o.Self, o.SelfEnv = []string{"sh", "-c", "echo broken config >&2; exit 3", "sh"}, nil
	_, err = StartBare(context.Background(), o)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "broken config") {
		t.Fatalf("failing start: %v", err)
	}
	if ents, _ := os.ReadDir(o.TempDir); len(ents) != 0 {
		t.Fatalf("temp dirs left behind: %v", ents)
	}
}

func TestConfigs(t *testing.T) {
	n := NodeConfig(5711, 4711, "always")
	for _, want := range []string{"active_deployment: standalone", "sync: always", "n1: [127.0.0.1, 5711, 4711]", "buckets_per_key: 1"} {
		if !strings.Contains(n, want) {
			t.Errorf("node config lacks %q:\n%s", want, n)
		}
	}
	ports := make([]int, 21)
	for i := range ports {
		ports[i] = 6000 + i
	}
	c := ClusterConfig(LayoutPorts, ports, "always")
	for _, want := range []string{"c1: [127.0.0.1, 6000]", "b1:\n                n1: [127.0.0.1, 6001, 6002]\n                n2: [127.0.0.1, 6003, 6004]",
		"b5:\n", "n10: [127.0.0.1, 6019, 6020]", "buckets_per_key: 2", "read_repair: yes"} {
		if !strings.Contains(c, want) {
			t.Errorf("cluster config lacks %q:\n%s", want, c)
		}
	}
	c = ClusterConfig(LayoutHosts, ports[:3], "always")
	for _, want := range []string{"c1: [127.0.0.10, 6000]", "b1:\n                n1: [127.0.0.11, 6001, 6002]\n                n2: [127.0.0.12, 6001, 6002]",
		"b5:\n", "n10: [127.0.0.20, 6001, 6002]", "buckets_per_key: 2"} {
		if !strings.Contains(c, want) {
			t.Errorf("hosts cluster config lacks %q:\n%s", want, c)
		}
	}
}

// smoke runs a short workload a against a started server.
func smoke(t *testing.T, s *Server) {
	t.Helper()
	defer func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	}()
	cfg := shortConfig("a")
	res, err := Run(context.Background(), cfg, s.Endpoint)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.LogTail(20))
	}
	if res.Ops == 0 || res.ErrorCount != 0 {
		t.Fatalf("ops %d errors %v\n%s", res.Ops, res.Errors, s.LogTail(20))
	}
	if res.ServerProcs == 0 || res.ServerPeakRSS == 0 {
		t.Fatalf("no server accounting: %+v", res)
	}
}

// TestStartNode is the smoke run against a real standalone tako-node; it skips until the
// binary can be found or built.
func TestStartNode(t *testing.T) {
	o := testStartOptions(t)
	if _, err := o.Bins.Tako("tako-node"); err != nil {
		t.Skipf("tako-node unavailable: %s", firstLine(err.Error()))
	}
	s, err := StartNode(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	smoke(t, s)
}

// TestStartCluster is the same through tako-cluster's proxy; skipped without the binaries and
// in -short mode (eleven processes).
func TestStartCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	o := testStartOptions(t)
	if _, err := o.Bins.Tako("tako-cluster"); err != nil {
		t.Skipf("tako-cluster unavailable: %s", firstLine(err.Error()))
	}
	o.Timeout = time.Minute
	s, err := StartCluster(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	smoke(t, s)
}
