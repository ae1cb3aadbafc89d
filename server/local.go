package server

import (
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
)

// LocalBackend serves the HTTP API from this node's store alone, for a
// deployment where the node is the only replica of every key.
type LocalBackend struct{ Store *kv.Store }

func (b LocalBackend) Get(key, dst []byte) (kv.Record, error) { return b.Store.Get(key, dst) }
func (b LocalBackend) Stat(key []byte) (kv.Meta, error)       { return b.Store.Stat(key) }

// Apply writes to the local store; with one replica every ack level is met
// by the local durable commit.
func (b LocalBackend) Apply(key []byte, rec kv.Record, _ httpproxy.Acks) (kv.Result, error) {
	return b.Store.Apply(key, rec)
}
