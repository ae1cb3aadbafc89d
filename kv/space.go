package kv

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sys/unix"
)

// spaceGuard watches the free space of the store's file system. Refusing
// writes before the disk is full matters: a WAL write that fails with ENOSPC
// leaves Pebble unable to write until it is reopened.
type spaceGuard struct {
	dir string
	min int64
	log *slog.Logger
	// walPrealloc is what Pebble reserves (fallocate) for every new WAL file:
	// 110% of the configured memtable size, 70 MiB by default. A fresh store's
	// memtables start at 256 KiB and double at each rotation, so its first few
	// MiB of writes create a handful of WALs within one check period: counted
	// only as the bytes written, they took a disk from the floor to 0 bytes
	// free (and Pebble then panics on ENOSPC).
	walPrealloc int64
	free        atomic.Int64 // bytes free at the last check
	// since counts bytes admitted since that check: a burst of large writes
	// between two checks must not run the disk dry.
	since atomic.Int64
	low   atomic.Bool
	stop  chan struct{}
	wg    sync.WaitGroup
}

const spaceCheckEvery = 200 * time.Millisecond

// newSpaceGuard returns a guard for a store of memtables of memtableBytes;
// start it once the store's directory exists.
func newSpaceGuard(dir string, min, memtableBytes int64, log *slog.Logger) *spaceGuard {
	return &spaceGuard{dir: dir, min: min, log: log, walPrealloc: memtableBytes + memtableBytes/10, stop: make(chan struct{})}
}

// walCreated is Pebble's WALCreated event: a new WAL file (not a recycled
// one, whose space is allocated already) takes walPrealloc until the next
// check sees it.
func (g *spaceGuard) walCreated(info pebble.WALCreateInfo) {
	if info.Err == nil && info.RecycledFileNum == 0 {
		g.since.Add(g.walPrealloc)
	}
}

// start takes the first reading and checks every spaceCheckEvery until close.
func (g *spaceGuard) start() {
	if g.min <= 0 {
		return
	}
	g.check()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		t := time.NewTicker(spaceCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-t.C:
				g.check()
			}
		}
	}()
}

func (g *spaceGuard) check() {
	var st unix.Statfs_t
	if err := unix.Statfs(g.dir, &st); err != nil {
		return // keep the last reading
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	g.free.Store(free)
	g.since.Store(0)
	low := free < g.min
	if g.low.Swap(low) != low {
		if low {
			g.log.Error("disk nearly full: refusing writes (values, and deletes of keys holding no value)", "dir", g.dir, "free", free, "min_free_bytes", g.min)
		} else {
			g.log.Info("disk space back: accepting writes", "dir", g.dir, "free", free)
		}
	}
}

// admit returns ErrDiskFull, with the figures, while space is low, counting
// n bytes about to be written (twice: WAL, then memtable flush). The bytes
// count even when the caller admits the write anyway (a tombstone over a
// value): it does take room until compaction.
func (g *spaceGuard) admit(n int) error {
	if g.min <= 0 {
		return nil
	}
	since := g.since.Add(2 * int64(n))
	if free := g.free.Load(); !g.low.Load() && free-since >= g.min {
		return nil
	}
	return fmt.Errorf("%w: about %d bytes free in %s, min_free_bytes %d", ErrDiskFull, max(0, g.free.Load()-since), g.dir, g.min)
}

func (g *spaceGuard) close() {
	close(g.stop)
	g.wg.Wait()
}
