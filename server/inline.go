package server

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// inlineReads decides where a peer point read (Get, Stat) runs: on the
// event loop that framed it, or on a reader goroutine.
//
// Why on the loop: a read served from Pebble's memtable or block cache
// takes a few microseconds, less than handing it to a reader goroutine
// (a wake-up) and waking the loop again for its reply (the doorbell: a
// write, a read and an epoll return). In a cluster each node sees a
// slice of the proxies' traffic, so those hand-offs are rarely shared
// between requests: serving reads on the loop made proxied reads of
// 100 B values through local_cluster.yaml 25% faster (RESULTS.md).
//
// Why not always: a read that misses the caches waits for the disk, and
// the loop serves every connection it owns. A read that takes longer than
// slowInlineRead sends all point reads to the readers for
// inlineBackoff; the first read after that runs on the loop again. So a
// loop blocks on at most about one slow read per inlineBackoff, and a
// node whose working set does not fit in memory serves from its readers.
//
// Safe for concurrent use: the state is one atomic deadline shared by
// the node's loops.
type inlineReads struct {
	offUntil atomic.Int64 // UnixNano; reads go to the readers before it
	slow     time.Duration
	backoff  time.Duration
}

const (
	slowInlineRead = time.Millisecond
	inlineBackoff  = time.Second
)

// allow reports whether a read may run on the loop now, and when it starts.
func (r *inlineReads) allow() (start time.Time, ok bool) {
	now := time.Now()
	return now, now.UnixNano() >= r.offUntil.Load()
}

// ran records the time a read that started at start took on the loop.
func (r *inlineReads) ran(start time.Time, log *slog.Logger) {
	slow, backoff := r.slow, r.backoff
	if slow == 0 {
		slow, backoff = slowInlineRead, inlineBackoff
	}
	took := time.Since(start)
	if took < slow {
		return
	}
	until := start.Add(took + backoff).UnixNano()
	if prev := r.offUntil.Swap(until); prev < start.UnixNano() {
		log.Debug("a point read was slow on the event loop: point reads go to reader goroutines for a while",
			"took", took.String(), "for", backoff.String())
	}
}
