package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-kv/tako/internal/logbuf"
	"github.com/tako-kv/tako/server/config"
)

// followFixture is a fixture whose configuration the test rewrites while
// Run follows it. Its documents are built from one set of free ports:
// layouts name nodes n1..n3 as "b1:n1 b2:n2" (bucket:node pairs).
type followFixture struct {
	*fixture
	ports       map[string][2]int // node id -> http, peer
	coordinator int               // c1's port, when the documents have one
	statusDir   string            // <name>.json: what the fake serves at GET /status
}

func newFollowFixture(t *testing.T, mode string, withCoordinator bool) *followFixture {
	t.Helper()
	dir := t.TempDir()
	p := freePorts(t, 8)
	f := &followFixture{
		fixture: &fixture{t: t, record: filepath.Join(dir, "record"), out: &logbuf.Buffer{}},
		ports:   map[string][2]int{"n1": {p[0], p[1]}, "n2": {p[2], p[3]}, "n3": {p[4], p[5]}},
	}
	if withCoordinator {
		f.coordinator = p[6]
	}
	t.Setenv("TAKO_FAKE_RECORD", f.record)
	t.Setenv("TAKO_FAKE_MODE", mode)
	f.statusDir = filepath.Join(dir, "status")
	if err := os.Mkdir(f.statusDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TAKO_FAKE_STATUS", f.statusDir)
	f.o = Options{
		ConfigPath: filepath.Join(dir, "tako.yaml"), ProxyPorts: []int{p[7]}, VarDir: filepath.Join(dir, "var"),
		StartTimeout: 10 * time.Second, StopTimeout: 5 * time.Second, Poll: 20 * time.Millisecond,
		BinDir: fakeBins(t, dir), Out: f.out,
	}
	return f
}

// doc returns a configuration with the active layout and, unless empty,
// the target one.
func (f *followFixture) doc(active, target string) string {
	var b strings.Builder
	if f.coordinator != 0 {
		fmt.Fprintf(&b, "coordinators:\n    c1: [127.0.0.1, %d]\n", f.coordinator)
	}
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
			bucket, node, _ := strings.Cut(pair, ":")
			fmt.Fprintf(&b, "            %s:\n                %s: [127.0.0.1, %d, %d]\n", bucket, node, f.ports[node][0], f.ports[node][1])
		}
	}
	return b.String()
}

// write replaces the configuration file in one rename (as an editor that
// saves atomically does) and returns the document's version.
func (f *followFixture) write(doc string) string {
	f.t.Helper()
	tmp := f.o.ConfigPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, f.o.ConfigPath); err != nil {
		f.t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		return "" // a broken document on purpose
	}
	return cfg.Version
}

