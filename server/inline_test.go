package server

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tako-kv/tako/codec"
)

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestInlineReads: a read slower than the threshold sends point reads to
// the readers for the backoff; fast reads leave them on the loop.
func TestInlineReads(t *testing.T) {
	for _, tc := range []struct {
		name          string
		slow, backoff time.Duration
		wantInline    bool
	}{
		{"fast reads stay on the loop", time.Hour, time.Hour, true},
		{"a slow read sends reads to the readers", time.Nanosecond, time.Hour, false},
		{"and they come back after the backoff", time.Nanosecond, time.Nanosecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The process's disk reads (other tests') must not decide.
			r := inlineReads{slow: tc.slow, backoff: tc.backoff, blocks: noDiskReads}
			start, ok := r.allow(codec.OpGet, discardLog)
			if !ok {
				t.Fatal("a fresh node does not serve reads on the loop")
			}
			time.Sleep(time.Millisecond) // the read
			r.ran(start, 100, discardLog)
			time.Sleep(time.Millisecond)
			if _, ok := r.allow(codec.OpGet, discardLog); ok != tc.wantInline {
				t.Fatalf("after a read of 1ms (slow %v, backoff %v): inline %v, want %v", tc.slow, tc.backoff, ok, tc.wantInline)
			}
		})
	}
}

func noDiskReads() int64 { return 0 }

// TestInlineReadsLeaveTheLoopWhenTheProcessReadsTheDisk: once the process
// reads from a block device, point reads go to the readers.
func TestInlineReadsLeaveTheLoopWhenTheProcessReadsTheDisk(t *testing.T) {
	r := inlineReads{slow: time.Hour, backoff: time.Hour}
	if _, ok := r.allow(codec.OpGet, discardLog); !ok {
		t.Fatal("a fresh node does not serve reads on the loop")
	}
	before := blocksRead()
	readUncached(t, 1<<20)
	if blocksRead() == before {
		t.Skip("skipped: reads with O_DIRECT in the test's temp dir do not show in ru_inblock here (tmpfs, or a file system that does not account them)")
	}
	time.Sleep(inblockEvery)
	if _, ok := r.allow(codec.OpGet, discardLog); ok {
		t.Fatal("point reads stay on the loop after the process read from the disk")
	}
}

// readUncached writes n bytes to a file and reads them back with O_DIRECT,
// past the page cache.
func readUncached(t *testing.T, n int) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, n), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Skipf("skipped: O_DIRECT not available in the test's temp dir: %v", err)
	}
	defer syscall.Close(fd)
	const align = 4096
	raw := make([]byte, n+align)
	off := align - int(uintptr(unsafe.Pointer(&raw[0]))%align)
	buf := raw[off%align : off%align+n]
	if _, err := syscall.Read(fd, buf); err != nil {
		t.Skipf("skipped: O_DIRECT read: %v", err)
	}
}

// TestInlineReadsSendLargeGetsToTheReaders: after a Get of a large value
// on the loop, Gets go to the readers for the backoff; Stats stay.
func TestInlineReadsSendLargeGetsToTheReaders(t *testing.T) {
	r := inlineReads{slow: time.Hour, backoff: time.Hour, blocks: noDiskReads}
	start, ok := r.allow(codec.OpGet, discardLog)
	if !ok {
		t.Fatal("a fresh node does not serve reads on the loop")
	}
	r.ran(start, largeInlineValue-1, discardLog)
	if _, ok := r.allow(codec.OpGet, discardLog); !ok {
		t.Fatal("a Get below largeInlineValue sent Gets to the readers")
	}
	r.ran(start, largeInlineValue, discardLog)
	if _, ok := r.allow(codec.OpGet, discardLog); ok {
		t.Fatal("Gets stay on the loop after a large value was read there")
	}
	if _, ok := r.allow(codec.OpStat, discardLog); !ok {
		t.Fatal("Stats left the loop after a large Get")
	}
}
