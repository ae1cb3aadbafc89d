package bench

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	line := "1234 (we(ird) name) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200\n"
	ppid, cpu, err := parseStat([]byte(line))
	if err != nil || ppid != 77 || cpu != 3.0 {
		t.Fatalf("parseStat = %d, %v, %v; want 77, 3.0", ppid, cpu, err)
	}
	for _, bad := range []string{"", "1 (x) S 2 3", "1 (x) S z 1 1 0 -1 0 0 0 0 0 u s"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
	n, err := parseStatusKB([]byte("Name:\tx\nVmPeak:\t  9 kB\nVmHWM:\t    2048 kB\n"), "VmHWM:")
	if err != nil || n != 2048*1024 {
		t.Fatalf("VmHWM = %d, %v", n, err)
	}
	if n, err := parseStatusKB([]byte("Name:\tkthread\n"), "VmHWM:"); n != 0 || err != nil {
		t.Fatalf("missing VmHWM = %d, %v", n, err)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (a) S 0 1 1 0 -1 0 0 0 0 0 5 6 0 0"))
	f.Add([]byte("1 (a b)) R 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, cpu, err := parseStat(b); err == nil && cpu < 0 {
			t.Fatal("negative cpu")
		}
	})
}

func TestProcTree(t *testing.T) {
	self, err := ReadProcStat(os.Getpid())
	if err != nil || self.PeakRSS == 0 || self.PPid == 0 {
		t.Fatalf("self stat %+v, %v", self, err)
	}
	// A child process (sh) with its own child (sleep) must both be found under sh.
	cmd := exec.Command("sh", "-c", "sleep 5 & wait")
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if u := TreeUsage(cmd.Process.Pid); u.Procs >= 2 {
			if u.PeakRSS == 0 {
				t.Fatalf("tree usage without RSS: %+v", u)
			}
			tree := ProcTree(os.Getpid())
			if len(tree) < 3 || tree[0].Pid != os.Getpid() {
				t.Fatalf("own tree %+v should hold self, sh and sleep", tree)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("sleep child of sh not found in /proc")
}
