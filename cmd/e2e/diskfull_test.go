package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// TestDiskFull fills a small tmpfs under a node: writes of values are then
// refused with 507 while the node keeps serving reads and deletes, every
// acknowledged value stays intact, and writes resume by themselves once
// there is space again. It needs to mount a tmpfs (root); otherwise it skips.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	p := freePorts(t, 2)
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
active_deployment: d
storage: {memtable_bytes: 4MiB, cache_bytes: 8MiB, min_free_bytes: 12MiB}
deployments:
    d:
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
`, p[0], p[1]))
	base := fmt.Sprintf("http://127.0.0.1:%d", p[0])
	node := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", dir+"/var")
	waitHTTP(t, base+"/health", node)

	val := bytes.Repeat([]byte("tako fills the disk "), 10<<10) // 200 KiB
	for i := range val {
		val[i] ^= byte(i * 131 >> 5) // not compressible to nothing
	}
	acked, full := 0, false
	for i := 0; i < 1000 && !full; i++ {
		code, err := post(context.Background(), fmt.Sprintf("%s/values/k%d", base, i), val)
		switch {
		case err != nil:
			t.Fatalf("POST k%d: %v", i, err)
		case code == 200:
			acked++
		case code == 507:
			full = true
		default:
			t.Fatalf("POST k%d: status %d", i, code)
		}
	}
	if !full || acked == 0 {
		t.Fatalf("acked %d, disk full reported: %v", acked, full)
	}
	for i := range acked {
		if code, got, err := get(fmt.Sprintf("%s/values/k%d", base, i)); err != nil || code != 200 || !bytes.Equal(got, val) {
			t.Fatalf("k%d after the disk filled: %d %v", i, code, err)
		}
	}
	if code, err := del(fmt.Sprintf("%s/values/k0", base)); err != nil || code != 200 {
		t.Fatalf("DELETE on a full disk: %d %v", code, err)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=128m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v %s", err, out)
	}
	eventuallyOK := false
	for range 50 {
		if code, err := post(context.Background(), base+"/values/after", val); err == nil && code == 200 {
			eventuallyOK = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !eventuallyOK {
		t.Fatal("writes did not resume after space came back")
	}
	t.Logf("%d values acknowledged before the disk filled; writes resumed once it grew", acked)
}
