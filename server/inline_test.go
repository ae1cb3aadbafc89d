package server

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestInlineReads: a read slower than the threshold sends reads to the
// readers for the backoff; fast reads leave them on the loop.
func TestInlineReads(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name          string
		slow, backoff time.Duration
		wantInline    bool
	}{
		{"fast reads stay on the loop", time.Hour, time.Hour, true},
		{"a slow read turns inline reads off", time.Nanosecond, time.Hour, false},
		{"and they come back after the backoff", time.Nanosecond, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := inlineReads{slow: tc.slow, backoff: tc.backoff}
			start, ok := r.allow()
			if !ok {
				t.Fatal("a fresh node does not serve reads on the loop")
			}
			time.Sleep(time.Millisecond) // the read
			r.ran(start, log)
			if _, ok := r.allow(); ok != tc.wantInline {
				t.Fatalf("after a read of 1ms (slow %v, backoff %v): inline %v, want %v", tc.slow, tc.backoff, ok, tc.wantInline)
			}
		})
	}
}
