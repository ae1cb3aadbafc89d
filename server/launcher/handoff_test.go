package launcher

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/coordinator"
	"github.com/tako-kv/tako/server/nodestatus"
)

// statusFile serves dir/<name>.json at GET /status (503 while it does not
// exist) and calls read first on every request, so a test that counts the
// reads knows when one saw what it wrote.
func statusFile(dir, name string, read func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		read()
		data, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			http.Error(w, "no status yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	})
}

// serveNodeStatus serves h on the fake node's HTTP port, found in the
// configuration it was pointed at (-cfg FILE, or the first -c coordinator).
// Nothing is served when that fails; the test then misses the reads.
func serveNodeStatus(id string, args []string, h http.Handler) {
	var cfg *config.Config
	for i := 0; i+1 < len(args) && cfg == nil; i++ {
		switch args[i] {
		case "-cfg":
			cfg, _ = config.Load(args[i+1])
		case "-c":
			cfg = fetchConfiguration(args[i+1])
		}
	}
	if cfg == nil {
		return
	}
	n, ok := cfg.FindNode(id)
	if !ok {
		return
	}
	ln, err := net.Listen("tcp", n.HTTPAddr())
	if err != nil {
		return
	}
	go http.Serve(ln, h)
}

func fetchConfiguration(addr string) *config.Config {
	resp, err := http.Get("http://" + addr + "/configuration")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	cfg, _ := config.Parse(data)
	return cfg
}

// setStatus makes name's fake serve v at GET /status from now on.
func (f *followFixture) setStatus(name string, v any) {
	f.t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	path := filepath.Join(f.statusDir, name+".json")
	if err := os.WriteFile(path+".tmp", js, 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		f.t.Fatal(err)
	}
}

// statusReads counts the GET /status requests name's fake has answered.
func (f *followFixture) statusReads(name string) int {
	data, _ := os.ReadFile(f.record)
	n := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) == 3 && fields[0] == "status" && fields[2] == name {
			n++
		}
	}
	return n
}

// readTwice waits until name's status has been read twice more: the
// watch has then acted on what the first of those reads saw, and is
// still watching.
func (f *followFixture) readTwice(name string) {
	f.t.Helper()
	want := f.statusReads(name) + 2
	for deadline := time.Now().Add(10 * time.Second); f.statusReads(name) < want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s's GET /status not read twice within 10s; output:\n%s", name, f.out)
		}
	}
}

// checkNotStopped fails the test if a fake of pids recorded a SIGTERM.
func (f *followFixture) checkNotStopped(what string) {
	f.t.Helper()
	if _, _, termed := f.started(); len(termed) != 0 {
		f.t.Fatalf("%s: SIGTERMed %v; output:\n%s", what, termed, f.out)
	}
}

// report is a leaving node's GET /status: not named, under version, with a
// last pass under passVersion ("" for none yet).
func report(version, passVersion string, edit func(*nodestatus.Pass)) nodestatus.Status {
	st := nodestatus.Status{ID: "n1", ConfigVersion: version}
	if passVersion != "" {
		st.LastPass = &nodestatus.Pass{ConfigVersion: passVersion, InSync: true}
		if edit != nil {
			edit(st.LastPass)
		}
	}
	return st
}

func TestHandedOff(t *testing.T) {
	f := func(what string, st nodestatus.Status, done bool, says string) {
		t.Helper()
		why, ok := handedOff(st)
		if ok != done || !strings.Contains(why, says) {
			t.Errorf("%s: handedOff = %v, %q; want %v, %q", what, ok, why, done, says)
		}
	}
	f("handed off", report("v2", "v2", nil), true, "its pass under configuration v2 left nothing to hand off")
	named := report("v1", "v1", nil)
	named.Named = true
	f("still named", named, false, "still at configuration v1, which names it")
	f("no pass", report("v2", "", nil), false, "no anti-entropy pass yet")
	f("pass under the old configuration", report("v2", "v1", func(p *nodestatus.Pass) { p.NotOwned = 4 }), false,
		"4 records it does not own at its last pass, under configuration v1 (none yet under v2)")
	f("not owned", report("v2", "v2", func(p *nodestatus.Pass) { p.NotOwned = 3 }), false, "3 records it does not own")
	f("unconfirmed", report("v2", "v2", func(p *nodestatus.Pass) { p.InSync, p.Unconfirmed = false, 5 }), false,
		"0 records it does not own, 5 not confirmed on their owners")
	hinted := report("v2", "v2", nil)
	hinted.Hints.Pending = 2
	f("hints pending", hinted, false, "2 hints to replay")
}

