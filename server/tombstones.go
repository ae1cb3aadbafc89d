package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/kv"
)

// Tombstone GC. A tombstone goes once it is older than the deployment's
// tombstone_grace AND every replica of its key, in every live deployment,
// holds that very tombstone (ScyllaDB's repair-mode GC): the node that sees
// both purges it from the other replicas (Purge: removed only if still
// exactly that record) and then from its own store. While any replica is
// down or holds something else, the tombstone stays, so a replica that
// missed the delete still gets it from anti-entropy when it returns, and
// cannot push back the deleted value.
//
// A node that was away (down, or cut off) for longer than the grace is the
// other danger: its peers may have purged tombstones for values it still
// holds. Such a node discards, before it serves, every record that other
// nodes also replicate (see quarantine), and anti-entropy refills it.

// collect purges the tombstones of t that are older than grace and held by
// every replica; it returns how many it purged.
func (h *healer) collect(ctx context.Context, t *topology, grace time.Duration) (int, error) {
	horizon := time.Now().Add(-grace).UnixMicro()
	purged := 0
	var errs []error
	for seg := range kv.NumSegments {
		if h.store.SegmentSum(seg).Tombstones == 0 {
			continue
		}
		n, err := h.collectSegment(ctx, t, seg, horizon)
		purged += n
		if err != nil {
			if ctx.Err() != nil {
				return purged, err
			}
			errs = append(errs, fmt.Errorf("segment %d: %w", seg, err))
		}
	}
	return purged, joinErrs(errs)
}

// collectSegment purges segment seg's tombstones older than horizon that
// every replica holds.
func (h *healer) collectSegment(ctx context.Context, t *topology, seg int, horizon int64) (int, error) {
	type candidate struct {
		key  []byte
		v    version
		reps []int // other replicas
	}
	var cands []candidate
	var rt route
	err := h.store.ScanSegment(seg, nil, func(key []byte, m kv.Meta, hash uint64) error {
		if !m.Tombstone || m.TS >= horizon {
			return nil
		}
		c := candidate{key: append([]byte(nil), key...), v: version{m, hash}}
		t.fill(&rt, key)
		for _, n := range rt.reps {
			if n != t.self {
				c.reps = append(c.reps, n)
			}
		}
		cands = append(cands, c)
		return nil
	})
	if err != nil || len(cands) == 0 {
		return 0, err
	}
	confirmed := make([]int, len(cands))
	var nodes []int
	for _, c := range cands {
		for _, n := range c.reps {
			if !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
	}
	for _, n := range nodes {
		theirs, err := h.listSegments(ctx, t.replicas[n], []int{seg})
		if err != nil {
			return 0, err // a replica not heard: nothing here is confirmed
		}
		for i, c := range cands {
			if v, ok := theirs[string(c.key)]; ok && v == c.v && slices.Contains(c.reps, n) {
				confirmed[i]++
			}
		}
	}
	byNode := map[int][]codec.Record{}
	var mine []candidate
	for i, c := range cands {
		if confirmed[i] < len(c.reps) {
			continue
		}
		mine = append(mine, c)
		for _, n := range c.reps {
			byNode[n] = append(byNode[n], codec.Record{Key: c.key, TS: c.v.meta.TS, Flags: codec.Tombstone})
		}
	}
	var errs []error
	for n, recs := range byNode {
		pctx, cancel := context.WithTimeout(ctx, h.cluster.timeout)
		_, err := t.replicas[n].Purge(pctx, recs)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("purge on %s: %w", t.nodes[n].ID, err))
		}
	}
	if len(errs) > 0 {
		// Keep ours: the replicas that did purge get the tombstone back from
		// anti-entropy, and the next pass tries again.
		return 0, errors.Join(errs...)
	}
	purged := 0
	for _, c := range mine {
		ok, err := h.store.Drop(c.key, kv.Record{TS: c.v.meta.TS, Tombstone: true})
		if err != nil {
			return purged, err
		}
		if ok {
			purged++
		}
	}
	return purged, nil
}

// quarantine makes a node that was away for longer than grace safe to
// rejoin: its peers may have purged tombstones for values it still holds,
// which it would push back. It discards every record that another node
// also replicates under t (anti-entropy refills it from them) and keeps
// those it alone holds. It returns how many it discarded.
func quarantine(store *kv.Store, t *topology, grace time.Duration, log *slog.Logger) (int, error) {
	last, ok, err := store.LastAlive()
	if err != nil || !ok || time.Since(last) <= grace {
		return 0, err
	}
	log.Warn("this node was away longer than tombstone_grace: discarding the records other nodes also hold, anti-entropy refills them",
		"last_alive", last.Format(time.RFC3339), "away", time.Since(last).Round(time.Second).String(), "tombstone_grace", grace.String())
	discarded := 0
	var start []byte
	errChunk := errors.New("chunk full")
	for {
		var keys [][]byte
		var recs []kv.Record
		var rt route
		err := store.Scan(start, nil, func(key []byte, rec kv.Record) error {
			if len(keys) == 10_000 {
				start = append(start[:0], key...)
				return errChunk
			}
			t.fill(&rt, key)
			if slices.ContainsFunc(rt.reps, func(n int) bool { return n != t.self }) {
				keys = append(keys, append([]byte(nil), key...))
				rec.Value = append([]byte(nil), rec.Value...)
				recs = append(recs, rec)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errChunk) {
			return discarded, err
		}
		for i, key := range keys {
			if _, derr := store.Drop(key, recs[i]); derr != nil {
				return discarded, derr
			}
			discarded++
		}
		if err == nil {
			return discarded, nil
		}
	}
}
