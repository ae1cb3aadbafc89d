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
	// flagHashed: the header carries the value's hash (ValueHash), so a
	// write that replaces the record knows the hash it folds out of its
	// segment's sum without reading the old value.
	flagHashed = 1 << 2
	knownFlags = flagTombstone | flagCompressed | flagHashed

	headerLen       = 9  // flags, ts
	hashedHeaderLen = 17 // flags, ts, value hash

	// dataPrefix namespaces user keys inside Pebble.
	dataPrefix = 'd'
)

// appendDataKey appends the Pebble key for user key k.
func appendDataKey(dst, k []byte) []byte {
	dst = append(dst, dataPrefix)
	return append(dst, k...)
}

// headerSize is the length of a header with flags.
func headerSize(flags byte) int {
	if flags&flagHashed != 0 {
		return hashedHeaderLen
	}
	return headerLen
}

// putHeader writes the record header into dst[:headerSize(flags)]; vhash
// is written when flags has flagHashed.
func putHeader(dst []byte, ts int64, flags byte, vhash uint64) {
	dst[0] = flags
	binary.BigEndian.PutUint64(dst[1:headerLen], uint64(ts))
	if flags&flagHashed != 0 {
		binary.BigEndian.PutUint64(dst[headerLen:hashedHeaderLen], vhash)
	}
}

// parseHeader splits a stored Pebble value into header fields and payload;
// vhash is the value's hash when flags has flagHashed. The payload aliases v.
func parseHeader(v []byte) (ts int64, flags byte, vhash uint64, payload []byte, err error) {
	if len(v) < headerLen {
		return 0, 0, 0, nil, fmt.Errorf("%w: %d-byte value shorter than header", ErrCorrupt, len(v))
	}
	flags = v[0]
	if flags&^knownFlags != 0 {
		return 0, 0, 0, nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	n := headerSize(flags)
	if len(v) < n {
		return 0, 0, 0, nil, fmt.Errorf("%w: %d-byte value shorter than a hashed header", ErrCorrupt, len(v))
	}
	ts = int64(binary.BigEndian.Uint64(v[1:headerLen]))
	if n == hashedHeaderLen {
		vhash = binary.BigEndian.Uint64(v[headerLen:hashedHeaderLen])
	}
	return ts, flags, vhash, v[n:], nil
}
