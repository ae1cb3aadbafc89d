package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/nodestatus"
)

// Anti-entropy. The store keeps a summary of its records per hash segment
// (kv.SegmentSum: the XOR of their record hashes and their count), current
// as writes land. A pass compares, with each peer, the sums of the segments
// both hold in full — two levels, groups of 256 segments then the segments
// of the groups that differ — and reconciles only the segments whose sums
// differ: it lists the peer's records of the segment (keys, timestamps and
// record hashes, no values), and pushes the records the peer lacks or holds
// older (BatchSet; last-write-wins makes a push idempotent). The peer's own
// healer pushes the other way. So the cost of a pass follows the
// differences, not the data set.
//
// Segments that ring points divide between replica sets, and segments this
// node holds records of but does not own (a migration, a shrink), are
// reconciled key by key with every replica of each key; a record this node
// does not own is dropped once every current replica holds it or newer.
//
// A pass runs every background_healing_interval, and at once when poked: a
// configuration change, a peer that comes back (hinted hand-off replayed to
// it), an operator's request. Its rate is bounded: it reconciles
// healConcurrency segments at a time, each worker pausing minPace after
// every chunkRecords records listed or moved, so foreground requests keep
// the node.

// healer runs anti-entropy for one node.
type healer struct {
	store   *kv.Store
	cluster *Cluster
	log     *slog.Logger
	// chunk bounds one push (BatchSet): records and bytes of values; it is
	// also the unit of work between pauses.
	chunkRecords int
	chunkBytes   int
	minPace      time.Duration
	// wake starts a pass at once.
	wake chan struct{}
	// exchanged counts the bytes of sums, listings and pushes a pass moved
	// (as encoded on the wire), over the healer's life.
	exchanged atomic.Int64
	pushed    atomic.Int64 // records pushed over the healer's life
	last      atomic.Pointer[nodestatus.Pass]
}

// healChunkBytes bounds the values of one healing push, so of one BatchSet.
const healChunkBytes = 4 << 20

func newHealer(store *kv.Store, c *Cluster, log *slog.Logger) *healer {
	return &healer{store: store, cluster: c, log: log, chunkRecords: 256, chunkBytes: healChunkBytes,
		minPace: 10 * time.Millisecond, wake: make(chan struct{}, 1)}
}

// poke asks for a pass now.
func (h *healer) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// sleep waits d, or less when wake (nil: never) delivers; ok is false when
// ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) (ok bool) {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
		return true
	case <-t.C:
		return true
	}
}

// run heals until ctx ends: a pass every interval while the active
// deployment enables background healing, and one at once when poked. The
// first pass waits a short while after start-up, so a restart storm does
// not become a healing storm.
func (h *healer) run(ctx context.Context) {
	wait := min(h.cluster.Config().ActiveDeployment().HealingInterval/10, 3*time.Second)
	for {
		if !sleep(ctx, wait, h.wake) {
			return
		}
		d := h.cluster.Config().ActiveDeployment()
		wait = d.HealingInterval
		if !d.BackgroundHealing {
			wait = time.Second
			continue
		}
		rep := h.runPass(ctx)
		if ctx.Err() != nil {
			return
		}
		h.log.Info("healing pass done", "in_sync", rep.InSync, "pushed", rep.Pushed, "pulled", rep.Pulled, "dropped", rep.Dropped, "purged", rep.Purged,
			"unconfirmed", rep.Unconfirmed, "not_owned", rep.NotOwned, "exchanged_bytes", rep.Exchanged,
			"took", rep.Ended.Sub(rep.Began).Round(time.Millisecond).String(), "err", rep.Err)
	}
}

// runPass runs one pass and publishes its report.
func (h *healer) runPass(ctx context.Context) *nodestatus.Pass {
	rep := &nodestatus.Pass{ConfigVersion: h.cluster.Config().Version, Began: time.Now()}
	before := h.exchanged.Load()
	st, err := h.pass(ctx)
	rep.Ended = time.Now()
	rep.Unconfirmed, rep.NotOwned, rep.Pushed, rep.Pulled, rep.Dropped, rep.Purged = st.unconfirmed, st.notOwned, st.pushed, st.pulled, st.dropped, st.purged
	rep.Exchanged = h.exchanged.Load() - before
	rep.InSync = err == nil && st.unconfirmed == 0
	if err != nil {
		rep.Err = err.Error()
	}
	h.pushed.Add(int64(st.pushed))
	h.last.Store(rep)
	return rep
}

