package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestShutdownStepsBounded: a shutdown step that never finishes is left
// behind once the shutdown's deadline passes, and logged by name; the steps
// after it still run, and the whole shutdown ends near the deadline.
func TestShutdownStepsBounded(t *testing.T) {
	var logs bytes.Buffer
	sd := newShutdown(slog.New(slog.NewTextHandler(&logs, nil)))
	sd.timeout = 300 * time.Millisecond
	stuck := make(chan struct{})
	defer close(stuck)

	began := time.Now()
	if !sd.step("quick", func() {}) {
		t.Fatal("a step that returns at once was reported unfinished")
	}
	if sd.step("stuck store close", func() { <-stuck }) {
		t.Fatal("a step that never returns was reported finished")
	}
	ran := false
	if !sd.step("after", func() { ran = true }) || !ran {
		t.Fatal("the step after a stuck one did not run to its end")
	}
	sd.finish("node t")
	if took := time.Since(began); took > sd.timeout+time.Second {
		t.Fatalf("shutdown took %v with a %v bound", took, sd.timeout)
	}
	for _, want := range []string{`step="stuck store close"`, "stopped with steps unfinished"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
