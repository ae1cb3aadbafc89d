package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/kv"
)

// Background healing. Each node walks its own records in key order, a chunk
// at a time, spread over the deployment's background_healing_interval. For
// every chunk it asks each other replica of those keys for its metadata over
// the chunk's key range (one Scan without values), pushes the records the
// replica lacks or holds older (BatchSet; last-write-wins makes a push
// idempotent), and drops its own copy of a key it no longer owns once every
// current replica holds that record or a newer one. So replicas that missed
// writes converge, a restarted node is caught up by its peers, and during a
// migration the new owners receive every key before the old ones let go.

// healer runs background healing for one node.
type healer struct {
	store   *kv.Store
	cluster *Cluster
	log     *slog.Logger
	// chunk bounds one step: records and bytes of values.
	chunkRecords int
	chunkBytes   int
	// minPace is the least pause after each chunk, whatever the interval:
	// it bounds the rate of a pass that must hurry (a configuration change,
	// a peer back) so that foreground requests keep the node.
	minPace time.Duration
	// wake starts a pass at once, and lets the one running hurry.
	wake chan struct{}
}

// healChunkBytes bounds the values of one healing step, so of one BatchSet.
const healChunkBytes = 4 << 20

func newHealer(store *kv.Store, c *Cluster, log *slog.Logger) *healer {
	return &healer{store: store, cluster: c, log: log, chunkRecords: 256, chunkBytes: healChunkBytes,
		minPace: 10 * time.Millisecond, wake: make(chan struct{}, 1)}
}

// poke asks for an exchange now: the configuration changed, a peer came
// back, or an operator asked.
func (h *healer) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// sleep waits d, or less when poked; it reports whether it was poked, and
// ok false when ctx ended.
func (h *healer) sleep(ctx context.Context, d time.Duration) (poked, ok bool) {
	if d <= 0 {
		return false, ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-h.wake:
		return true, true
	case <-t.C:
		return false, true
	}
}

// run heals until ctx ends, one pass per interval while the active
// deployment enables background healing, and one at once when poked.
func (h *healer) run(ctx context.Context) {
	urgent := false
	for {
		d := h.cluster.Config().ActiveDeployment()
		if !d.BackgroundHealing {
			if _, ok := h.sleep(ctx, time.Second); !ok {
				return
			}
			continue
		}
		// Start a pass no sooner than a short while after start-up or the
		// previous pass, so a restart storm does not become a healing storm.
		if !urgent {
			poked, ok := h.sleep(ctx, min(d.HealingInterval/10, 10*time.Second))
			if !ok {
				return
			}
			urgent = poked
		}
		began := time.Now()
		st, err := h.pass(ctx, d.HealingInterval, urgent)
		if ctx.Err() != nil {
			return
		}
		h.log.Info("healing pass done", "records", st.records, "pushed", st.pushed, "dropped", st.dropped,
			"urgent", urgent, "took", time.Since(began).Round(time.Millisecond).String(), "err", err)
		urgent = st.poked
	}
}

type healStats struct {
	records, pushed, dropped int
	poked                    bool // a poke arrived during the pass: run another at once
}

// pass walks every local record once, spread over interval: each chunk is
// followed by a pause of interval times the chunk's share of the store's
// bytes (estimated at the start of the pass), so a pass takes about the
// interval whatever an earlier one counted. An urgent pass, and the rest of
// one that is poked, pause only minPace.
func (h *healer) pass(ctx context.Context, interval time.Duration, urgent bool) (healStats, error) {
	var st healStats
	var start []byte
	total := h.store.EstimateBytes(nil, nil)
	for {
		chunk, next, err := h.readChunk(start)
		if err != nil || len(chunk) == 0 {
			return st, err
		}
		began := time.Now()
		pushed, dropped, err := h.healChunk(ctx, chunk)
		st.records += len(chunk)
		st.pushed += pushed
		st.dropped += dropped
		if err != nil && ctx.Err() != nil {
			return st, err
		}
		if err != nil {
			h.log.Warn("healing chunk", "err", err)
		}
		if next == nil {
			return st, nil
		}
		pace := h.minPace
		if !urgent && total > 0 {
			share := float64(h.store.EstimateBytes(start, next)) / float64(total)
			pace = max(pace, time.Duration(float64(interval)*share))
		}
		start = next
		poked, ok := h.sleep(ctx, pace-time.Since(began))
		if !ok {
			return st, ctx.Err()
		}
		if poked {
			urgent, st.poked = true, true
		}
	}
}

