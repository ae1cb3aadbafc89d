// Package lww is Tako's data model: a key's record — a timestamp and a value
// or a tombstone —, the last-write-wins order every replica applies, the
// outcome of a write, and the errors every layer shares. It is a leaf: the
// HTTP layer uses it without linking the store (package kv), and the store
// and the cluster without each other.
package lww

import (
	"bytes"
	"errors"
	"fmt"
)

// Sentinel errors shared by the store, the cluster and the HTTP layer.
var (
	ErrNotFound   = errors.New("not found")
	ErrKeyEmpty   = errors.New("empty key")
	ErrKeyTooLong = errors.New("key too long")
	// ErrDiskFull: writes of values are refused while the store's file
	// system has less free space than its min_free_bytes. Reads, tombstones
	// and drops still work, so an operator can free space through the API.
	ErrDiskFull = errors.New("disk nearly full")
)

// MaxKeyLen is the longest key (SPEC: 1 byte to 64 KiB).
const MaxKeyLen = 64 << 10

// Record is one stored version of a key. For records returned by the store,
// Value aliases the caller's dst buffer (see Store.Get).
type Record struct {
	TS        int64 // microseconds since the Unix epoch
	Tombstone bool
	Value     []byte
}

// Meta is a record without its value.
type Meta struct {
	TS        int64
	Tombstone bool
}

// Meta returns r without its value.
func (r Record) Meta() Meta { return Meta{TS: r.TS, Tombstone: r.Tombstone} }

// Result is the outcome of a write.
type Result struct {
	// TS is the timestamp of the record current after the write: the written
	// one when Applied, else the newer stored one that beat it.
	TS int64
	// Applied reports whether the written record is now current.
	Applied bool
}

// Newer reports whether a beats b under last-write-wins. The order is total
// over (TS, Tombstone, Value) so that every replica breaks ties the same way:
// higher timestamp, then tombstone over value, then greater value bytes.
func Newer(a, b Record) bool {
	if a.TS != b.TS {
		return a.TS > b.TS
	}
	if a.Tombstone != b.Tombstone {
		return a.Tombstone
	}
	return bytes.Compare(a.Value, b.Value) > 0
}

// CheckKey validates a user key.
func CheckKey(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrKeyEmpty
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLong, len(key), MaxKeyLen)
	}
	return nil
}
