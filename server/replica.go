package server

import (
	"context"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/kv"
)

// Replica is one node a request can be sent to: this node's own store
// (localReplica, replica_local.go) or a peer over the binary protocol
// (peerReplica, replica_peer.go). kv.ErrNotFound means the replica answered
// that it has nothing for the key; any other error means it did not answer.
// Implementations are safe for concurrent use; replica_test.go runs one
// conformance test against each.
type Replica interface {
	// Get returns the replica's record, value appended to dst[:0].
	Get(ctx context.Context, key, dst []byte) (kv.Record, error)
	Stat(ctx context.Context, key []byte) (kv.Meta, error)
	// Apply writes rec durably under last-write-wins.
	Apply(ctx context.Context, key []byte, rec kv.Record) (kv.Result, error)
	// ApplyBatch writes recs under last-write-wins, one result per record
	// (anti-entropy and hinted hand-off).
	ApplyBatch(ctx context.Context, recs []codec.Record) ([]kv.Result, error)
	// Sums returns the replica's sums of the segments in ranges, grouped by
	// segment >> shift, in group order (see segmentSums).
	Sums(ctx context.Context, shift uint8, ranges []codec.SegmentRange) ([]codec.Sum, error)
	// SegmentRecords calls fn for each record of segment seg, in key order,
	// with its kv.RecordHash; key is valid only during fn.
	SegmentRecords(ctx context.Context, seg int, fn func(key []byte, m kv.Meta, hash uint64)) error
	// Keys returns the replica's records with start <= key < end (end
	// empty: no upper bound) in key order, without values: at most limit of
	// them (0, or more than a peer reply holds: as many as one holds), and
	// next, where the following page starts, nil when the range is done
	// (key listing).
	Keys(ctx context.Context, start, end []byte, limit int) (recs []codec.Record, next []byte, err error)
	// Ping reports whether the replica answers now (readiness).
	Ping(ctx context.Context) error
	// Purge removes each of recs that is still stored exactly so (tombstone
	// GC) and returns how many it removed.
	Purge(ctx context.Context, recs []codec.Record) (int, error)
}