// lastPass returns the report of the last finished pass, or nil.
func (h *healer) lastPass() *nodestatus.Pass { return h.last.Load() }

// healStats counts one pass: segments reconciled, local records listed in
// them, records pushed to peers, pulled from them and dropped here, records not confirmed on
// every replica, records held but not owned, and tombstones purged.
type healStats struct{ segments, records, pushed, pulled, dropped, unconfirmed, notOwned, purged int }

// pass compares this node's segments with every peer's, reconciles the
// ones that differ, then collects the tombstones past their grace.
func (h *healer) pass(ctx context.Context) (healStats, error) {
	t := h.cluster.topo.Load()
	st, err := h.sync(ctx, t)
	if ctx.Err() != nil {
		return st, err
	}
	purged, gcErr := h.collect(ctx, t, t.cfg.ActiveDeployment().TombstoneGrace)
	st.purged = purged
	if gcErr != nil {
		err = errors.Join(err, fmt.Errorf("tombstone gc: %w", gcErr))
	}
	return st, err
}

// sync reconciles the segments that differ between this node and its peers.
func (h *healer) sync(ctx context.Context, t *topology) (healStats, error) {
	var st healStats
	plan := t.segmentPlan()
	var errs error
	todo := map[int][]int{} // segment -> peers to reconcile it with (nil: every node of the segment, key by key)
	for seg := range kv.NumSegments {
		nodes, divided := plan.nodes(seg)
		mine := slices.Contains(nodes, t.self)
		if divided && mine || !mine && h.store.SegmentSum(seg).Count > 0 {
			todo[seg] = nil // divided, or not ours: key by key
		}
	}
	for peer := range t.nodes {
		if peer == t.self {
			continue
		}
		diff, err := h.compare(ctx, t, plan, peer)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("compare with %s: %w", t.nodes[peer].ID, err))
			continue
		}
		for _, seg := range diff {
			if peers, ok := todo[seg]; !ok || peers != nil {
				todo[seg] = append(peers, peer)
			}
		}
	}
	segs := make([]int, 0, len(todo))
	for seg := range todo {
		segs = append(segs, seg)
	}
	slices.Sort(segs)
	errs = errors.Join(errs, h.reconcileAll(ctx, t, spans(segs, todo), &st))
	return st, errs
}

// spanSegments bounds a span: its records are listed and pushed together.
const spanSegments = 32

// spans groups segs (sorted) into runs of consecutive segments with the
// same peers, at most spanSegments long.
func spans(segs []int, todo map[int][]int) []span {
	var out []span
	for _, seg := range segs {
		if k := len(out) - 1; k >= 0 && len(out[k].segs) < spanSegments &&
			out[k].segs[len(out[k].segs)-1] == seg-1 && slices.Equal(out[k].peers, todo[seg]) &&
			(out[k].peers == nil) == (todo[seg] == nil) {
			out[k].segs = append(out[k].segs, seg)
			continue
		}
		out = append(out, span{segs: []int{seg}, peers: todo[seg]})
	}
	return out
}

// span is consecutive segments reconciled with the same peers (nil: every
// node of the segments, key by key).
type span struct {
	segs  []int
	peers []int
}

// healConcurrency is how many segments a pass reconciles at once: each
// reconciliation is a few round trips and a synced push, so one at a time
// would leave a migration's copy waiting on latency, not bandwidth.
const healConcurrency = 8

