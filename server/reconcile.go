package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/kv"
)

// version is one replica's record of a key as a segment listing shows it.
type version struct {
	meta kv.Meta
	hash uint64 // kv.RecordHash
}

// reconcileStats counts one segment's reconciliation.
type reconcileStats struct{ records, pushed, dropped, unconfirmed, notOwned int }

// reconcile brings the peers' copies of segment seg up to date with this
// node's, and drops this node's records of keys it does not own once every
// replica holds them. peers nil means every replica of each key (the
// segment is divided, or not this node's); otherwise the listed peers, all
// replicas of every key of the segment.
func (h *healer) reconcile(ctx context.Context, t *topology, seg int, peers []int) (reconcileStats, error) {
	var st reconcileStats
	type local struct {
		key   []byte
		v     version
		reps  []int // the key's replicas other than this node
		owned bool
	}
	var mine []local
	var rt route
	err := h.store.ScanSegment(seg, nil, func(key []byte, m kv.Meta, hash uint64) error {
		l := local{key: append([]byte(nil), key...), v: version{m, hash}}
		t.fill(&rt, key)
		for _, n := range rt.reps {
			if n == t.self {
				l.owned = true
			} else if peers == nil || slices.Contains(peers, n) {
				l.reps = append(l.reps, n)
			}
		}
		mine = append(mine, l)
		return nil
	})
	if err != nil {
		return st, err
	}
	st.records = len(mine)
	// Every node that should hold one of these keys, once each.
	var targets []int
	for _, l := range mine {
		for _, n := range l.reps {
			if !slices.Contains(targets, n) {
				targets = append(targets, n)
			}
		}
	}
	have := make([]int, len(mine)) // replicas confirmed to hold the record or newer
	var errs []error
	for _, n := range targets {
		theirs, err := h.listSegment(ctx, t.replicas[n], seg)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", t.nodes[n].ID, err))
			continue
		}
		var push []int
		for i, l := range mine {
			if !slices.Contains(l.reps, n) {
				continue
			}
			// Theirs is current when newer or the same record. Records that
			// tie on timestamp and kind but differ in value are pushed: the
			// replica's tie-break keeps the greater, and its healer pushes the
			// other way, so both converge.
			if v, ok := theirs[string(l.key)]; ok && (newerMeta(v.meta, l.v.meta) || v == l.v) {
				have[i]++
				continue
			}
			push = append(push, i)
		}
		keys := make([][]byte, len(push))
		for k, i := range push {
			keys[k] = mine[i].key
		}
		pushed, err := h.push(ctx, t.replicas[n], keys)
		st.pushed += pushed
		if err != nil {
			errs = append(errs, fmt.Errorf("push to %s: %w", t.nodes[n].ID, err))
			continue
		}
		for _, i := range push {
			have[i]++ // applied, or stale: a newer record is there
		}
	}
	for i, l := range mine {
		if have[i] < len(l.reps) {
			st.unconfirmed++
		}
		if l.owned {
			continue
		}
		if len(l.reps) == 0 || have[i] < len(l.reps) {
			st.notOwned++
			continue
		}
		rec, err := h.store.Get(l.key, nil)
		if err != nil || kv.RecordHash(l.key, rec) != l.v.hash {
			st.notOwned++ // gone, or a newer write arrived: keep it for the next pass
			continue
		}
		dropped, err := h.store.Drop(l.key, rec)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if dropped {
			st.dropped++
		} else {
			st.notOwned++
		}
	}
	return st, joinErrs(errs)
}

// listSegment returns r's records of segment seg by key.
func (h *healer) listSegment(ctx context.Context, r Replica, seg int) (map[string]version, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cluster.timeout)
	defer cancel()
	out := map[string]version{}
	err := r.SegmentRecords(ctx, seg, func(key []byte, m kv.Meta, hash uint64) {
		out[string(key)] = version{m, hash}
		h.exchanged.Add(int64(codec.RecordSize(len(key), 8)))
	})
	return out, err
}

// push sends the local records of keys to r in chunks; it returns how many
// it sent.
func (h *healer) push(ctx context.Context, r Replica, keys [][]byte) (int, error) {
	sent := 0
	var chunk []codec.Record
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, h.cluster.timeout)
		defer cancel()
		res, err := r.ApplyBatch(ctx, chunk)
		if err == nil && len(res) != len(chunk) {
			err = fmt.Errorf("heal: %d results for %d records pushed", len(res), len(chunk))
		}
		if err != nil {
			return err
		}
		sent += len(chunk)
		h.exchanged.Add(int64(size))
		chunk, size = chunk[:0], 0
		return nil
	}
	for _, key := range keys {
		rec, err := h.store.Get(key, nil)
		if err != nil {
			continue // dropped or gone meanwhile
		}
		if len(chunk) > 0 && (len(chunk) >= h.chunkRecords || size+len(key)+len(rec.Value) > h.chunkBytes) {
			if err := flush(); err != nil {
				return sent, err
			}
		}
		chunk = append(chunk, codec.Record{Key: key, TS: rec.TS, Flags: flagsOf(rec.Tombstone), Value: rec.Value})
		size += codec.RecordSize(len(key), len(rec.Value))
	}
	return sent, flush()
}

func joinErrs(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more)", errs[0], len(errs)-1)
}
