// Package hints is hinted hand-off: the writes a replica could not take,
// kept by the process that coordinated them (a node or a proxy) and
// replayed once that replica answers again, as Dynamo, Riak and Cassandra
// do. A mirror that was down catches up within seconds of its return
// instead of waiting for the next anti-entropy pass.
//
// # Storage
//
// Hints live in a Pebble database of their own under the process's var
// directory, so they survive a restart of the process. A hint is written
// without an fsync: it is a second copy of a write that other replicas
// acknowledged durably, and anti-entropy repairs what a power loss takes.
// The key is the target node's id, a zero byte and a big-endian sequence
// number, so one target's hints replay in the order they were taken:
//
//	key    target id | 0x00 | seq uint64
//	value  added int64 (µs, when the hint was taken) | ts int64 | flags uint8 | keylen uint32 | key | value
//
// # Bounds
//
// The hints of all targets together are bounded in bytes (Options.MaxBytes)
// and each hint in age (Options.MaxAge): a hint that would exceed the first
// is not taken, one older than the second is dropped at replay, and both
// are counted (Stats.Dropped). A hint never counts toward write_acks: it is
// taken only after the write was answered without that replica.
//
// # Concurrency
//
// A Store is safe for concurrent use. Add never blocks on the network;
// Replay of one target runs at a time per target (the caller's loop).
package hints