// TestFollowWaitsForHandoff: a node the configuration drops keeps running
// until its own report says it has handed off everything, then stops.
func TestFollowWaitsForHandoff(t *testing.T) {
	f := newFollowFixture(t, "", false)
	start, shrunk := f.doc("b1:n1 b2:n2", ""), f.doc("b2:n2", "")
	f.healthFor(start)
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	startVersion := f.mustVersion(start)
	still := report(startVersion, startVersion, nil)
	still.Named = true
	f.setStatus("n1", still)

	v := f.write(shrunk)
	f.inUse(v)
	for _, s := range []string{
		fmt.Sprintf("no longer names n1 (pid %d): it stops once it has handed off what it holds (at most 10m0s)", pids["n1"]),
		"nodes running: n2; handing off: n1\n"} {
		if !strings.Contains(f.out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, f.out)
		}
	}
	notYet := []nodestatus.Status{
		still, // not at the new configuration yet
		report(v, "", nil),
		report(v, startVersion, nil),
		report(v, v, func(p *nodestatus.Pass) { p.NotOwned = 3 }),
		report(v, v, func(p *nodestatus.Pass) { p.InSync, p.Unconfirmed = false, 1 }),
	}
	hinted := report(v, v, nil)
	hinted.Hints.Pending = 1
	notYet = append(notYet, hinted)
	for i, st := range notYet {
		f.setStatus("n1", st)
		f.readTwice("n1")
		f.checkNotStopped(fmt.Sprintf("report %d, not handed off yet", i))
	}
	f.setStatus("n1", report(v, v, nil))
	f.waitOutput(fmt.Sprintf("n1 (pid %d) has handed off what it held (its pass under configuration %s left nothing to hand off): stopping", pids["n1"], v))
	f.waitOutput("stopped n1\n")
	if _, _, termed := f.started(); !termed[pids["n1"]] || len(termed) != 1 {
		t.Errorf("SIGTERMed %v, want only n1 (pid %d)", termed, pids["n1"])
	}
	f.checkAllGone(map[string]int{"n1": pids["n1"]})
	f.checkAlive("n2")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowHandoffCoordinatorNone: a coordinator whose migration state is
