package kv

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestSpaceGuardCountsNewWALs: every new WAL file Pebble creates reserves
// 110% of the memtable size at once, and the guard counts it until the next
// reading of the file system; a recycled WAL reserves nothing new. Before,
// only the bytes written counted, and a fresh store's first rotations (a few
// MiB written, five WALs of 70 MiB reserved within one check period) took a
// disk from the floor to 0 bytes free.
func TestSpaceGuardCountsNewWALs(t *testing.T) {
	const mib = 1 << 20
	g := newSpaceGuard(t.TempDir(), 100*mib, 64*mib, slog.Default()) // 70.4 MiB per WAL
	g.free.Store(230 * mib)
	if err := g.admit(1024); err != nil {
		t.Fatalf("a write with 130 MiB above the floor: %v", err)
	}
	g.walCreated(pebble.WALCreateInfo{FileNum: 5, RecycledFileNum: 4})
	if err := g.admit(1024); err != nil {
		t.Fatalf("a recycled WAL counted: %v", err)
	}
	g.walCreated(pebble.WALCreateInfo{FileNum: 6})
	if err := g.admit(1024); err != nil {
		t.Fatalf("one new WAL leaves 59 MiB above the floor: %v", err)
	}
	g.walCreated(pebble.WALCreateInfo{FileNum: 7})
	if err := g.admit(1024); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("two new WALs leave 89 MiB free, under the 100 MiB floor: %v", err)
	}
}

// TestStoreReportsWALsToItsGuard: Open wires Pebble's WAL creations to the
// store's space guard.
func TestStoreReportsWALsToItsGuard(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := s.space.since.Load()
	if err := s.db.Flush(); err != nil { // a flush rotates the memtable: a new WAL
		t.Fatal(err)
	}
	if got := s.space.since.Load() - before; got != s.space.walPrealloc {
		t.Fatalf("a new WAL added %d bytes to the guard's count, want %d", got, s.space.walPrealloc)
	}
}
