// Package kv is a node's embedded store: Pebble (v2) holding last-write-wins
// records, with a group-commit write path.
//
// # Records
//
// Every key maps to one Record: a timestamp (microseconds since the Unix
// epoch) and either a value or a tombstone. Keys are stored in Pebble under a
// one-byte namespace prefix (see dataPrefix) so that node metadata can live
// beside user data later without colliding with any user key. The Pebble value
// is a 9-byte header followed by the payload:
//
//	offset 0   flags   uint8   bit0 tombstone, bit1 payload is s2-compressed,
//	                            bits 2..7 zero (reserved; a reader refuses others)
//	offset 1   ts      int64   big-endian two's complement, microseconds
//	offset 9   payload         the value, possibly s2-compressed; empty for a tombstone
//
// # Invariants
//
//   - Last write wins: a record replaces the stored one only when it is Newer
//     (higher timestamp; on equal timestamps a tombstone beats a value and a
//     value with greater bytes beats a smaller one). Every replica applies the
//     same rule, so replicas converge whatever order writes arrive in.
//   - A write is acknowledged only after the batch holding it is committed
//     with the configured sync policy (SyncAlways: fsync'd in the WAL).
//   - The LWW decision and the write happen in one goroutine (the committer),
//     so two concurrent writes of one key cannot both be acknowledged as
//     current when only one is.
//
// # Concurrency
//
// A Store is safe for concurrent use. Reads (Get, Stat, Scan) go straight to
// Pebble from the caller's goroutine. Writes (Apply, ApplyAsync) are queued to
// a single committer goroutine that drains the queue, resolves each write
// against the stored record, adds the winners to one Pebble batch and commits
// it with a single WAL sync: writers that arrive while a sync is in progress
// share the next one (group commit).
package kv
