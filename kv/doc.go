// Package kv is a node's embedded store: Pebble (v2) holding last-write-wins
// records, with a group-commit write path.
//
// # Records
//
// Every key maps to one Record (package lww): a timestamp (microseconds
// since the Unix epoch) and either a value or a tombstone. Pebble's key space
// is split by a one-byte prefix: 'd' user records, 'x' the anti-entropy
// index (one entry per record; see segments.go), 'm' node metadata (the
// index marker, the last time the node was alive). The Pebble value of a
// record is a header followed by the payload:
//
//	offset 0   flags   uint8   bit0 tombstone, bit1 payload is s2-compressed,
//	                            bit2 the header holds the value hash,
//	                            bits 3..7 zero (reserved; a reader refuses others)
//	offset 1   ts      int64   big-endian two's complement, microseconds
//	offset 9   vhash   uint64  with bit2: ValueHash of the uncompressed value
//	offset 9/17 payload        the value, possibly s2-compressed; empty for a tombstone
//
// Records written before bit2 existed (9-byte header) are read as they are.
//
// # Invariants
//
//   - Last write wins: a record replaces the stored one only when it is Newer
//     (higher timestamp; on equal timestamps a tombstone beats a value and a
//     value with greater bytes beats a smaller one). Every replica applies the
//     same rule, so replicas converge whatever order writes arrive in.
//   - A write is acknowledged only after the batch holding it is committed
//     with the configured sync policy (SyncAlways: fsync'd in the WAL) — and
//     a write that changes nothing (older, or identical) only once the
//     stored record its answer rests on is durable.
//   - Writes are refused (ErrDiskFull) while the file system has less free
//     space than Options.MinFreeBytes — values, and tombstones of keys that
//     hold no value (nothing, or a tombstone already), which would only add
//     bytes. A tombstone over a stored value passes, and so do drops: they
//     free space once compacted, so an operator can free space by deleting
//     keys that exist. (Without this, a flood of DELETEs of new keys filled
//     the disk to 100%, where Pebble can write nothing at all.)
//   - A record and its index entry change in the same batch; the in-memory
//     segment sums change once that batch is applied, under the key's
//     stripe lock, and are rebuilt from the index when the store opens.
//   - The LWW decision and the write of a key happen under the key's stripe
//     lock, so two concurrent writes of one key cannot both be acknowledged
//     as current when only one is.
//
// # Concurrency
//
// A Store is safe for concurrent use. Reads (Get, Stat, Scan) go straight to
// Pebble from the caller's goroutine. A write (Apply, Drop) runs in the
// caller's goroutine too: it compresses, then under the lock of its key's
// stripe reads the stored record, decides, and applies a one-write batch
// without waiting for the WAL sync; it then waits for the sync outside the
// lock. Pebble's commit pipeline coalesces the syncs of all batches applied
// while one sync runs into the next (group commit), so N concurrent writers
// pay about one fsync per round, not N. ApplyAsync, for callers that must not
// block, copies the write to a queue; an async writer takes whatever has
// queued up (writes of distinct stripes, locked in ascending order), applies
// it as one batch and goes on with the next, while its completer waits for
// each batch's sync in order and runs the callbacks.
package kv
