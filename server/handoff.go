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
	sent, err := hs.Replay(node, func(batch []codec.Record) error {
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		_, err := r.ApplyBatch(ctx, batch)
		return err
	})
	if sent > 0 {
		log.Info("hints replayed", "node", node, "records", sent, "took", time.Since(began).Round(time.Millisecond).String(), "err", err)
		if onReturn != nil {
			onReturn(node)
		}
	}
}
