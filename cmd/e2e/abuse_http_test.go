package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"

	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Process-level tests of the HTTP and disk side of the limits under abuse
// (issue 9): the node stays up, a probe is served, memory stays bounded,
// SIGTERM stops it.

// httpAddr is base without its scheme.
func httpAddr(base string) string { return strings.TrimPrefix(base, "http://") }

// vmHWM is the peak resident set of process pid, from /proc, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("cannot read the process's memory figures: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc/<pid>/status")
	return 0
}

// alive fails the test if p has exited.
func alive(t *testing.T, p *proc, when string) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("the node exited %s:\n%s", when, p.logs)
	default:
	}
}

// TestHTTPDescriptorExhaustion: a node held to 256 descriptors gets more
// idle connections than that on its HTTP port. It stays up (accept errors
// are ridden out, not fatal), and once the connections close a probe is
// served again within seconds.
func TestHTTPDescriptorExhaustion(t *testing.T) {
	const limit, conns = 256, 400
	cfg, base := standaloneConfig(t, t.TempDir())
	node := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", t.TempDir())
	waitHTTP(t, base+"/health", node)
	pid := node.cmd.Process.Pid
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Skipf("cannot lower the node's descriptor limit (prlimit): %v", err)
	}

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.DialTimeout("tcp", httpAddr(base), 2*time.Second)
		if err != nil {
			break // the backlog is full: enough
		}
		held = append(held, c)
	}
	time.Sleep(2 * time.Second) // the node meets EMFILE meanwhile
	alive(t, node, fmt.Sprintf("with %d connections open", len(held)))
	if len(held) <= limit {
		t.Fatalf("only %d connections opened; need more than %d", len(held), limit)
	}
	alive(t, node, "while out of descriptors")
	if !strings.Contains(node.logs.String(), "http accept failed; retrying") {
		t.Fatalf("no accept error logged with %d connections at a limit of %d:\n%s", len(held), limit, node.logs)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil

	start := time.Now()
	for {
		if code, _, err := get(base + "/health"); err == nil && code == 200 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("/health not served within 5s of the connections closing")
		}
		time.Sleep(50 * time.Millisecond)
	}
	alive(t, node, "after the flood")
	t.Logf("%d connections at a limit of %d: node up, /health served %v after they closed", conns, limit, time.Since(start).Round(time.Millisecond))
}

// TestHTTPBodyBudgetBoundsMemory: 8 concurrent 60 MiB PUTs against a node.
// Bodies over the budget for bodies in flight (128 MiB by default) are
// answered 503 with Retry-After: 1 rather than buffered; the writers retry
// until every value is stored, and the node's peak RSS stays under a bound:
// before the budget it peaked at 4.7x the 480 MiB payload.
func TestHTTPBodyBudgetBoundsMemory(t *testing.T) {
	const writers, size = 8, 60 << 20
	// Measured 1.1-1.3 GiB here; 1.9-2.25 GiB before the budget.
	const bound = 1600 << 20
	cfg, base := standaloneConfig(t, t.TempDir())
	// A soft memory limit makes the node's garbage collector work to stay
	// near it, so what is measured is what the body budget keeps live, not
	// how far the heap grew before a collection on a loaded machine. Without
	// the budget the live bodies alone exceed the bound.
	t.Setenv("GOMEMLIMIT", "1GiB")
	node := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", t.TempDir())
	waitHTTP(t, base+"/health", node)
	pid := node.cmd.Process.Pid
	before := vmHWM(t, pid)

	val := make([]byte, size)
	rand.Read(val) // incompressible: the store keeps every byte
	var mu sync.Mutex
	var refused, badRetry int
	var errs []string
	var wg sync.WaitGroup
	began := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("%s/values/big%d", base, w)
			for attempt := 0; attempt < 60; attempt++ {
				resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(val))
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					return
				case 503:
					mu.Lock()
					refused++
					if resp.Header.Get("Retry-After") != "1" {
						badRetry++
					}
					mu.Unlock()
					time.Sleep(time.Second)
				default:
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: status %d", url, resp.StatusCode))
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			errs = append(errs, url+": still refused after 60 attempts")
			mu.Unlock()
		}()
	}
	wg.Wait()
	took := time.Since(began)
	if len(errs) > 0 {
		t.Fatalf("writes failed: %v", errs)
	}
	if badRetry > 0 {
		t.Fatalf("%d of %d 503s lacked Retry-After: 1", badRetry, refused)
	}
	peak := vmHWM(t, pid)
	for w := range writers {
		resp, err := client.Head(fmt.Sprintf("%s/values/big%d", base, w))
		if err != nil || resp.StatusCode != 200 || resp.ContentLength != size {
			t.Fatalf("big%d after the writes: %v %v", w, resp, err)
		}
		resp.Body.Close()
	}
	alive(t, node, "after the writes")
	t.Logf("%d x %d MiB PUTs in %v: %d answered 503 and retried; peak RSS %d MiB (%.1fx the %d MiB payload; %d MiB before), bound %d MiB",
		writers, size>>20, took.Round(time.Millisecond), refused, peak>>20, float64(peak)/float64(writers*size), writers*size>>20, before>>20, bound>>20)
	if peak > bound {
		t.Fatalf("peak RSS %d MiB over the %d MiB bound", peak>>20, bound>>20)
	}
}

