package server

import (
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tako-kv/tako/codec"
)

// inlineReads decides where a peer point read (Get, Stat) runs: on the
// event loop that framed it, or on a reader goroutine.
//
// Why on the loop: a read served from Pebble's memtable or caches takes a
// few microseconds, less than handing it to a reader goroutine (a wake-up)
// and waking the loop again for its reply (the doorbell: a write, a read
// and an epoll return). In a cluster each node sees a slice of the
// proxies' traffic, so those hand-offs are rarely shared between requests:
// serving reads on the loop made proxied reads of 100 B values through
// local_cluster.yaml about 25% faster (RESULTS.md).
//
// Why not always: a read that misses the page cache waits for the disk,
// and the loop serves every connection it owns; reads that each wait for
// the disk, one after another on a loop, would serialise. So point reads
// go to the readers for inlineBackoff whenever
//   - the process read from a block device (getrusage's ru_inblock, checked
//     every inblockEvery by the first read after it): its working set no
//     longer fits in memory, or something else (a compaction, a scan) is
//     reading the disk;
//   - a read took longer than slowInlineRead on the loop, whatever the
//     reason (a file system that does not account its reads, a stall).
//
// And Gets (not Stats) go to the readers for inlineBackoff after one read
// a value of largeInlineValue or more: copying large values out of Pebble
// is work the readers spread over every core, where a node has one loop
// per two.
//
// A loop therefore waits for the disk during at most inblockEvery before
// its reads leave it; after inlineBackoff without either signal they
// come back.
//
// Safe for concurrent use: the state is atomics shared by the node's loops.
type inlineReads struct {
	offUntil     atomic.Int64 // mono; point reads go to the readers before it
	getsOffUntil atomic.Int64 // mono; Gets go to the readers before it
	checkAt      atomic.Int64 // mono of the next ru_inblock check
	inblock      atomic.Int64 // ru_inblock at the last check
	// slow, backoff and blocks replace slowInlineRead, inlineBackoff and
	// blocksRead when set (tests).
	slow, backoff time.Duration
	blocks        func() int64
}

// monoEpoch anchors mono, the clock of inlineReads' deadlines: nanoseconds
// since it on Go's monotonic clock, so that a step of the wall clock (NTP,
// a VM restored from a snapshot) neither stops the ru_inblock check nor
// stretches a backoff by the size of the step.
var monoEpoch = time.Now()

func mono(t time.Time) int64 { return int64(t.Sub(monoEpoch)) }

const (
	slowInlineRead   = 5 * time.Millisecond
	largeInlineValue = 64 << 10
	inlineBackoff    = time.Second
	inblockEvery     = 10 * time.Millisecond
)

// allow reports whether a read of op (Get or Stat) may run on the loop
// now, and when it starts.
func (r *inlineReads) allow(op codec.Op, log *slog.Logger) (start time.Time, ok bool) {
	start = time.Now()
	now := mono(start)
	if at := r.checkAt.Load(); now >= at && r.checkAt.CompareAndSwap(at, now+int64(inblockEvery)) {
		blocks := r.blocks
		if blocks == nil {
			blocks = blocksRead
		}
		if n := blocks(); n > r.inblock.Swap(n) && at != 0 {
			r.turnOff(&r.offUntil, now, "the process read from the disk: point reads", log)
		}
	}
	ok = now >= r.offUntil.Load() && (op != codec.OpGet || now >= r.getsOffUntil.Load())
	return start, ok
}

// ran records a read that started at start on the loop and replied with
// a value of valueBytes.
func (r *inlineReads) ran(start time.Time, valueBytes int, log *slog.Logger) {
	slow := r.slow
	if slow == 0 {
		slow = slowInlineRead
	}
	took := time.Since(start)
	now := mono(start.Add(took))
	if took >= slow {
		r.turnOff(&r.offUntil, now, "a point read was slow on the event loop: point reads", log)
	}
	if valueBytes >= largeInlineValue {
		r.turnOff(&r.getsOffUntil, now, "a large value was read on the event loop: Gets", log)
	}
}

func (r *inlineReads) turnOff(until *atomic.Int64, now int64, what string, log *slog.Logger) {
	backoff := r.backoff
	if backoff == 0 {
		backoff = inlineBackoff
	}
	if prev := until.Swap(now + int64(backoff)); prev < now {
		log.Debug(what+" go to reader goroutines for a while", "for", backoff.String())
	}
}

// blocksRead is the process's block input operations so far (ru_inblock).
func blocksRead() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Inblock)
}
