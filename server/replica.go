package server

import (
	"context"

	"github.com/tako-kv/tako/kv"
)

// Replica is one node a request can be sent to: this node's own store or a
// peer over the binary protocol. kv.ErrNotFound means the replica answered
// that it has nothing for the key; any other error means it did not answer.
// Implementations are safe for concurrent use.
type Replica interface {
	// Get returns the replica's record, value appended to dst[:0].
	Get(ctx context.Context, key, dst []byte) (kv.Record, error)
	Stat(ctx context.Context, key []byte) (kv.Meta, error)
	// Apply writes rec durably under last-write-wins.
	Apply(ctx context.Context, key []byte, rec kv.Record) (kv.Result, error)
}

// localReplica is this node's own store as a Replica.
type localReplica struct{ store *kv.Store }

func (l localReplica) Get(_ context.Context, key, dst []byte) (kv.Record, error) {
	return l.store.Get(key, dst)
}

func (l localReplica) Stat(_ context.Context, key []byte) (kv.Meta, error) {
	return l.store.Stat(key)
}

func (l localReplica) Apply(_ context.Context, key []byte, rec kv.Record) (kv.Result, error) {
	return l.store.Apply(key, rec)
}
