package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/server/hints"
)

// Hinted hand-off: the writes a replica missed (Cluster.hint) are replayed
// to it as soon as it answers again. Every replayInterval the loop tries
// each node that hints are held for; a node that takes its hints has come
// back, and onReturn is told (healing then starts an exchange with it).

// replayInterval is how often hints are offered to nodes that were down: a
// returning mirror catches up within about this long.
const replayInterval = time.Second

// replayHints runs hand-off until ctx ends.
func replayHints(ctx context.Context, hs *hints.Store, c *Cluster, log *slog.Logger, onReturn func(node string)) {
	t := time.NewTicker(replayInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, node := range hs.Targets() {
			if ctx.Err() != nil {
				return
			}
			handOff(ctx, hs, c, log, node, onReturn)
		}
	}
}

// handOff replays node's hints, or drops them when no live deployment names
// the node any longer.
func handOff(ctx context.Context, hs *hints.Store, c *Cluster, log *slog.Logger, node string, onReturn func(string)) {
	r, ok := c.replicaOf(node)
	if !ok {
		if err := hs.Drop(node); err != nil {
			log.Warn("drop hints", "node", node, "err", err)
		}
		log.Info("hints dropped: node no longer in the configuration", "node", node)
		return
	}
	began := time.Now()
	moved, old := 0, 0
	horizon := purgeHorizon(c.Config(), began)
	sent, err := hs.Replay(node, func(batch []codec.Record) error {
		// A node refuses writes of keys it does not replicate: the hints of
		// keys a newer configuration moved away from it are dropped (their
		// owners get the records from anti-entropy), not left to block the
		// batch. So are records older than the purge horizon: a tombstone
		// that replaced one may have been collected since, and the replayed
		// value would come back from the dead.
		owned := batch[:0]
		for _, rec := range batch {
			if rec.TS < horizon {
				old++
				continue
			}
			if ok, _ := c.replicates(node, rec.Key); !ok {
				moved++
				continue
			}
			owned = append(owned, rec)
		}
		if len(owned) > 0 {
			ctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			if _, err := r.ApplyBatch(ctx, owned); err != nil {
				return err
			}
		}
		return nil
	})
	if moved > 0 {
		log.Info("hints dropped: their keys moved to other nodes", "node", node, "records", moved)
	}
	if old > 0 {
		log.Info("hints dropped: older than tombstone_grace, they might undo a delete", "node", node, "records", old)
	}
	if sent > 0 {
		log.Info("hints replayed", "node", node, "records", sent-moved-old, "took", time.Since(began).Round(time.Millisecond).String(), "err", err)
		if onReturn != nil {
			onReturn(node)
		}
	}
}
