// Package hlc is the hybrid logical clock that stamps Tako's writes.
//
// A process stamps a write with max(its wall clock, the highest timestamp it
// has seen + 1), where "seen" covers the timestamps it stamped, the records
// its reads and writes returned, and the records that arrived over the peer
// protocol. So a process whose wall clock is behind the others' still stamps
// a write above every record it has observed, and a read-then-write through
// any process keeps the later write. Timestamps are microseconds since the
// Unix epoch, as everywhere in Tako.
//
// The clock also bounds what it accepts: a timestamp more than the maximum
// skew ahead of the wall clock, zero or negative is refused (Check) and never
// observed, so one bad client or peer cannot drag every clock into the
// future or lock a key forever.
//
// Concurrency: a Clock is safe for concurrent use; Now and Observe are a
// compare-and-swap loop on one word and never block.
package hlc

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrTimestamp is wrapped by Check's errors.
var ErrTimestamp = errors.New("hlc: timestamp out of range")

// Clock is a hybrid logical clock. The zero value is not usable; use New.
type Clock struct {
	offset  int64        // µs added to the wall clock (a testing aid)
	maxSkew atomic.Int64 // µs a timestamp may be ahead of the wall clock
	last    atomic.Int64 // the highest timestamp stamped or observed
}

// DefaultMaxSkew is the bound New starts with (max_clock_skew's default).
const DefaultMaxSkew = 60 * time.Second

// New returns a clock that reads the wall clock plus offset. Offset is for
// tests that inject clock skew (tako-node -clock-offset); production uses 0.
func New(offset time.Duration) *Clock {
	c := &Clock{offset: offset.Microseconds()}
	c.maxSkew.Store(DefaultMaxSkew.Microseconds())
	return c
}

// SetMaxSkew changes the bound Check and Observe apply; d > 0.
func (c *Clock) SetMaxSkew(d time.Duration) { c.maxSkew.Store(d.Microseconds()) }

// Wall returns the wall clock (plus the offset) in µs.
func (c *Clock) Wall() int64 { return time.Now().UnixMicro() + c.offset }

// Now returns a timestamp for a new write: above every timestamp this clock
// stamped or observed, and no lower than the wall clock.
func (c *Clock) Now() int64 {
	wall := c.Wall()
	for {
		last := c.last.Load()
		ts := max(wall, last+1)
		if c.last.CompareAndSwap(last, ts) {
			return ts
		}
	}
}

// Observe records a timestamp seen in a reply or a peer's record. One beyond
// the skew bound is ignored: Check refuses it wherever it could be stored.
func (c *Clock) Observe(ts int64) {
	if ts > c.Wall()+c.maxSkew.Load() {
		return
	}
	for {
		last := c.last.Load()
		if ts <= last || c.last.CompareAndSwap(last, ts) {
			return
		}
	}
}

// Check returns an error wrapping ErrTimestamp when ts is not positive or is
// more than the maximum skew ahead of the wall clock.
func (c *Clock) Check(ts int64) error {
	if ts <= 0 {
		return fmt.Errorf("%w: %d is not a positive number of microseconds since the epoch", ErrTimestamp, ts)
	}
	skew := c.maxSkew.Load()
	if ahead := ts - c.Wall(); ahead > skew {
		return fmt.Errorf("%w: %d is %.0fs ahead of this process's clock (max_clock_skew %s)", ErrTimestamp, ts,
			float64(ahead)/1e6, time.Duration(skew)*time.Microsecond)
	}
	return nil
}
