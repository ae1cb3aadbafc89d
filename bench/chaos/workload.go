package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Workload is a closed loop of clients, each doing one operation at a time on a random key
// through a random entry point. Every write sends a value no other write sends.
type Workload struct {
	Clients   int
	Keys      []string
	Entries   []string // host:port of proxies and/or nodes
	WritePct  int      // the rest of 100 after WritePct and DeletePct are reads
	DeletePct int
	Acks      string        // X-Write-Acks on writes and deletes ("" for the deployment's)
	Timeout   time.Duration // per request
	Seed      uint64
	sec       *security // the cluster's (Env.Start sets it)
}

// Keys returns n key names with a prefix.
func Keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// Start runs the workload into hist until ctx ends or the returned stop is called; stop
// waits for every client to finish its operation. Client ids start at firstID.
func (w Workload) Start(ctx context.Context, hist *History, firstID int) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, newClient(firstID+i, hist, w.Timeout, w.sec), uint64(firstID+i))
		}()
	}
	return func() { cancel(); wg.Wait() }
}

func (w Workload) loop(ctx context.Context, c *client, stream uint64) {
	defer c.close()
	rng := rand.New(rand.NewPCG(w.Seed, stream))
	for seq := 0; ctx.Err() == nil; seq++ {
		key := w.Keys[rng.IntN(len(w.Keys))]
		entry := w.Entries[rng.IntN(len(w.Entries))]
		kind, value := OpRead, ""
		switch p := rng.IntN(100); {
		case p < w.WritePct:
			kind, value = OpWrite, fmt.Sprintf("w%d-%d", c.id, seq)
		case p < w.WritePct+w.DeletePct:
			kind = OpDelete
		}
		op := c.do(ctx, kind, entry, key, value, w.Acks)
		if op.Status == 0 && ctx.Err() == nil {
			// No reply (refused, reset, timed out): do not spin on a dead entry point.
			sleep(ctx, 20*time.Millisecond)
		}
	}
}

// sleep waits d or until ctx ends, and reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
