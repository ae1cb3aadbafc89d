package kv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tako-kv/tako/kv/lww"
)

// The data model lives in package lww, a leaf the HTTP layer uses without
// linking the store; these names are the store's view of it.
type (
	Record = lww.Record
	Meta   = lww.Meta
	Result = lww.Result
)

// Sentinel errors.
var (
	ErrNotFound   = lww.ErrNotFound
	ErrKeyEmpty   = lww.ErrKeyEmpty
	ErrKeyTooLong = lww.ErrKeyTooLong
	ErrDiskFull   = lww.ErrDiskFull
	ErrClosed     = errors.New("kv: store closed")
	ErrCorrupt    = errors.New("kv: corrupt record")
	// ErrBusy: ApplyAsync's queue is full.
	ErrBusy = errors.New("kv: too many writes queued")
)

// MaxKeyLen is the longest key the store accepts (SPEC: 1 byte to 64 KiB).
const MaxKeyLen = lww.MaxKeyLen

// Newer reports whether a beats b under last-write-wins (lww.Newer).
func Newer(a, b Record) bool { return lww.Newer(a, b) }

// CheckKey validates a user key (lww.CheckKey).
func CheckKey(key []byte) error { return lww.CheckKey(key) }

const (
	flagTombstone  = 1 << 0
	flagCompressed = 1 << 1
	knownFlags     = flagTombstone | flagCompressed

	headerLen = 9

	// dataPrefix namespaces user keys inside Pebble.
	dataPrefix = 'd'
)

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
