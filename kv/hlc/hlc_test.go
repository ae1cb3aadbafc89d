package hlc

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestNowIsMonotonicAndAboveWall(t *testing.T) {
	c := New(0)
	prev := int64(0)
	for range 1000 {
		before := time.Now().UnixMicro()
		ts := c.Now()
		if ts <= prev || ts < before {
			t.Fatalf("Now %d after %d (wall %d)", ts, prev, before)
		}
		prev = ts
	}
}

// A process whose wall clock is behind stamps above what it has seen: the
// case of a node 2 s slow whose writes were silently discarded.
func TestObserveLiftsSlowClock(t *testing.T) {
	slow := New(-2 * time.Second)
	fast := New(2 * time.Second)
	seen := fast.Now()
	slow.Observe(seen)
	if ts := slow.Now(); ts <= seen {
		t.Fatalf("slow clock stamped %d after observing %d", ts, seen)
	}
	slow.Observe(seen - 1000) // older: no effect
	if ts := slow.Now(); ts <= seen+1 {
		t.Fatalf("stamped %d", ts)
	}
}

func TestObserveIgnoresTheFarFuture(t *testing.T) {
	c := New(0)
	c.Observe(32503680000000000) // year 3000
	if ts := c.Now(); ts > time.Now().Add(time.Second).UnixMicro() {
		t.Fatalf("clock dragged to %d", ts)
	}
}

func TestCheck(t *testing.T) {
	c := New(0)
	c.SetMaxSkew(time.Minute)
	now := time.Now().UnixMicro()
	for _, tc := range []struct {
		ts int64
		ok bool
	}{
		{now, true},
		{1, true}, // old timestamps are allowed: they lose to newer records
		{now + (30 * time.Second).Microseconds(), true},
		{now + (2 * time.Minute).Microseconds(), false},
		{32503680000000000, false},
		{1<<63 - 1, false},
		{0, false},
		{-1, false},
	} {
		err := c.Check(tc.ts)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrTimestamp) {
			t.Errorf("Check(%d) = %v, want ok %v", tc.ts, err, tc.ok)
		}
	}
	// The offset shifts the bound with the clock.
	if err := New(time.Hour).Check(now + (30 * time.Minute).Microseconds()); err != nil {
		t.Errorf("clock an hour ahead refused a timestamp 30m ahead of the wall: %v", err)
	}
}

func TestConcurrentNowUnique(t *testing.T) {
	c := New(0)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]int64, 0, 1000)
			for range 1000 {
				local = append(local, c.Now())
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ts := range local {
				if seen[ts] {
					t.Errorf("timestamp %d stamped twice", ts)
				}
				seen[ts] = true
			}
		}()
	}
	wg.Wait()
}

func BenchmarkNow(b *testing.B) {
	c := New(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Now()
		}
	})
}