// healthFor makes the fake health checks answer for every document's
// processes; call it with all the documents the test will write.
func (f *followFixture) healthFor(docs ...string) {
	f.t.Helper()
	var cfgs []*config.Config
	for _, d := range docs {
		cfg, err := config.Parse([]byte(d))
		if err != nil {
			f.t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	h, err := recordHealthFor(f.o, f.record, true, cfgs...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.o.Health = h
}

// inUse waits until Run has applied the configuration of that version.
func (f *followFixture) inUse(version string) {
	f.t.Helper()
	f.waitOutput("configuration " + version + " in use")
}

func (f *followFixture) checkAlive(names ...string) {
	f.t.Helper()
	pids, _, _ := f.started()
	for _, name := range names {
		if pids[name] == 0 || !alive(pids[name]) {
			f.t.Errorf("%s (pid %d) is not running; output:\n%s", name, pids[name], f.out)
		}
	}
}

// TestFollowMigration grows a cluster by a bucket, finishes, shrinks it
// back to the new bucket and finishes: a node is started as soon as a
// configuration names it and stopped only once no live deployment does.
func TestFollowMigration(t *testing.T) {
	f := newFollowFixture(t, "", false)
	start, grow, grown := f.doc("b1:n1", ""), f.doc("b1:n1", "b1:n1 b2:n2"), f.doc("b1:n1 b2:n2", "")
	shrink, shrunk := f.doc("b1:n1 b2:n2", "b2:n2"), f.doc("b2:n2", "")
	f.healthFor(start, grow)
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	proxy := fmt.Sprintf("proxy-%d", f.o.ProxyPorts[0])
	before, _, _ := f.started()

	f.inUse(f.write(grow))
	pids, args, termed := f.started()
	vd := f.o.VarDir
	if want := "-id n2 -cfg " + f.o.ConfigPath + " -v " + vd + " -l " + vd + "/n2.log"; !strings.HasSuffix(args["n2"], " "+want) {
		t.Errorf("n2 started as %q, want the start-up flags %q", args["n2"], want)
	}
	out := f.out.String()
	for _, s := range []string{"names n2: starting", "nodes up 1/1", "(active a, target t); nodes running: n1, n2"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	row := regexp.MustCompile(fmt.Sprintf(`\nn2 +%d +http 127\.0\.0\.1:%d  peer 127\.0\.0\.1:%d +%s/n2\.log\n`,
		pids["n2"], f.ports["n2"][0], f.ports["n2"][1], regexp.QuoteMeta(vd)))
	if !row.MatchString(out) {
		t.Errorf("no table row for n2 (pid %d):\n%s", pids["n2"], out)
	}
	if pids["n1"] != before["n1"] || pids[proxy] != before[proxy] || len(termed) != 0 {
		t.Errorf("a configuration change restarted or stopped processes: before %v, after %v, SIGTERMed %v", before, pids, termed)
	}

	// Another edit during the migration: n2 is still named by the target only.
	f.inUse(f.write(f.doc("b1:n1", "b1:n1 b9:n2")))
	if _, _, termed := f.started(); len(termed) != 0 {
		t.Fatalf("stopped %v during the migration", termed)
	}
	f.inUse(f.write(grown))
	f.inUse(f.write(shrink))
	if _, _, termed := f.started(); len(termed) != 0 {
		t.Fatalf("stopped %v while a live deployment still names every node", termed)
	}
	v := f.mustVersion(shrunk)
	f.setStatus("n1", report(v, v, nil)) // nothing to hand off: it stops at once
	f.inUse(f.write(shrunk))
	f.waitOutput("stopped n1\n")
	_, _, termed = f.started()
	if !termed[pids["n1"]] || len(termed) != 1 {
		t.Errorf("SIGTERMed %v, want only n1 (pid %d)", termed, pids["n1"])
	}
	f.checkAllGone(map[string]int{"n1": pids["n1"]})
	f.checkAlive("n2", proxy)
	out = f.out.String()
	for _, s := range []string{fmt.Sprintf("no longer names n1 (pid %d): it stops once it has handed off", pids["n1"]),
		fmt.Sprintf("n1 (pid %d) has handed off what it held", pids["n1"]), "nodes running: n2; handing off: n1\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "unexpectedly") {
		t.Errorf("a stop on purpose reported as unexpected:\n%s", out)
	}

	// A broken edit is refused and changes nothing; naming n1 again starts
	// a new n1.
	f.write("active_deployment: a\ndeployments: {a: {buckets: {b1: {n1: [127.0.0.1, 1]}}}}\n")
	f.waitOutput("configuration edit refused")
	back := f.doc("b2:n2", "b1:n1 b2:n2")
	f.inUse(f.write(back))
	again, _, _ := f.started()
	if again["n1"] == pids["n1"] || again["n1"] == 0 || again["n2"] != pids["n2"] {
		t.Errorf("after naming n1 again: %v (before %v), want a new n1 and the same n2", again, pids)
	}
	f.checkAlive("n1", "n2", proxy)

	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	f.checkAllGone(again)
}

// TestFollowCoordinator: with coordinators, tako-cluster follows what the
// nodes follow (the coordinator), new nodes get the same -c flags, and -s
// holds for nodes that appear later.
func TestFollowCoordinator(t *testing.T) {
	f := newFollowFixture(t, "", true)
	f.o.Skip = []string{"n3"}
	start, grow := f.doc("b1:n1 b2:n3", ""), f.doc("b1:n1 b2:n3", "b1:n1 b2:n2 b3:n3")
	f.healthFor(start, grow)
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	f.inUse(f.write(grow))
	_, args, _ := f.started()
	if want := fmt.Sprintf("-id n2 -c 127.0.0.1:%d -v ", f.coordinator); !strings.Contains(args["n2"], want) {
		t.Errorf("n2 started as %q, want %q", args["n2"], want)
	}
	if _, ok := args["n3"]; ok {
		t.Errorf("skipped n3 started: %q", args["n3"])
	}
	data, _ := os.ReadFile(f.record)
	if !strings.Contains(string(data), "\nfetch ") {
		t.Errorf("tako-cluster never asked the coordinator; record:\n%s", data)
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowStartFailure: a node that fails to start after a configuration
// change is reported once and the cluster keeps running; the next change
// starts it again.
func TestFollowStartFailure(t *testing.T) {
	f := newFollowFixture(t, "n2=fail", false)
	start, grow, grow3 := f.doc("b1:n1", ""), f.doc("b1:n1", "b1:n1 b2:n2"), f.doc("b1:n1", "b1:n1 b2:n2 b3:n3")
	f.healthFor(start, grow, grow3)
	// n2 never answers: a fake that fails could otherwise be seen healthy
	// in the moment between recording itself and exiting.
	healthy, n2 := f.o.Health, localURL("http://", "127.0.0.1", f.ports["n2"][0], "/health")
	f.o.Health = func(ctx context.Context, url string) error {
		if url == n2 {
			return errors.New("refused")
		}
		return healthy(ctx, url)
	}
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	f.inUse(f.write(grow))
	first, _, _ := f.started()
	f.inUse(f.write(grow3))
	out := f.out.String()
	if s := "n2 (tako-node, pid"; strings.Count(out, s) != 2 || !strings.Contains(out, "exited during start-up: exit status 1") {
		t.Errorf("want n2's failure reported at each of the two changes:\n%s", out)
	}
	if strings.Contains(out, "unexpectedly") {
		t.Errorf("a start-up failure reported twice:\n%s", out)
	}
	if pids, _, _ := f.started(); pids["n2"] == first["n2"] {
		t.Errorf("n2 not retried at the next change")
	}
	// n2's failure ends the wait for n3, which may not have recorded itself.
	f.waitOutput("nodes running: n1, n3\n")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if pids, _, _ := f.started(); pids["n3"] != 0 || time.Now().After(deadline) {
			break
		}
	}
	f.checkAlive("n1", "n3")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowBusyPort: a new node whose port is taken is not started (a
// stranger must not answer its health checks).
func TestFollowBusyPort(t *testing.T) {
	f := newFollowFixture(t, "", false)
	start, grow := f.doc("b1:n1", ""), f.doc("b1:n1", "b1:n1 b2:n2")
	f.healthFor(start, grow)
	f.write(start)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", f.ports["n2"][1]))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	f.inUse(f.write(grow))
	if s := fmt.Sprintf("not starting n2: cannot listen where the cluster needs to (is another cluster running?):\n  127.0.0.1:%d (node n2 peer)", f.ports["n2"][1]); !strings.Contains(f.out.String(), s) {
		t.Errorf("output lacks %q:\n%s", s, f.out)
	}
	if _, args, _ := f.started(); args["n2"] != "" {
		t.Errorf("n2 started: %q", args["n2"])
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestRunReportsCleanExit(t *testing.T) {
	f := newFixture(t, "n2=quit")
	cancel, wait := f.run()
	f.waitOutput("stopped (exit status 0)")
	pids, _, _ := f.started()
	out := f.out.String()
	if s := fmt.Sprintf("n2 (pid %d) stopped (exit status 0); 4 processes still running", pids["n2"]); !strings.Contains(out, s) {
		t.Errorf("output lacks %q:\n%s", s, out)
	}
	if strings.Contains(out, "unexpectedly") {
		t.Errorf("a clean exit reported as unexpected:\n%s", out)
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	f.checkAllGone(pids)
}

// TestFollowEditDuringStartup: an edit made while the cluster starts (here,
// while the proxy comes up) is applied once it runs.
func TestFollowEditDuringStartup(t *testing.T) {
	f := newFollowFixture(t, "", false)
	start, grow := f.doc("b1:n1", ""), f.doc("b1:n1", "b1:n1 b2:n2")
	f.healthFor(start, grow)
	f.write(start)
	var once sync.Once
	healthy, proxy := f.o.Health, localURL("http://", "", f.o.ProxyPorts[0], "/health")
	f.o.Health = func(ctx context.Context, url string) error {
		if url == proxy {
			// Run's goroutine: a failed write shows as the edit never applied.
			once.Do(func() { os.WriteFile(f.o.ConfigPath, []byte(grow), 0o644) })
		}
		return healthy(ctx, url)
	}
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	version, _ := config.Parse([]byte(grow))
	f.inUse(version.Version)
	f.checkAlive("n1", "n2")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}
