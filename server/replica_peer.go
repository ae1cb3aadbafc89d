package server

import (
	"context"
	"encoding/binary"
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
	if m.Status == codec.StatusNotFound {
		return kv.Meta{}, kv.ErrNotFound
	}
	return kv.Meta{TS: m.TS, Tombstone: m.Flags&codec.Tombstone != 0}, nil
}

func (p peerReplica) Apply(ctx context.Context, key []byte, rec kv.Record) (kv.Result, error) {
	m, err := p.c.Set(ctx, key, rec.TS, flagsOf(rec.Tombstone), rec.Value)
	if err != nil {
		return kv.Result{}, err
	}
	return kv.Result{TS: m.TS, Applied: m.Status == codec.StatusApplied}, nil
}

// Metas implements Replica over the peer protocol, scanning with value
// hashes instead of values.
func (p peerReplica) Metas(ctx context.Context, first, last []byte, fn func([]byte, kv.Meta, uint64)) error {
	start, end := first, append(append([]byte(nil), last...), 0)
	for {
		resp, err := p.c.Scan(ctx, start, end, 0, 0, codec.ScanHashes)
		if err != nil {
			return err
		}
		it := resp.Records
		for r, ok := it.Next(); ok; r, ok = it.Next() {
			if len(r.Value) != 8 {
				resp.Release()
				return fmt.Errorf("heal: scan of %s: %d-byte value hash", p.c.Addr(), len(r.Value))
			}
			fn(r.Key, kv.Meta{TS: r.TS, Tombstone: r.Flags&codec.Tombstone != 0}, binary.BigEndian.Uint64(r.Value))
		}
		more, next := resp.More, append([]byte(nil), resp.Next...)
		resp.Release()
		if !more {
			return nil
		}
		start = next
	}
}

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
