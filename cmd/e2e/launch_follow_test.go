package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// followWait bounds every wait for tako-cluster to act on an edit: it polls
// the file every second and acts once two polls agree.
const followWait = 30 * time.Second

// TestTakoClusterFollowsMigration runs tako-cluster on a one-node cluster
// (file-based configuration, no coordinator) and edits the file as an
// operator runs a migration: grow by a bucket, finish, shrink to the new
// bucket, finish. The new node's process starts when the target names it,
// without restarting tako-cluster; the old one is stopped only once no live
// deployment names it.
func TestTakoClusterFollowsMigration(t *testing.T) {
	dir := t.TempDir()
	p := freePorts(t, 5)
	node := map[string]string{
		"n1": fmt.Sprintf("n1: [127.0.0.1, %d, %d]", p[0], p[1]),
		"n2": fmt.Sprintf("n2: [127.0.0.1, %d, %d]", p[2], p[3]),
	}
	doc := func(active, target string) string {
		var b strings.Builder
		b.WriteString("active_deployment: a\n")
		if target != "" {
			b.WriteString("target_deployment: t\n")
		}
		b.WriteString("deployments:\n")
		for _, d := range [][2]string{{"a", active}, {"t", target}} {
			if d[1] == "" {
				continue
			}
			fmt.Fprintf(&b, "    %s:\n        buckets:\n", d[0])
			for _, pair := range strings.Fields(d[1]) {
				bucket, id, _ := strings.Cut(pair, ":")
				fmt.Fprintf(&b, "            %s:\n                %s\n", bucket, node[id])
			}
		}
		return b.String()
	}
	cfgPath := writeConfig(t, dir, doc("b1:n1", ""))
	l := startLauncher(t, cfgPath, "-v", filepath.Join(dir, "var"), "-p", strconv.Itoa(p[4]))
	pids := l.waitRunning(60 * time.Second)
	if pids["n1"] == 0 || pids["n2"] != 0 {
		t.Fatalf("process table %v, want n1 and a proxy", pids)
	}
	n1, n2 := pids["n1"], fmt.Sprintf("http://127.0.0.1:%d/health", p[2])

	// Start: the target names n2.
	l.edit(cfgPath, doc("b1:n1", "b1:n1 b2:n2"))
	waitHealth(t, l, n2, followWait)
	after := l.waitRunning(time.Second)
	if after["n2"] == 0 || !pidAlive(after["n2"]) || after["n1"] != n1 || !pidAlive(n1) {
		t.Fatalf("after the start: table %v (n1 was pid %d), want n1 still running and n2 added", after, n1)
	}

	// Finish the grow, start and finish a shrink to b2: n1 is named by a
	// live deployment until the very end.
	l.edit(cfgPath, doc("b1:n1 b2:n2", ""))
	l.edit(cfgPath, doc("b1:n1 b2:n2", "b2:n2"))
	if !pidAlive(n1) {
		t.Fatalf("n1 (pid %d) stopped while a live deployment names it", n1)
	}
	l.edit(cfgPath, doc("b2:n2", ""))
	checkGone(t, map[string]int{"n1": n1}, followWait)
	if out := l.out.String(); !strings.Contains(out, fmt.Sprintf("no longer names n1 (pid %d)", n1)) &&
		!strings.Contains(out, fmt.Sprintf("n1 (pid %d) stopped", n1)) {
		t.Errorf("no report that n1 was stopped")
	}
	waitHealth(t, l, n2, 5*time.Second)
	if !pidAlive(after["n2"]) || !pidAlive(after[fmt.Sprintf("proxy-%d", p[4])]) {
		t.Errorf("n2 or the proxy stopped: table %v", after)
	}

	l.stop()
	checkGone(t, after, 5*time.Second)
}

// edit replaces the configuration in one rename, as an editor saving
// atomically does, and waits until tako-cluster says it uses it.
func (l *launch) edit(path, doc string) {
	l.t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.t.Fatal(err)
	}
	want := "configuration " + mustParse(l.t, doc).Version + " in use"
	deadline := time.Now().Add(followWait)
	for !strings.Contains(l.out.String(), want) {
		l.checkRunning()
		if time.Now().After(deadline) {
			l.t.Fatalf("tako-cluster did not take the edit within %v (no %q)", followWait, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRunning fails the test if tako-cluster has exited: it must follow
// edits without a restart.
func (l *launch) checkRunning() {
	l.t.Helper()
	select {
	case <-l.done:
		l.t.Fatalf("tako-cluster exited (%v)", l.cmd.ProcessState)
	default:
	}
}

// stop sends SIGTERM and expects a clean exit.
func (l *launch) stop() {
	l.t.Helper()
	l.cmd.Process.Signal(syscall.SIGTERM)
	if code := l.waitExit(30 * time.Second); code != 0 {
		l.t.Errorf("exit code %d after SIGTERM", code)
	}
}

// waitHealth polls url until it answers 200, tako-cluster exits, or within
// passes.
func waitHealth(t *testing.T, l *launch, url string, within time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		l.checkRunning()
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %v", url, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
