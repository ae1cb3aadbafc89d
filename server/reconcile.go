package server

import (
	"context"
	"errors"
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

// reconcileStats counts one span's reconciliation.
type reconcileStats struct{ records, pushed, pulled, dropped, unconfirmed, notOwned int }

// reconcile brings the segments segs (a span: consecutive segments to
// reconcile with the same peers, so that their pushes share batches and
// syncs) up to date between this node and its peers:
// it pushes the records a peer lacks or holds older, pulls those this node
// lacks or holds older among the keys it owns (so a node that lost its data
// refills on its own first pass), and drops this node's records of keys it
// does not own once every replica holds them. peers nil means every node of
// the segment, key by key (it is divided, or not this node's); otherwise
// the listed peers, replicas of every key of the segment.
func (h *healer) reconcile(ctx context.Context, t *topology, segs []int, peers []int) (reconcileStats, error) {
	var st reconcileStats
	type local struct {
		key   []byte
		v     version
		reps  []int // the key's replicas other than this node
		owned bool
	}
	var mine []local
	var rt route
	for _, seg := range segs {
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
	}
	st.records = len(mine)
	index := make(map[string]int, len(mine))
	for i, l := range mine {
		index[string(l.key)] = i
	}
	targets := peers
	if targets == nil {
		for _, seg := range segs {
			nodes, _ := t.segmentPlan().nodes(seg)
			for _, n := range nodes {
				if n != t.self && !slices.Contains(targets, n) {
					targets = append(targets, n)
				}
			}
		}
	}
	have := make([]int, len(mine)) // replicas confirmed to hold the record or newer
	var errs []error
	for _, n := range targets {
		theirs, err := h.listSegments(ctx, t.replicas[n], segs)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", t.nodes[n].ID, err))
			continue
		}
		pulled, err := h.pull(ctx, t, t.replicas[n], theirs, func(key string, v version) bool {
			i, ok := index[key]
			return !ok || newerMeta(v.meta, mine[i].v.meta) || v.meta == mine[i].v.meta && v.hash != mine[i].v.hash
		})
		st.pulled += pulled
		if err != nil {
			errs = append(errs, fmt.Errorf("pull from %s: %w", t.nodes[n].ID, err))
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

// pull fetches from r, and applies here, the records of theirs that want
// says this node lacks, among the keys it owns; it returns how many it
// applied.
func (h *healer) pull(ctx context.Context, t *topology, r Replica, theirs map[string]version, want func(string, version) bool) (int, error) {
	var rt route
	n := 0
	for key, v := range theirs {
		if !want(key, v) {
			continue
		}
		t.fill(&rt, []byte(key))
		if !slices.Contains(rt.reps, t.self) {
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, h.cluster.timeout)
		rec, err := r.Get(gctx, []byte(key), nil)
		cancel()
		if errors.Is(err, kv.ErrNotFound) {
			continue // gone meanwhile (dropped or purged)
		}
		if err != nil {
			return n, err
		}
		if _, err := h.store.Apply([]byte(key), rec); err != nil {
			return n, err
		}
		h.exchanged.Add(int64(codec.RecordSize(len(key), len(rec.Value))))
		n++
	}
	return n, nil
}

// listSegments returns r's records of segments segs by key.
func (h *healer) listSegments(ctx context.Context, r Replica, segs []int) (map[string]version, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cluster.timeout)
	defer cancel()
	out := map[string]version{}
	for _, seg := range segs {
		err := r.SegmentRecords(ctx, seg, func(key []byte, m kv.Meta, hash uint64) {
			out[string(key)] = version{m, hash}
			h.exchanged.Add(int64(codec.RecordSize(len(key), 8)))
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
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
