package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/internal/logbuf"
)

// These tests run tako-cluster itself: the seed's local cluster with flags
// after the configuration file, a stop by SIGTERM, a SIGKILL that must take
// every child with it, and the missing-binary error.

// launch is a running tako-cluster.
type launch struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *logbuf.Buffer
	done chan struct{}
}

// startLauncher runs tako-cluster with args. Its process group is killed at
// cleanup as a safety net; the tests themselves signal only tako-cluster.
func startLauncher(t *testing.T, args ...string) *launch {
	t.Helper()
	l := &launch{t: t, cmd: exec.Command(filepath.Join(binDir, "tako-cluster"), args...), out: &logbuf.Buffer{}, done: make(chan struct{})}
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
		<-l.done
		if t.Failed() {
			t.Logf("tako-cluster %v output:\n%s", args, l.out)
		}
	})
	return l
}

// waitRunning waits for the process table and returns name -> pid.
func (l *launch) waitRunning(within time.Duration) map[string]int {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(l.out.String(), "Ctrl-C") {
		select {
		case <-l.done:
			l.t.Fatalf("tako-cluster exited while starting:\n%s", l.out)
		default:
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("tako-cluster not running after %v:\n%s", within, l.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pids := map[string]int{}
	row := regexp.MustCompile(`(?m)^(\S+) +(\d+) +http`)
	for _, m := range row.FindAllStringSubmatch(l.out.String(), -1) {
		pids[m[1]], _ = strconv.Atoi(m[2])
	}
	return pids
}

// waitExit waits (bounded) for tako-cluster to exit and returns its code.
func (l *launch) waitExit(within time.Duration) int {
	l.t.Helper()
	select {
	case <-l.done:
		return l.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		l.t.Fatalf("tako-cluster still running after %v:\n%s", within, l.out)
		return -1
	}
}

// pidAlive reports whether pid exists and is not a zombie (an orphan's
// zombie may wait for init to reap it).
func pidAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

func checkGone(t *testing.T, pids map[string]int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for name, pid := range pids {
		for pidAlive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("%s (pid %d) outlived tako-cluster", name, pid)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestTakoClusterRunsSeedCluster starts the seed's local_cluster.yaml (on
// free ports) as the seed writes the command, skipping n10, round-trips
// values through the proxy, and stops everything with SIGTERM.
func TestTakoClusterRunsSeedCluster(t *testing.T) {
	seed, err := os.ReadFile("../../examples/local_cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, remapPorts(t, string(seed)))
	cfg := mustParse(t, string(mustRead(t, cfgPath)))
	port := freePorts(t, 1)[0]
	varDir := filepath.Join(dir, "var")
	l := startLauncher(t, cfgPath, "-p", strconv.Itoa(port), "-s", "n10", "-v", varDir)
	pids := l.waitRunning(60 * time.Second)

	want := []string{"c1", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", fmt.Sprintf("proxy-%d", port)}
	for _, name := range want {
		if pids[name] == 0 {
			t.Errorf("no %s in the process table", name)
		}
		if fi, err := os.Stat(filepath.Join(varDir, name+".log")); err != nil || fi.Size() == 0 {
			t.Errorf("log of %s: %v", name, err)
		}
	}
	if len(pids) != len(want) {
		t.Errorf("process table %v, want %v (n10 skipped)", pids, want)
	}
	for _, s := range []string{"nodes up 9/9", "skipped (-s): n10"} {
		if !strings.Contains(l.out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
	n10, _ := cfg.FindNode("n10")
	if c, err := net.DialTimeout("tcp", n10.HTTPAddr(), time.Second); err == nil {
		c.Close()
		t.Error("skipped n10 is listening")
	}

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := range 20 {
		v := bytes.Repeat([]byte{byte(i), 0, 0xff, '\n'}, 1000*i+1)
		url := fmt.Sprintf("%s/values/launch-%d", base, i)
		if code, err := post(context.Background(), url, v); err != nil || code != 200 {
			t.Fatalf("POST %s: %d %v", url, code, err)
		}
		if code, got, err := get(url); err != nil || code != 200 || !bytes.Equal(got, v) {
			t.Fatalf("GET %s: %d, %d bytes, %v", url, code, len(got), err)
		}
	}

	l.cmd.Process.Signal(syscall.SIGTERM)
	if code := l.waitExit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if !strings.Contains(l.out.String(), "tako-cluster: stopped") {
		t.Error("no stop report")
	}
	checkGone(t, pids, 5*time.Second)
}

// TestTakoClusterSIGKILLLeavesNothing kills tako-cluster with SIGKILL: the
// kernel must take every child with it (Pdeathsig). The configuration has
// no coordinator, so the children read the file (-cfg).
func TestTakoClusterSIGKILLLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := freePorts(t, 5)
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`
active_deployment: d
deployments:
    d:
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
                n2: [127.0.0.1, %d, %d]
`, p[0], p[1], p[2], p[3]))
	l := startLauncher(t, cfgPath, "-v", filepath.Join(dir, "var"), "-p", strconv.Itoa(p[4]))
	pids := l.waitRunning(60 * time.Second)
	if len(pids) != 3 {
		t.Fatalf("process table %v, want n1, n2 and a proxy", pids)
	}
	if code, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/values/nothing", p[4])); err != nil || code != 404 {
		t.Errorf("proxy GET: %d %v", code, err)
	}
	l.cmd.Process.Kill()
	l.waitExit(10 * time.Second)
	checkGone(t, pids, 5*time.Second)
}

// TestTakoClusterMissingBinaries runs a lone tako-cluster with an empty PATH.
func TestTakoClusterMissingBinaries(t *testing.T) {
	dir := t.TempDir()
	lone := filepath.Join(dir, "tako-cluster")
	src, err := os.Open(filepath.Join(binDir, "tako-cluster"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(lone, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	cmd := exec.Command(lone, "../../examples/local_cluster.yaml", "-p", strconv.Itoa(freePorts(t, 1)[0]), "-v", filepath.Join(dir, "var"))
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	out, err := cmd.CombinedOutput()
	want := "tako-cluster: cannot find tako-coordinator, tako-node, tako-proxy (looked in " + dir + " and on $PATH)"
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Errorf("exit %d (%v), output %q; want 1 and %q", cmd.ProcessState.ExitCode(), err, out, want)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
