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
	"github.com/tako-kv/tako/server/config"
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
// A node that was down for longer than the grace is the other danger: its
// peers may have purged tombstones for values it still holds, of keys it did
// not replicate for a while. Such a node discards those records before it
// serves or hands anything off (see quarantine), and anti-entropy refills
// them. Not covered: a node cut off while running, that the configuration
// removed meanwhile; once it hears again, it hands off what it holds.

// purgeHorizon is the timestamp below which a record may be older than a
// tombstone some node has collected by now: collect purges tombstones below
// now - tombstone_grace on its own clock, which may run up to max_clock_skew
// ahead of this one. A record below it must not be written back to a
// replica by hinted hand-off: it could be a deleted value.
func purgeHorizon(cfg *config.Config, now time.Time) int64 {
	d := cfg.ActiveDeployment()
	return now.Add(-d.TombstoneGrace + d.MaxClockSkew).UnixMicro()
}

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
// which it would push back. A peer purges only once every replica of the key
// holds the tombstone (collect), so while this node replicates a key it
// cannot miss that key's purge: what it must discard is what it held
// without replicating it at some time while it was away. It knows two of
// the configurations of that time: last, the one it last ran with (nil if
// unknown), and t, the one it starts with. It keeps the records of keys it
// replicates under both (a whole cluster restarted after a long stop keeps
// its data) and those no other node replicates under t (there is nothing to
// refill them from), and discards the rest: anti-entropy refills them from
// the other replicas. Not seen: a configuration that took a key from this
// node and gave it back while it was away. It returns how many it discarded.
func quarantine(store *kv.Store, t, last *topology, grace time.Duration, log *slog.Logger) (int, error) {
	away, ok, err := store.LastAlive()
	if err != nil || !ok || time.Since(away) <= grace {
		return 0, err
	}
	log.Warn("this node was away longer than tombstone_grace: discarding the records of keys it may not have replicated meanwhile, anti-entropy refills them",
		"last_alive", away.Format(time.RFC3339), "away", time.Since(away).Round(time.Second).String(), "tombstone_grace", grace.String(),
		"last_configuration_known", last != nil)
	discarded := 0
	var start []byte
	errChunk := errors.New("chunk full")
	var rt route
	for {
		var keys [][]byte
		var recs []kv.Record
		err := store.Scan(start, nil, func(key []byte, rec kv.Record) error {
			if len(keys) == 10_000 {
				start = append(start[:0], key...)
				return errChunk
			}
			if !mayHaveMissedPurge(key, t, last, &rt) {
				return nil
			}
			keys = append(keys, append([]byte(nil), key...))
			rec.Value = append([]byte(nil), rec.Value...)
			recs = append(recs, rec)
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

// mayHaveMissedPurge reports whether a node away for long must discard its
// record of key (see quarantine): another node replicates key under t, and
// this node does not replicate it under both last and t.
func mayHaveMissedPurge(key []byte, t, last *topology, rt *route) bool {
	t.fill(rt, key)
	if !slices.ContainsFunc(rt.reps, func(n int) bool { return n != t.self }) {
		return false // no other copy to refill it from
	}
	if last == nil || !slices.Contains(rt.reps, t.self) {
		return true
	}
	last.fill(rt, key)
	return !slices.Contains(rt.reps, last.self)
}
