package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors.
var (
	ErrNotFound   = errors.New("kv: not found")
	ErrClosed     = errors.New("kv: store closed")
	ErrCorrupt    = errors.New("kv: corrupt record")
	ErrKeyEmpty   = errors.New("kv: empty key")
	ErrKeyTooLong = errors.New("kv: key too long")
	// ErrBusy: ApplyAsync's queue is full.
	ErrBusy = errors.New("kv: too many writes queued")
)

// MaxKeyLen is the longest key the store accepts (SPEC: 1 byte to 64 KiB).
const MaxKeyLen = 64 << 10

const (
	flagTombstone  = 1 << 0
	flagCompressed = 1 << 1
	knownFlags     = flagTombstone | flagCompressed

	headerLen = 9

	// dataPrefix namespaces user keys inside Pebble.
	dataPrefix = 'd'
)

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

// appendDataKey appends the Pebble key for user key k.
func appendDataKey(dst, k []byte) []byte {
	dst = append(dst, dataPrefix)
	return append(dst, k...)
}

// putHeader writes the 9-byte record header into dst[:headerLen].
func putHeader(dst []byte, ts int64, flags byte) {
	dst[0] = flags
	binary.BigEndian.PutUint64(dst[1:headerLen], uint64(ts))
}

// parseHeader splits a stored Pebble value into header fields and payload.
// The payload aliases v.
func parseHeader(v []byte) (ts int64, flags byte, payload []byte, err error) {
	if len(v) < headerLen {
		return 0, 0, nil, fmt.Errorf("%w: %d-byte value shorter than header", ErrCorrupt, len(v))
	}
	flags = v[0]
	if flags&^knownFlags != 0 {
		return 0, 0, nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	ts = int64(binary.BigEndian.Uint64(v[1:headerLen]))
	return ts, flags, v[headerLen:], nil
}