// readChunk copies up to a chunk of local records from start on; next is
// where the following chunk starts, nil at the end.
func (h *healer) readChunk(start []byte) (chunk []codec.Record, next []byte, err error) {
	size := 0
	errFull := errors.New("chunk full")
	err = h.store.Scan(start, nil, func(key []byte, rec kv.Record) error {
		// A record that would take the chunk past its limit starts the next
		// one; a record larger than the limit goes alone (a frame holds it).
		if len(chunk) > 0 && (len(chunk) >= h.chunkRecords || size+len(key)+len(rec.Value) > h.chunkBytes) {
			next = append([]byte(nil), key...)
			return errFull
		}
		chunk = append(chunk, codec.Record{Key: append([]byte(nil), key...), TS: rec.TS,
			Flags: flagsOf(rec.Tombstone), Value: append([]byte(nil), rec.Value...)})
		size += len(key) + len(rec.Value)
		return nil
	})
	if errors.Is(err, errFull) {
		err = nil
	}
	return chunk, next, err
}

// healChunk brings every other replica of chunk's keys up to date and drops
// the keys this node does not own once their owners have them.
func (h *healer) healChunk(ctx context.Context, chunk []codec.Record) (pushed, dropped int, err error) {
	t := h.cluster.topo.Load()
	var rt route
	byNode := map[int][]int{}       // replica node -> chunk indexes it should hold
	need := make([]int, len(chunk)) // replicas other than this node, per record
	owned := make([]bool, len(chunk))
	for i, r := range chunk {
		t.fill(&rt, r.Key)
		for _, n := range rt.reps {
			if n == t.self {
				owned[i] = true
				continue
			}
			byNode[n] = append(byNode[n], i)
			need[i]++
		}
	}
	have := make([]int, len(chunk)) // replicas confirmed to hold the record or newer
	for n, idx := range byNode {
		p, e := h.healReplica(ctx, t.replicas[n], chunk, idx, have)
		pushed += p
		if e != nil {
			err = errors.Join(err, e)
		}
	}
	for i, r := range chunk {
		if owned[i] || need[i] == 0 || have[i] < need[i] {
			continue
		}
		ok, e := h.store.Drop(r.Key, recordOf(r.TS, r.Flags, r.Value))
		if e != nil {
			return pushed, dropped, errors.Join(err, e)
		}
		if ok {
			dropped++
		}
	}
	return pushed, dropped, err
}

// healReplica compares the records chunk[idx] with what rr holds, pushes the
// missing and older ones, and counts in have the records rr now holds.
func (h *healer) healReplica(ctx context.Context, rr Replica, chunk []codec.Record, idx []int, have []int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cluster.timeout)
	defer cancel()
	type version struct {
		meta kv.Meta
		hash uint64
	}
	theirs := make(map[string]version)
	first, last := chunk[idx[0]].Key, chunk[idx[len(idx)-1]].Key
	err := rr.Metas(ctx, first, last, func(key []byte, m kv.Meta, hash uint64) { theirs[string(key)] = version{m, hash} })
	if err != nil {
		return 0, err
	}
	var push []codec.Record
	var pushIdx []int
	for _, i := range idx {
		r := chunk[i]
		v, ok := theirs[string(r.Key)]
		mine := kv.Meta{TS: r.TS, Tombstone: r.Flags&codec.Tombstone != 0}
		// Theirs is current when newer, or the same record. Records that tie
		// on timestamp and kind but differ in value are pushed: the
		// replica's last-write-wins tie-break keeps the greater, and its own
		// healer pushes the other way, so both converge.
		if ok && (newerMeta(v.meta, mine) || v.meta == mine && v.hash == valueHash(r.Value)) {
			have[i]++
			continue
		}
		push = append(push, r)
		pushIdx = append(pushIdx, i)
	}
	if len(push) == 0 {
		return 0, nil
	}
	res, err := rr.ApplyBatch(ctx, push)
	if err != nil {
		return 0, err
	}
	if len(res) != len(push) {
		return 0, fmt.Errorf("heal: %d results for %d records pushed", len(res), len(push))
	}
	for k := range res {
		have[pushIdx[k]]++ // applied, or stale: a newer record is there
	}
	return len(push), nil
}
