package server

import (
	"context"
	"errors"
	"sync"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/kv"
)

// localReplica is this node's own store as a Replica.
type localReplica struct{ store *kv.Store }

var _ Replica = localReplica{}

func (l localReplica) Get(_ context.Context, key, dst []byte) (kv.Record, error) {
	return l.store.Get(key, dst)
}

func (l localReplica) Stat(_ context.Context, key []byte) (kv.Meta, error) {
	return l.store.Stat(key)
}

func (l localReplica) Apply(_ context.Context, key []byte, rec kv.Record) (kv.Result, error) {
	return l.store.Apply(key, rec)
}

// Ping implements Replica: this node's own store always answers.
func (l localReplica) Ping(context.Context) error { return nil }

// ApplyBatch implements Replica for this node's store.
// The records go through the async queue together, so they share group
// commits as a BatchSet over the peer protocol does.
func (l localReplica) ApplyBatch(_ context.Context, recs []codec.Record) ([]kv.Result, error) {
	out := make([]kv.Result, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		l.store.ApplyAsync(r.Key, recordOf(r.TS, r.Flags, r.Value), func(res kv.Result, err error) {
			out[i], errs[i] = res, err
			wg.Done()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Sums implements Replica.
func (l localReplica) Sums(_ context.Context, shift uint8, ranges []codec.SegmentRange) ([]codec.Sum, error) {
	return segmentSums(l.store, shift, ranges), nil
}

// SegmentRecords implements Replica.
func (l localReplica) SegmentRecords(_ context.Context, seg int, fn func([]byte, kv.Meta, uint64)) error {
	return l.store.ScanSegment(seg, nil, func(key []byte, m kv.Meta, h uint64) error {
		fn(key, m, h)
		return nil
	})
}

// Keys implements Replica.
func (l localReplica) Keys(_ context.Context, start, end []byte, limit int) ([]codec.Record, []byte, error) {
	return scanRecords(l.store, start, end, clampLimit(limit), 0, codec.ScanKeys)
}

// clampLimit is limit as a peer scan's record limit: 0 (the peer's
// maximum) when out of range.
func clampLimit(limit int) uint32 {
	if limit <= 0 || limit > scanMaxCount {
		return 0
	}
	return uint32(limit)
}

// Purge implements Replica.
func (l localReplica) Purge(_ context.Context, recs []codec.Record) (int, error) {
	return purge(l.store, recs, nil)
}

// purge drops each of recs that store still holds exactly so; results, when
// set, gets one result per record (Applied: removed). It answers Purge for
// the local store and for the peer protocol alike.
func purge(store *kv.Store, recs []codec.Record, results []codec.Result) (int, error) {
	n := 0
	for i, r := range recs {
		dropped, err := store.Drop(r.Key, recordOf(r.TS, r.Flags, r.Value))
		if err != nil {
			return n, err
		}
		if results != nil {
			results[i] = codec.Result{Status: codec.StatusStale, TS: r.TS}
			if dropped {
				results[i].Status = codec.StatusApplied
			}
		}
		if dropped {
			n++
		}
	}
	return n, nil
}
