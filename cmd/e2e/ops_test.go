package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logWait polls the log file at path until it holds a line with every one
// of want, for up to 20s, and returns that line.
func logWait(t *testing.T, path string, want ...string) string {
	t.Helper()
	var b []byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ = os.ReadFile(path)
	lines:
		for line := range strings.Lines(string(b)) {
			for _, w := range want {
				if !strings.Contains(line, w) {
					continue lines
				}
			}
			return line
		}
	}
	t.Fatalf("%s has no line with %q within 20s:\n%s", path, want, b)
	return ""
}

// TestNodeLogRotationAndRestartKeys runs a node logging to a file: an edit
// of storage.* by hot reload is logged as waiting for a restart, naming the
// key; logrotate's rename then SIGHUP moves logging to a new file at the
// path, and the node serves on.
func TestNodeLogRotationAndRestartKeys(t *testing.T) {
	dir := t.TempDir()
	cfg, base := standaloneConfig(t, dir)
	logPath := filepath.Join(dir, "n1.log")
	node := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", dir+"/var", "-l", logPath)
	waitHTTP(t, base+"/health", node)
	doc, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(storage string) {
		t.Helper()
		if err := os.WriteFile(cfg, append(append([]byte(nil), doc...), storage...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("storage: {sync: none}\n")
	logWait(t, logPath, "take effect only when this process restarts", `"storage.sync"`)

	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(node.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logWait(t, logPath, "log file reopened on SIGHUP")
	waitHTTP(t, base+"/health", node) // fails if the node exited
	edit("storage: {sync: none, cache_bytes: 32MiB}\n")
	logWait(t, logPath, "take effect only when this process restarts", `"storage.sync"`, `"storage.cache_bytes"`)
	if old, _ := os.ReadFile(logPath + ".1"); strings.Contains(string(old), "cache_bytes") || !strings.Contains(string(old), "storage.sync") {
		t.Errorf("the rotated file goes on growing, or lost its lines:\n%s", old)
	}
}