// none ends the wait only while the node gives no report of its own: a
// coordinator restarted, or edited again after the finish, forgets the
// leaving nodes and says none while they still hold records no one else
// has, so a node that reports holding some is not stopped on its word.
func TestFollowHandoffCoordinatorNone(t *testing.T) {
	f := newFollowFixture(t, "", true)
	start, shrunk := f.doc("b1:n1 b2:n2", ""), f.doc("b2:n2", "")
	f.healthFor(start)
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	v := f.write(shrunk)
	f.setStatus("n1", report(v, v, func(p *nodestatus.Pass) { p.NotOwned = 5 }))
	cs := coordinator.Status{ConfigVersion: v, Migration: coordinator.MigrationStatus{State: coordinator.StateDropping}}
	f.setStatus("c1", cs)
	f.inUse(v)
	f.readTwice("n1")
	f.checkNotStopped("the coordinator says dropping")
	cs.Migration.State = coordinator.StateNone
	f.setStatus("c1", cs)
	f.readTwice("n1")
	f.checkNotStopped("the coordinator says none, the node still holds 5 records")
	if err := os.Remove(filepath.Join(f.statusDir, "n1.json")); err != nil { // the node stops answering
		t.Fatal(err)
	}
	f.waitOutput(fmt.Sprintf("n1 (pid %d) has handed off what it held (the coordinator at configuration %s says no migration is under way): stopping", pids["n1"], v))
	f.checkAllGone(map[string]int{"n1": pids["n1"]})
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowHandoffTimeout: a node that does not hand off in time is
// stopped anyway, with a warning saying what it still held.
func TestFollowHandoffTimeout(t *testing.T) {
	f := newFollowFixture(t, "", false)
	f.o.HandoffTimeout = 300 * time.Millisecond
	start, shrunk := f.doc("b1:n1 b2:n2 b3:n3", ""), f.doc("b2:n2", "")
	f.healthFor(start)
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	v := f.mustVersion(shrunk)
	f.setStatus("n1", report(v, v, func(p *nodestatus.Pass) { p.NotOwned = 7 }))
	// n3 never serves a report.
	f.inUse(f.write(shrunk))
	for _, s := range []string{
		fmt.Sprintf("warning: n1 (pid %d) has not handed off after 300ms: it still held 7 records it does not own, 0 not confirmed on their owners, 0 hints to replay; stopping it anyway", pids["n1"]),
		fmt.Sprintf("warning: n3 (pid %d) has not handed off after 300ms: it still held an unknown number of records (no report: ", pids["n3"]),
	} {
		f.waitOutput(s)
	}
	f.checkAllGone(map[string]int{"n1": pids["n1"], "n3": pids["n3"]})
	f.checkAlive("n2")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowLeaverNamedAgain: a leaving node that a configuration names
// again keeps its process; when it leaves again, a new watch stops it.
func TestFollowLeaverNamedAgain(t *testing.T) {
	f := newFollowFixture(t, "", false)
	start, shrunk := f.doc("b1:n1 b2:n2", ""), f.doc("b2:n2", "")
	back, leaveAgain := f.doc("b1:n1 b2:n2", "b2:n2"), f.doc("b2:n2", "b2:n2 b3:n3")
	f.healthFor(start, leaveAgain)
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	v := f.write(shrunk)
	f.setStatus("n1", report(v, v, func(p *nodestatus.Pass) { p.NotOwned = 2 }))
	f.inUse(v)
	f.readTwice("n1")

	f.inUse(f.write(back))
	f.waitOutput(fmt.Sprintf("names n1 (pid %d) again: it keeps running", pids["n1"]))
	f.waitOutput("nodes running: n1, n2\n")
	if again, _, _ := f.started(); again["n1"] != pids["n1"] {
		t.Errorf("n1 restarted: pid %d, was %d", again["n1"], pids["n1"])
	}
	f.checkNotStopped("named again")

	v2 := f.write(leaveAgain)
	f.setStatus("n1", report(v2, v2, nil))
	f.inUse(v2)
	f.waitOutput(fmt.Sprintf("n1 (pid %d) has handed off what it held", pids["n1"]))
	f.checkAllGone(map[string]int{"n1": pids["n1"]})
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowNewNodeWaitsForLeaverPorts: a node that takes over a leaving
// node's address starts once the leaver has handed off and stopped.
func TestFollowNewNodeWaitsForLeaverPorts(t *testing.T) {
	f := newFollowFixture(t, "", false)
	f.ports["n4"] = f.ports["n1"]
	start, replaced := f.doc("b1:n1 b2:n2", ""), f.doc("b1:n4 b2:n2", "")
	f.healthFor(start, replaced)
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	v := f.write(replaced)
	f.setStatus("n1", report(v, v, func(p *nodestatus.Pass) { p.NotOwned = 2 }))
	f.inUse(v)
	if s := "n4 starts once n1, which listens where it will, has handed off"; !strings.Contains(f.out.String(), s) {
		t.Errorf("output lacks %q:\n%s", s, f.out)
	}
	f.readTwice("n1")
	if now, _, _ := f.started(); now["n4"] != 0 {
		t.Fatalf("n4 started while n1 holds its address")
	}
	f.setStatus("n1", report(v, v, nil))
	f.waitOutput("names n4: starting")
	f.waitOutput("stopped n1\n")
	f.checkAllGone(map[string]int{"n1": pids["n1"]})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if now, _, _ := f.started(); now["n4"] != 0 && alive(now["n4"]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n4 not running after n1 stopped; output:\n%s", f.out)
		}
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func (f *followFixture) mustVersion(doc string) string {
	f.t.Helper()
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		f.t.Fatal(err)
	}
	return cfg.Version
}

// TestFollowLeaverExits: a leaving node that exits on its own is reported
// as any other exit, and its watch ends with it.
func TestFollowLeaverExits(t *testing.T) {
	f := newFollowFixture(t, "", false)
	start, shrunk := f.doc("b1:n1 b2:n2", ""), f.doc("b2:n2", "")
	f.healthFor(start)
	f.write(start)
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	v := f.write(shrunk)
	f.setStatus("n1", report(v, v, func(p *nodestatus.Pass) { p.NotOwned = 2 }))
	f.inUse(v)
	f.readTwice("n1")
	if err := syscall.Kill(pids["n1"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f.waitOutput(fmt.Sprintf("n1 (pid %d) exited unexpectedly: signal: killed", pids["n1"]))
	reads := f.statusReads("n1")
	time.Sleep(20 * f.o.Poll)
	if n := f.statusReads("n1"); n != reads {
		t.Errorf("n1's report read %d times after it exited", n-reads)
	}
	if strings.Contains(f.out.String(), "has handed off what it held") {
		t.Errorf("an exited leaver stopped again:\n%s", f.out)
	}
	f.checkAlive("n2")
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}
