package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/kv"
)

// peerReplica is a remote node as a Replica, over its peer client.
type peerReplica struct{ c *eventloop.Client }

var _ Replica = peerReplica{}

func (p peerReplica) Get(ctx context.Context, key, dst []byte) (kv.Record, error) {
	resp, err := p.c.Get(ctx, key)
	return getReply(resp, err, dst)
}

// getReply is a Get's record from its reply, the value appended to dst[:0];
// it releases resp.
func getReply(resp *eventloop.Response, err error, dst []byte) (kv.Record, error) {
	if err != nil {
		return kv.Record{}, err
	}
	defer resp.Release()
	if resp.Status == codec.StatusNotFound {
		return kv.Record{}, kv.ErrNotFound
	}
	return recordOf(resp.TS, resp.Flags, append(dst[:0], resp.Value...)), nil
}

func (p peerReplica) Stat(ctx context.Context, key []byte) (kv.Meta, error) {
	m, err := p.c.Stat(ctx, key)
	if err != nil {
		return kv.Meta{}, err
	}
	return statReply(m.Status, m.TS, m.Flags)
}

func statReply(status codec.Status, ts int64, flags uint8) (kv.Meta, error) {
	if status == codec.StatusNotFound {
		return kv.Meta{}, kv.ErrNotFound
	}
	return kv.Meta{TS: ts, Tombstone: flags&codec.Tombstone != 0}, nil
}

func (p peerReplica) Apply(ctx context.Context, key []byte, rec kv.Record) (kv.Result, error) {
	m, err := p.c.Set(ctx, key, rec.TS, flagsOf(rec.Tombstone), rec.Value)
	if err != nil {
		return kv.Result{}, err
	}
	return setReply(m.Status, m.TS), nil
}

// diskFull reports whether a replica refused a write for want of space: a
// local store's ErrDiskFull, or a peer's StatusDiskFull.
func diskFull(err error) bool {
	var se *eventloop.StatusError
	return errors.Is(err, kv.ErrDiskFull) || errors.As(err, &se) && se.Status == codec.StatusDiskFull
}

func setReply(status codec.Status, ts int64) kv.Result {
	return kv.Result{TS: ts, Applied: status == codec.StatusApplied}
}

// start sends t's call without a goroutine waiting for it: t.Done runs when
// the reply comes. False: nothing was sent (no connection is up, or the
// value is too large to be copied into the frame), run t on a worker.
func (p peerReplica) start(t *task) bool {
	switch t.op {
	case taskGet:
		return p.c.StartGet(t.key, t)
	case taskStat:
		return p.c.StartStat(t.key, t)
	case taskApply:
		return p.c.StartSet(t.key, t.rec.TS, flagsOf(t.rec.Tombstone), t.rec.Value, t)
	}
	return false
}

// Ping implements Replica: a round trip on the peer's connection (dialled
// if need be; failing at once while the client backs off from a dead peer).
func (p peerReplica) Ping(ctx context.Context) error { return p.c.Ping(ctx) }

// ApplyBatch implements Replica over the peer protocol.
func (p peerReplica) ApplyBatch(ctx context.Context, recs []codec.Record) ([]kv.Result, error) {
	resp, err := p.c.BatchSet(ctx, recs)
	if err != nil {
		return nil, err
	}
	defer resp.Release()
	out := make([]kv.Result, resp.Results.Len())
	for i := range out {
		r := resp.Results.At(i)
		out[i] = kv.Result{TS: r.TS, Applied: r.Status == codec.StatusApplied}
	}
	return out, nil
}

// Sums implements Replica over the peer protocol.
func (p peerReplica) Sums(ctx context.Context, shift uint8, ranges []codec.SegmentRange) ([]codec.Sum, error) {
	resp, err := p.c.Do(ctx, func(dst []byte, id uint64) []byte { return codec.AppendSums(dst, id, shift, ranges) })
	if err != nil {
		return nil, err
	}
	defer resp.Release()
	out := make([]codec.Sum, resp.Sums.Len())
	for i := range out {
		out[i] = resp.Sums.At(i)
	}
	return out, nil
}

// SegmentRecords implements Replica over the peer protocol, a page at a
// time.
func (p peerReplica) SegmentRecords(ctx context.Context, seg int, fn func([]byte, kv.Meta, uint64)) error {
	var after []byte
	for {
		resp, err := p.c.Do(ctx, func(dst []byte, id uint64) []byte {
			return codec.AppendSegmentScan(dst, id, uint16(seg), after, 0)
		})
		if err != nil {
			return err
		}
		it := resp.Records
		for r, ok := it.Next(); ok; r, ok = it.Next() {
			if len(r.Value) != 8 {
				resp.Release()
				return fmt.Errorf("segment scan of %s: %d-byte record hash", p.c.Addr(), len(r.Value))
			}
			fn(r.Key, kv.Meta{TS: r.TS, Tombstone: r.Flags&codec.Tombstone != 0}, binary.BigEndian.Uint64(r.Value))
		}
		more, next := resp.More, append(after[:0:0], resp.Next...)
		resp.Release()
		if !more {
			return nil
		}
		after = next
	}
}

// Keys implements Replica over the peer protocol: one Scan of keys only.
func (p peerReplica) Keys(ctx context.Context, start, end []byte, limit int) ([]codec.Record, []byte, error) {
	resp, err := p.c.Scan(ctx, start, end, clampLimit(limit), 0, codec.ScanKeys)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Release()
	recs := make([]codec.Record, 0, resp.Records.Len())
	it := resp.Records
	for r, ok := it.Next(); ok; r, ok = it.Next() {
		recs = append(recs, codec.Record{Key: bytes.Clone(r.Key), TS: r.TS, Flags: r.Flags})
	}
	var next []byte
	if resp.More {
		next = append([]byte{}, resp.Next...)
	}
	return recs, next, nil
}

// Purge implements Replica over the peer protocol.
func (p peerReplica) Purge(ctx context.Context, recs []codec.Record) (int, error) {
	resp, err := p.c.Do(ctx, func(dst []byte, id uint64) []byte { return codec.AppendPurge(dst, id, recs) })
	if err != nil {
		return 0, err
	}
	defer resp.Release()
	n := 0
	for i := range resp.Results.Len() {
		if resp.Results.At(i).Status == codec.StatusApplied {
			n++
		}
	}
	return n, nil
}
