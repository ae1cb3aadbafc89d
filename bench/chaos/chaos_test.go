package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binDir holds tako-node and tako-proxy, built once by TestMain.
var binDir string

// testCtx ends on SIGINT or SIGTERM, so that an interrupted run still stops its cluster and
// removes its namespaces.
var testCtx = context.Background()

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	testCtx = ctx
	dir, err := os.MkdirTemp("", "tako-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir, "../../cmd/tako-node", "../../cmd/tako-proxy", "../../cmd/tako-coordinator")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		return 1
	}
	return m.Run()
}

func testBinary(name string) (string, error) { return filepath.Join(binDir, name), nil }

// lineLogger sends each line written to t.Log.
type lineLogger struct{ t *testing.T }

func (l lineLogger) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// runNamed runs a short scenario and fails the test on any violation.
func runNamed(t *testing.T, name string, d time.Duration) *Result {
	t.Helper()
	return runIn(t, NetworkAuto, name, d)
}

// runIn is runNamed in a chosen network mode.
func runIn(t *testing.T, network, name string, d time.Duration) *Result {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos scenarios start clusters; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(testCtx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{Scenario: name, Duration: d, Out: lineLogger{t}, Binary: testBinary, Seed: 1, Network: network})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.Skipped != "" {
		t.Skip(res.Skipped)
	}
	var b strings.Builder
	res.WriteReport(&b)
	t.Logf("%s in %.1fs:\n%s", name, time.Since(start).Seconds(), b.String())
	if res.Failed() {
		t.Errorf("%s: %d violations (history %s)", name, len(res.Violations), res.History)
	}
	if res.Outcomes[OutcomeOK] == 0 {
		t.Errorf("%s: no operation succeeded", name)
	}
	return res
}

func TestKill(t *testing.T)            { runNamed(t, "kill", 8*time.Second) }
func TestKillAll(t *testing.T)         { runNamed(t, "kill-all", 8*time.Second) }
func TestPartitionMirror(t *testing.T) { runNamed(t, "partition-mirror", 10*time.Second) }
func TestPartitionBucket(t *testing.T) { runNamed(t, "partition-bucket", 10*time.Second) }
func TestPartitionEntry(t *testing.T)  { runNamed(t, "partition-entry", 10*time.Second) }
func TestHeal(t *testing.T)            { healingHadWork(t, runNamed(t, "heal", 6*time.Second)) }
func TestWipeNode(t *testing.T)        { healingHadWork(t, runNamed(t, "wipe-node", 6*time.Second)) }

// healingHadWork fails a scenario meant to leave divergence for healing that left none.
func healingHadWork(t *testing.T, res *Result) {
	t.Helper()
	if res.Convergence.DivergedAtFirst == 0 {
		t.Errorf("%s: no key differed once the faults were undone: nothing was left for healing to do", res.Scenario)
	}
}
func TestMigrate(t *testing.T) { runNamed(t, "migrate", 12*time.Second) }
func TestTombstoneGC(t *testing.T) {
	res := runNamed(t, "tombstone-gc", 12*time.Second)
	if res.Finals["absent"] == 0 {
		t.Errorf("no key was purged everywhere: the run did not exercise tombstone GC (finals %v)", res.Finals)
	}
}
func TestAppliedNo(t *testing.T)   { runNamed(t, "applied-no", 2*time.Second) }
func TestAcks(t *testing.T)        { runNamed(t, "acks", 2*time.Second) }
func TestReadQuorum(t *testing.T)  { runNamed(t, "read-quorum", 2*time.Second) }
func TestClockSkew(t *testing.T)   { runNamed(t, "clock-skew", 6*time.Second) }
func TestClockBehind(t *testing.T) { runNamed(t, "clock-behind", 5*time.Second) }
func TestHotKeys(t *testing.T)     { runNamed(t, "hot-keys", 6*time.Second) }
func TestDiskFull(t *testing.T)    { runNamed(t, "disk-full", 8*time.Second) }
func TestPause(t *testing.T)       { runNamed(t, "pause", 8*time.Second) }
func TestMixed(t *testing.T)       { runNamed(t, "mixed", 10*time.Second) }
func TestSecure(t *testing.T)      { runNamed(t, "secure", 10*time.Second) }
func TestSoak(t *testing.T)        { runNamed(t, "soak", 8*time.Second) }

// TestCheckerCatchesWipedReplicas is the checker's negative control on a real cluster: after
// a workload, every node loses its data (killed, var dir emptied, restarted). Every
// acknowledged write is then lost, and the checker must say so.
func TestCheckerCatchesWipedReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster; skipped with -short")
	}
	wipe := Scenario{Name: "wipe", Layout: mirrored(), Default: 2 * time.Second, Run: func(ctx context.Context, e *Env) error {
		stop := e.Start(ctx, mixed(e.Proxies()))
		e.Wait(ctx, e.Left())
		stop()
		if err := e.N.Kill(e.C.Nodes...); err != nil {
			return err
		}
		for _, nd := range e.C.Nodes {
			if err := e.N.Wipe(nd); err != nil {
				return err
			}
		}
		return e.N.Restart(ctx, e.C.Nodes...)
	}}
	ctx, cancel := context.WithTimeout(testCtx, time.Minute)
	defer cancel()
	res, err := runScenario(ctx, Config{Binary: testBinary, Seed: 1}, wipe)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.WriteReport(&b)
	t.Log(b.String())
	lost := 0
	for _, v := range res.Violations {
		if v.Kind == KindLost {
			lost++
		}
	}
	if lost == 0 || res.Finals["absent"] == 0 {
		t.Errorf("wiped every replica, yet the checker found %d lost writes (finals %v)", lost, res.Finals)
	}
	if res.History == "" {
		t.Error("a failed run kept no history")
	} else {
		os.Remove(res.History)
	}
}
