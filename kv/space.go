package kv

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// spaceGuard watches the free space of the store's file system. Refusing
// writes before the disk is full matters: a WAL write that fails with ENOSPC
// leaves Pebble unable to write until it is reopened.
type spaceGuard struct {
	dir  string
	min  int64
	log  *slog.Logger
	free atomic.Int64 // bytes free at the last check
	// since counts bytes admitted since that check: a burst of large writes
	// between two checks must not run the disk dry.
	since atomic.Int64
	low   atomic.Bool
	stop  chan struct{}
	wg    sync.WaitGroup
}

const spaceCheckEvery = 200 * time.Millisecond

func startSpaceGuard(dir string, min int64, log *slog.Logger) *spaceGuard {
	g := &spaceGuard{dir: dir, min: min, log: log, stop: make(chan struct{})}
	if min <= 0 {
		return g
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
	return g
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