// mountTmpfs mounts a tmpfs of size on a fresh directory, or skips the test.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// tmpfsNode starts a node whose data lives on a tmpfs of 48 MiB.
func tmpfsNode(t *testing.T, minFree string) (*proc, string, string) {
	t.Helper()
	dir := mountTmpfs(t, "48m")
	p := freePorts(t, 2)
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
active_deployment: d
storage: {memtable_bytes: 4MiB, cache_bytes: 8MiB, min_free_bytes: %s}
deployments:
    d:
        background_healing: no
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
`, minFree, p[0], p[1]))
	base := fmt.Sprintf("http://127.0.0.1:%d", p[0])
	node := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", dir+"/var")
	waitHTTP(t, base+"/health", node)
	return node, base, dir
}

// stopsWithin sends SIGTERM to p and fails unless it exits within d.
func stopsWithin(t *testing.T, p *proc, d time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(began)
	case <-time.After(d):
		t.Fatalf("the node did not exit within %v of SIGTERM:\n%s", d, p.logs)
		return 0
	}
}

// TestDeleteFloodOnFullDisk: a flood of DELETEs of keys that hold nothing
// on a node whose disk is down to min_free_bytes is refused with 507 like
// writes once free space is below the guard (such tombstones only add
// bytes: a flood of them used to fill the disk to 100%, where DELETEs hung
// and SIGTERM no longer stopped the node). Free space stays above most of
// the guard, every request is answered, a DELETE of a key holding a value
// still works, and SIGTERM stops the node. Needs to mount a tmpfs (root);
// otherwise it skips.
func TestDeleteFloodOnFullDisk(t *testing.T) {
	const minFree = 12 << 20
	node, base, dir := tmpfsNode(t, "12MiB")
	val := make([]byte, 200<<10)
	rand.Read(val)
	full := false
	for i := 0; i < 1000 && !full; i++ {
		code, err := post(context.Background(), fmt.Sprintf("%s/values/k%d", base, i), val)
		switch {
		case err != nil:
			t.Fatalf("POST k%d: %v", i, err)
		case code == 507:
			full = true
		case code != 200:
			t.Fatalf("POST k%d: status %d", i, code)
		}
	}
	if !full {
		t.Fatal("the disk never reported full")
	}
	// 2,000 tombstones of 32 KiB keys are 64 MiB of WAL: far more than the
	// tmpfs has left. Tombstones are admitted while there is room above the
	// guard, then refused.
	long := strings.Repeat("x", 32<<10)
	began := time.Now()
	admitted, refused := 0, 0
	for i := 0; i < 2000 && refused < 200; i++ {
		code, err := del(fmt.Sprintf("%s/values/%s%d", base, long, i))
		switch {
		case err != nil:
			t.Fatalf("DELETE of new key %d: %v (%d admitted, %d refused)", i, err, admitted, refused)
		case code == 200:
			admitted++
		case code == 507:
			refused++
		default:
			t.Fatalf("DELETE of new key %d: status %d", i, code)
		}
	}
	flood := time.Since(began)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if refused == 0 || free < minFree/4 {
		t.Fatalf("DELETEs of new keys: %d admitted, %d refused; %d bytes left free (min_free_bytes %d)", admitted, refused, free, minFree)
	}
	if code, err := del(base + "/values/k0"); err != nil || code != 200 {
		t.Fatalf("DELETE of a stored value on a full disk: %d %v, want 200", code, err)
	}
	if code, _, err := get(base + "/health"); err != nil || code != 200 {
		t.Fatalf("/health after the flood: %d %v", code, err)
	}
	took := stopsWithin(t, node, 20*time.Second)
	t.Logf("DELETEs of new keys on a full disk: %d admitted, %d refused with 507 in %v, %d MiB left free; SIGTERM stopped the node in %v",
		admitted, refused, flood.Round(time.Millisecond), free>>20, took.Round(time.Millisecond))
}

// TestSIGTERMWithStuckRequests: a node with requests in flight that cannot
// complete still exits within its shutdown bound (15s) after SIGTERM:
// uploads whose clients stall mid-body (their bodies may take 70s at the
// slowest rate accepted), while a probe was served up to the signal.
func TestSIGTERMWithStuckRequests(t *testing.T) {
	cfg, base := standaloneConfig(t, t.TempDir())
	node := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", t.TempDir())
	waitHTTP(t, base+"/health", node)
	for i := range 8 {
		c, err := net.Dial("tcp", httpAddr(base))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "PUT /values/stalled%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", i, 60<<20)
		c.Write(make([]byte, 1<<20))
	}
	time.Sleep(500 * time.Millisecond)
	if code, _, err := get(base + "/health"); err != nil || code != 200 {
		t.Fatalf("probe with uploads stalled: %d %v", code, err)
	}
	took := stopsWithin(t, node, 20*time.Second)
	if took > 17*time.Second {
		t.Fatalf("SIGTERM took %v, over the 15s shutdown bound", took)
	}
	if !strings.Contains(node.logs.String(), "requests still in flight") {
		t.Fatalf("the stalled uploads were not reported at shutdown:\n%s", lastLines(node.logs.String(), 6))
	}
	t.Logf("SIGTERM with 8 stalled 60 MiB uploads: the node exited in %v", took.Round(time.Millisecond))
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
