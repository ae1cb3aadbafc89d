package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/tako-kv/tako/hashring"
)

// Segments: the store keeps, for anti-entropy, a summary of its records by
// hash segment. A key's segment is the top SegmentBits bits of its ring hash
// (hashring.Hash), so a segment is a slice of the ring: almost every segment
// lies within one arc between ring points, and all its keys have the same
// replicas. Two replicas compare segment sums and exchange records only in
// the segments whose sums differ.
//
// Each record has an index entry, written in the same batch as the record:
//
//	key    'x' | segment u16 | user key
//	value  ts i64 | flags u8 (bit 0 tombstone) | record hash u64 (RecordHash)
//
// so a segment's records can be listed in key order without reading values,
// and the summaries — per segment the XOR of its record hashes and their
// count — are rebuilt from the index when the store opens, then kept current
// in memory as writes land.

// SegmentBits is how many bits of the ring hash name a segment.
const SegmentBits = 16

// NumSegments is the number of segments.
const NumSegments = 1 << SegmentBits

const (
	indexPrefix  = 'x'
	metaPrefix   = 'm'
	indexValLen  = 8 + 1 + 8
	segmentShift = 64 - SegmentBits
)

// indexBuilt marks a store whose index covers every record (stores written
// before the index existed get one built when they open).
var indexBuilt = []byte{metaPrefix, 's', 'e', 'g', 'i', 'd', 'x', '1'}

// Segment returns key's segment.
func Segment(key []byte) int { return int(hashring.Hash(key) >> segmentShift) }

// SegmentSum summarises the records of one segment.
type SegmentSum struct {
	XOR        uint64 // of the records' RecordHash
	Count      int64
	Tombstones int64 // how many of them are tombstones (tombstone GC looks here)
}

// add folds one record into the sum (sign -1 removes it).
func (s *SegmentSum) add(h uint64, tombstone bool, sign int64) {
	s.XOR ^= h
	s.Count += sign
	if tombstone {
		s.Tombstones += sign
	}
}

// RecordHash identifies one version of one key: its key, timestamp, kind and
// value. Equal hashes mean equal records (up to 2^-64).
func RecordHash(key []byte, rec Record) uint64 {
	return recordHash(key, rec.TS, rec.Tombstone, ValueHash(rec.Value))
}

// ValueHash is the hash of a value that record headers carry (xxHash64).
func ValueHash(v []byte) uint64 { return xxhash.Sum64(v) }

// recordHash is RecordHash from the value's hash.
func recordHash(key []byte, ts int64, tombstone bool, vhash uint64) uint64 {
	var d xxhash.Digest
	d.Reset()
	var hdr [21]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(key)))
	binary.BigEndian.PutUint64(hdr[4:12], uint64(ts))
	if tombstone {
		hdr[12] = 1
	}
	binary.BigEndian.PutUint64(hdr[13:], vhash)
	d.Write(hdr[:])
	d.Write(key)
	return d.Sum64()
}

// segTable is the in-memory summaries. Writes of different keys update it
// concurrently, so it is sharded by segment.
type segTable struct {
	mu   [256]sync.Mutex
	sums [NumSegments]SegmentSum
}

func (t *segTable) update(seg int, h uint64, tombstone bool, sign int64) {
	m := &t.mu[seg&255]
	m.Lock()
	t.sums[seg].add(h, tombstone, sign)
	m.Unlock()
}

func (t *segTable) get(seg int) SegmentSum {
	m := &t.mu[seg&255]
	m.Lock()
	defer m.Unlock()
	return t.sums[seg]
}

// appendIndexKey appends the index key of key in segment seg.
func appendIndexKey(dst []byte, seg int, key []byte) []byte {
	dst = append(dst, indexPrefix, byte(seg>>8), byte(seg))
	return append(dst, key...)
}

func putIndexValue(dst []byte, ts int64, flags byte, h uint64) {
	binary.BigEndian.PutUint64(dst, uint64(ts))
	dst[8] = flags & flagTombstone
	binary.BigEndian.PutUint64(dst[9:], h)
}

func parseIndexValue(v []byte) (m Meta, h uint64, err error) {
	if len(v) != indexValLen {
		return Meta{}, 0, fmt.Errorf("%w: %d-byte index entry", ErrCorrupt, len(v))
	}
	return Meta{TS: int64(binary.BigEndian.Uint64(v)), Tombstone: v[8]&flagTombstone != 0}, binary.BigEndian.Uint64(v[9:]), nil
}

// indexEntry reads key's index entry: its record's timestamp, kind and
// RecordHash; ErrNotFound when the store holds no record of key.
func (s *Store) indexEntry(key []byte) (Meta, uint64, error) {
	kb := s.keyBufs.Get().(*[]byte)
	*kb = appendIndexKey((*kb)[:0], Segment(key), key)
	v, closer, err := s.db.Get(*kb)
	s.keyBufs.Put(kb)
	if errors.Is(err, pebble.ErrNotFound) {
		return Meta{}, 0, ErrNotFound
	}
	if err != nil {
		return Meta{}, 0, fmt.Errorf("kv: get index entry: %w", err)
	}
	defer closer.Close()
	return parseIndexValue(v)
}

