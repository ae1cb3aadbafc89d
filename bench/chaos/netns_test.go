package chaos

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needNetns skips a test where the namespace mode is unavailable (not root, no ip netns).
func needNetns(t *testing.T) {
	t.Helper()
	if why := netnsUnavailable(); why != "" {
		t.Skipf("no network namespaces here: %s", why)
	}
}

// TestLoopbackToo runs the kill, partition and hot-key scenarios on loopback where the other
// tests ran them in namespaces, so that both modes stay exercised. Shorter runs than
// theirs: the whole package must stay within its time budget.
func TestLoopbackToo(t *testing.T) {
	needNetns(t) // otherwise the other tests already ran on loopback
	for _, sc := range []struct {
		name string
		d    time.Duration
	}{{"kill", 5 * time.Second}, {"partition-mirror", 6 * time.Second}, {"partition-bucket", 6 * time.Second}, {"hot-keys", 3 * time.Second}} {
		t.Run(sc.name, func(t *testing.T) {
			res := runIn(t, NetworkLoopback, sc.name, sc.d)
			if !strings.HasPrefix(res.Mode, "loopback") {
				t.Errorf("mode %q, want loopback", res.Mode)
			}
		})
	}
}

// TestNetns checks the namespace plumbing itself: a process started through wrap is the
// program itself (so SIGKILL and SIGSTOP reach it), a partition installs exactly the
// blackhole routes it implies, which cut the nodes apart, and healing removes them, and
// close leaves nothing behind.
func TestNetns(t *testing.T) {
	needNetns(t)
	ns, err := newNetns(3, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.close()

	sleepBin, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	bin, args := ns.wrap(2, sleepBin, []string{"30"})
	p := &process{name: "sleep", bin: bin, args: args, out: filepath.Join(t.TempDir(), "out")}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	defer p.stop(syscall.SIGKILL)
	// ip execs the program: the pid's executable becomes sleep once ip has entered the namespace.
	want, _ := filepath.EvalSymlinks(sleepBin)
	var exe string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if exe, _ = os.Readlink("/proc/" + strconv.Itoa(p.pid()) + "/exe"); exe == want {
			break
		}
	}
	if exe != want {
		t.Errorf("pid %d runs %q, want %q", p.pid(), exe, want)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	if inner, _ := os.Readlink("/proc/" + strconv.Itoa(p.pid()) + "/ns/net"); inner == self || inner == "" {
		t.Errorf("process in network namespace %q, the harness's is %q", inner, self)
	}

	ids := []string{"n1", "n2", "n3"}
	if err := ns.setPartition(Partition{Isolated: []string{"n1"}, CutClients: true}, ids); err != nil {
		t.Fatal(err)
	}
	wantRoutes := map[int][]string{1: {ns.bridgeIP(), ns.nodeHost(2), ns.nodeHost(3)}, 2: {ns.nodeHost(1)}, 3: {ns.nodeHost(1)}}
	for i := 1; i <= 3; i++ {
		got := blackholes(t, ns, i)
		if strings.Join(got, " ") != strings.Join(slices.Sorted(slices.Values(wantRoutes[i])), " ") {
			t.Errorf("%s: blackholes %v, want %v", ns.name(i), got, wantRoutes[i])
		}
	}
	if err := ns.checkBridged(); err == nil {
		t.Error("n1 reached n2 through the partition")
	}
	if err := ns.setPartition(Partition{}, ids); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if got := blackholes(t, ns, i); len(got) > 0 {
			t.Errorf("%s: blackholes %v after healing", ns.name(i), got)
		}
	}
	if err := ns.checkBridged(); err != nil {
		t.Errorf("after healing: %v", err)
	}

	_ = p.stop(syscall.SIGKILL)
	ns.close()
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	links, _ := exec.Command("ip", "-o", "link").CombinedOutput()
	if strings.Contains(string(out)+string(links), ns.sfx) {
		t.Errorf("left behind after close:\n%s\n%s", out, links)
	}
}

// blackholes lists the blackhole destinations in node i's namespace, sorted.
func blackholes(t *testing.T, ns *netns, i int) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns.name(i), "route", "show", "type", "blackhole").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route show: %v: %s", err, out)
	}
	var dsts []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			dsts = append(dsts, f[1])
		}
	}
	slices.Sort(dsts)
	return dsts
}
