package cli

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls path until it contains want, for up to 10s.
func waitFor(t *testing.T, path, want string) string {
	t.Helper()
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ = os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
	}
	t.Fatalf("%s does not contain %q within 10s:\n%s", path, want, b)
	return ""
}

// Logrotate's way: rename the log, then SIGHUP; logging goes on in a new
// file at the path, and the process lives on.
func TestSIGHUPReopensLogFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.log")
	log, closer, err := Logger(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	log.Info("before rotation")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	log.Info("after the rename, before the signal") // still the old file
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, path, "log file reopened on SIGHUP")
	log.Info("after rotation")
	fresh := waitFor(t, path, "after rotation")
	old, _ := os.ReadFile(path + ".1")
	if !strings.Contains(string(old), "before rotation") || !strings.Contains(string(old), "before the signal") ||
		strings.Contains(string(old), "after rotation") || strings.Contains(fresh, "before rotation") {
		t.Errorf("old file:\n%s\nnew file:\n%s", old, fresh)
	}

	// A directory that cannot take the file: the old one stays in use.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, path+".2", "could not reopen the log file")
}

// Without a log file SIGHUP is logged and ignored; after Close it is no
// longer caught (a second Close is harmless).
func TestSIGHUPWithoutLogFile(t *testing.T) {
	_, closer, err := Logger("", false)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	time.Sleep(50 * time.Millisecond) // the test process survives it
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
}

// Durations in the JSON log read as durations, not nanoseconds.
func TestDurationsLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	log, closer, err := Logger(path, false)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("pass done", "took", 1500*time.Millisecond, slog.Group("pass", "wait", 3*time.Second), "n", 7)
	closer.Close()
	b, _ := os.ReadFile(path)
	if line := string(b); !strings.Contains(line, `"took":"1.5s"`) || !strings.Contains(line, `"wait":"3s"`) || !strings.Contains(line, `"n":7`) {
		t.Errorf("log line %s", line)
	}
}
