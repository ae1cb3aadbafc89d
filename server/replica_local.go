package server

import (
	"context"

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

// Metas implements Replica for this node's store.
func (l localReplica) Metas(_ context.Context, first, last []byte, fn func([]byte, kv.Meta, uint64)) error {
	return l.store.Scan(first, append(append([]byte(nil), last...), 0), func(key []byte, rec kv.Record) error {
		fn(key, rec.Meta(), valueHash(rec.Value))
		return nil
	})
}

// ApplyBatch implements Replica for this node's store.
func (l localReplica) ApplyBatch(_ context.Context, recs []codec.Record) ([]kv.Result, error) {
	out := make([]kv.Result, len(recs))
	for i, r := range recs {
		res, err := l.store.Apply(r.Key, recordOf(r.TS, r.Flags, r.Value))
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}