// reconcileAll reconciles the spans, healConcurrency at a time, adding to
// st. Each worker pauses minPace after every chunkRecords records of work,
// which bounds the pass's rate.
func (h *healer) reconcileAll(ctx context.Context, t *topology, todo []span, st *healStats) error {
	var mu sync.Mutex
	var errs []error
	next := make(chan span)
	var wg sync.WaitGroup
	for range min(healConcurrency, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work := 0
			for sp := range next {
				rs, err := h.reconcile(ctx, t, sp.segs, sp.peers)
				mu.Lock()
				st.add(rs, len(sp.segs))
				if err != nil && ctx.Err() == nil {
					errs = append(errs, fmt.Errorf("segments %d..%d: %w", sp.segs[0], sp.segs[len(sp.segs)-1], err))
				}
				mu.Unlock()
				if work += rs.records + rs.pushed + rs.pulled; work >= h.chunkRecords {
					work = 0
					sleep(ctx, h.minPace, nil)
				}
			}
		}()
	}
	for _, sp := range todo {
		select {
		case next <- sp:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return joinErrs(errs)
}

// add folds the reconciliation of n segments into st.
func (st *healStats) add(rs reconcileStats, n int) {
	st.segments += n
	st.records += rs.records
	st.pushed += rs.pushed
	st.pulled += rs.pulled
	st.dropped += rs.dropped
	st.unconfirmed += rs.unconfirmed
	st.notOwned += rs.notOwned
}

// compare returns the segments whose sums differ between this node and peer,
// among the undivided ones both replicate.
func (h *healer) compare(ctx context.Context, t *topology, plan *segmentPlan, peer int) ([]int, error) {
	var shared []codec.SegmentRange
	for seg := range kv.NumSegments {
		nodes, divided := plan.nodes(seg)
		if divided || !slices.Contains(nodes, t.self) || !slices.Contains(nodes, peer) {
			continue
		}
		if k := len(shared) - 1; k >= 0 && int(shared[k].Hi) == seg-1 {
			shared[k].Hi = uint16(seg)
		} else {
			shared = append(shared, codec.SegmentRange{Lo: uint16(seg), Hi: uint16(seg)})
		}
	}
	if len(shared) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.cluster.timeout)
	defer cancel()
	r := t.replicas[peer]
	// Descend a tree of 16, then 16, then 256... groups: sums of groups of
	// 256 segments, then of 16 within the groups that differ, then single
	// segments within the 16s that differ.
	var diff []int
	for i, shift := range sumShifts {
		theirs, err := r.Sums(ctx, shift, shared)
		if err != nil {
			return nil, err
		}
		h.exchanged.Add(int64(len(shared)*4 + len(theirs)*18))
		diff = differing(theirs, segmentSums(h.store, shift, shared))
		if len(diff) == 0 || i == len(sumShifts)-1 {
			break
		}
		var deeper []codec.SegmentRange
		for _, g := range diff {
			deeper = appendClipped(deeper, shared, g<<shift, (g+1)<<shift-1)
		}
		shared = deeper
	}
	return diff, nil
}

// sumShifts are the levels of the comparison tree: the segment bits each
// level's groups leave out.
var sumShifts = []uint8{8, 4, 0}

// differing returns the groups whose sums differ between a and b (both in
// group order; a group missing on one side differs).
func differing(a, b []codec.Sum) []int {
	var out []int
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].Group < b[j].Group:
			out = append(out, int(a[i].Group))
			i++
		case i == len(a) || b[j].Group < a[i].Group:
			out = append(out, int(b[j].Group))
			j++
		default:
			if a[i] != b[j] {
				out = append(out, int(a[i].Group))
			}
			i, j = i+1, j+1
		}
	}
	return out
}

// appendClipped appends the parts of ranges within lo..hi.
func appendClipped(dst, ranges []codec.SegmentRange, lo, hi int) []codec.SegmentRange {
	for _, r := range ranges {
		a, b := max(int(r.Lo), lo), min(int(r.Hi), hi)
		if a <= b {
			dst = append(dst, codec.SegmentRange{Lo: uint16(a), Hi: uint16(b)})
		}
	}
	return dst
}

// segmentSums sums the segments of store in ranges, grouped by segment >>
// shift, in group order; groups holding no requested segment are left out.
// It answers Sums for the local store and for the peer protocol alike.
func segmentSums(store *kv.Store, shift uint8, ranges []codec.SegmentRange) []codec.Sum {
	var out []codec.Sum
	for _, r := range ranges {
		for seg := int(r.Lo); seg <= int(r.Hi); seg++ {
			g := uint16(seg >> shift)
			if k := len(out) - 1; k < 0 || out[k].Group != g {
				out = append(out, codec.Sum{Group: g})
			}
			s := store.SegmentSum(seg)
			out[len(out)-1].Count += uint64(s.Count)
			out[len(out)-1].XOR ^= s.XOR
		}
	}
	return out
}