// Records returns how many records the store holds (from the segment
// summaries: no scan).
func (s *Store) Records() int64 {
	n := int64(0)
	for seg := range NumSegments {
		n += s.segs.get(seg).Count
	}
	return n
}

// aliveKey holds the last time (µs, wall clock) the node was known up.
var aliveKey = []byte{metaPrefix, 'a', 'l', 'i', 'v', 'e'}

// MarkAlive records now as the last time the store's node was up; a node
// calls it periodically and at shutdown (see LastAlive).
func (s *Store) MarkAlive(now time.Time) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(now.UnixMicro()))
	if err := s.db.Set(aliveKey, b[:], pebble.NoSync); err != nil {
		return fmt.Errorf("kv: mark alive: %w", err)
	}
	return nil
}

// placementKey holds the configuration the node last ran with.
var placementKey = []byte{metaPrefix, 'p', 'l', 'a', 'c', 'e'}

// SetPlacement records cfg (opaque to the store: the node's configuration)
// as the one the store's node runs with, for Placement after a restart.
func (s *Store) SetPlacement(cfg []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.db.Set(placementKey, cfg, pebble.Sync); err != nil {
		return fmt.Errorf("kv: set placement: %w", err)
	}
	return nil
}

// Placement returns what SetPlacement recorded last; ok is false for a
// store that never had one.
func (s *Store) Placement() (cfg []byte, ok bool, err error) {
	v, closer, err := s.db.Get(placementKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kv: placement: %w", err)
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

// LastAlive returns the time MarkAlive last recorded; ok is false for a
// store that never had one.
func (s *Store) LastAlive() (t time.Time, ok bool, err error) {
	v, closer, err := s.db.Get(aliveKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("kv: last alive: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return time.Time{}, false, fmt.Errorf("%w: %d-byte alive marker", ErrCorrupt, len(v))
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(v))), true, nil
}

// SegmentSum returns the summary of segment seg.
func (s *Store) SegmentSum(seg int) SegmentSum { return s.segs.get(seg) }

// ScanSegment calls fn for the records of segment seg with key > after (all
// of them for an empty after), in key order, with their RecordHash; key is
// valid only during fn. fn returning an error stops the scan with it.
func (s *Store) ScanSegment(seg int, after []byte, fn func(key []byte, m Meta, hash uint64) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	lower := appendIndexKey(nil, seg, after)
	if len(after) > 0 {
		lower = append(lower, 0)
	}
	upper := appendIndexKey(nil, seg+1, nil)
	if seg+1 == NumSegments {
		upper = []byte{indexPrefix + 1}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("kv: scan segment: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		m, h, err := parseIndexValue(it.Value())
		if err != nil {
			it.Close()
			return err
		}
		if err := fn(it.Key()[3:], m, h); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// openSegments builds the index of a store written before it existed, then
// the in-memory summaries from the index.
func (s *Store) openSegments() error {
	_, closer, err := s.db.Get(indexBuilt)
	switch {
	case err == nil:
		closer.Close()
	case errors.Is(err, pebble.ErrNotFound):
		if err := s.buildIndex(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("kv: open index: %w", err)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{indexPrefix}, UpperBound: []byte{indexPrefix + 1}})
	if err != nil {
		return fmt.Errorf("kv: load index: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		m, h, err := parseIndexValue(it.Value())
		if err != nil || len(k) < 3 {
			it.Close()
			return fmt.Errorf("kv: load index: %w", errors.Join(err, ErrCorrupt))
		}
		s.segs.sums[int(k[1])<<8|int(k[2])].add(h, m.Tombstone, 1)
	}
	return it.Close()
}

// buildIndex writes an index entry for every record, in batches.
func (s *Store) buildIndex() error {
	b := s.db.NewBatch()
	var ik []byte
	var iv [indexValLen]byte
	n := 0
	err := s.Scan(nil, nil, func(key []byte, rec Record) error {
		ik = appendIndexKey(ik[:0], Segment(key), key)
		putIndexValue(iv[:], rec.TS, tombstoneFlag(rec.Tombstone), RecordHash(key, rec))
		if err := b.Set(ik, iv[:], nil); err != nil {
			return err
		}
		if n++; b.Len() > 4<<20 {
			err := b.Commit(pebble.NoSync)
			b.Close()
			b = s.db.NewBatch()
			return err
		}
		return nil
	})
	if err == nil {
		err = b.Set(indexBuilt, nil, nil)
	}
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	b.Close()
	if err != nil {
		return fmt.Errorf("kv: build index: %w", err)
	}
	if n > 0 {
		s.opts.Logger.Info("kv: built the anti-entropy index", "records", n)
	}
	return nil
}

func tombstoneFlag(t bool) byte {
	if t {
		return flagTombstone
	}
	return 0
}
