package hints

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
)

// Options bounds a Store.
type Options struct {
	MaxBytes int64         // all hints together; default 256 MiB
	MaxAge   time.Duration // default 3h, as Cassandra's max_hint_window
	Logger   *slog.Logger
	FS       vfs.FS // tests use vfs.NewMem
}

// Stats counts hints over the Store's life.
type Stats struct {
	Stored, Replayed, Dropped int64
	Pending                   int   // hints held now
	PendingBytes              int64 // their size
}

// Store holds hints. See the package doc.
type Store struct {
	db   *pebble.DB
	opts Options

	mu      sync.Mutex
	seq     uint64
	bytes   int64
	targets map[string]int // hints held per target

	stored, replayed, dropped atomic.Int64
}

const valueHeader = 8 + 8 + 1 + 4

// Open opens (creating if needed) the hint store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 3 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cache := pebble.NewCache(8 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{Cache: cache, MemTableSize: 4 << 20, FS: opts.FS,
		FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{opts.Logger}})
	if err != nil {
		return nil, fmt.Errorf("hints: open %s: %w", dir, err)
	}
	s := &Store{db: db, opts: opts, targets: map[string]int{}}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// load counts the hints left by an earlier run.
func (s *Store) load() error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("hints: load: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		target, seq, ok := parseKey(it.Key())
		if !ok {
			continue
		}
		s.targets[target]++
		s.bytes += int64(len(it.Key()) + len(it.Value()))
		s.seq = max(s.seq, seq)
	}
	return it.Close()
}

// Close closes the store; hints not replayed stay for the next Open.
func (s *Store) Close() error { return s.db.Close() }

// Add keeps a write of key for target. It returns false when the hint was
// not taken (the store is full, or the write failed); that is counted and
// the write is left to anti-entropy.
func (s *Store) Add(target string, key []byte, ts int64, flags uint8, value []byte) bool {
	size := int64(len(target) + 9 + valueHeader + len(key) + len(value))
	s.mu.Lock()
	if s.bytes+size > s.opts.MaxBytes {
		s.mu.Unlock()
		s.dropped.Add(1)
		return false
	}
	s.seq++
	seq := s.seq
	s.bytes += size
	s.targets[target]++
	s.mu.Unlock()

	b := s.db.NewBatch()
	defer b.Close()
	op := b.SetDeferred(len(target)+9, valueHeader+len(key)+len(value))
	appendKey(op.Key[:0], target, seq)
	v := op.Value[:0]
	v = binary.BigEndian.AppendUint64(v, uint64(time.Now().UnixMicro()))
	v = binary.BigEndian.AppendUint64(v, uint64(ts))
	v = append(v, flags)
	v = binary.BigEndian.AppendUint32(v, uint32(len(key)))
	v = append(v, key...)
	_ = append(v, value...)
	op.Finish()
	if err := b.Commit(pebble.NoSync); err != nil {
		s.opts.Logger.Warn("hint not stored", "target", target, "err", err)
		s.forget(target, 1, size)
		s.dropped.Add(1)
		return false
	}
	s.stored.Add(1)
	return true
}

func (s *Store) forget(target string, n int, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bytes -= size
	if s.targets[target] -= n; s.targets[target] <= 0 {
		delete(s.targets, target)
	}
}

// Targets returns the nodes that hints are held for.
func (s *Store) Targets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.targets))
	for t := range s.targets {
		out = append(out, t)
	}
	return out
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	pending, size := 0, s.bytes
	for _, n := range s.targets {
		pending += n
	}
	s.mu.Unlock()
	return Stats{Stored: s.stored.Load(), Replayed: s.replayed.Load(), Dropped: s.dropped.Load(), Pending: pending, PendingBytes: size}
}

// Batch limits: one replay step is at most this many hints and bytes, so
// one BatchSet frame.
const (
	batchRecords = 256
	batchBytes   = 4 << 20
)

// Replay sends target's hints in order, a batch at a time, to send, and
// deletes each batch send accepted. It stops at the first error, leaving the
// rest for the next call; hints older than MaxAge are dropped unsent.
// REQUIRES: one Replay per target at a time.
func (s *Store) Replay(target string, send func([]codec.Record) error) (sent int, err error) {
	lower := appendKey(nil, target, 0)
	upper := appendKey(nil, target, 1<<64-1)
	oldest := time.Now().Add(-s.opts.MaxAge).UnixMicro()
	for {
		batch, keys, size, stale, err := s.readBatch(lower, upper, oldest)
		if err != nil {
			return sent, err
		}
		if len(keys) == 0 {
			return sent, nil
		}
		if len(batch) > 0 {
			if err := send(batch); err != nil {
				return sent, err
			}
		}
		if err := s.deleteKeys(keys); err != nil {
			return sent, fmt.Errorf("hints: delete replayed: %w", err)
		}
		s.forget(target, len(keys), size)
		s.replayed.Add(int64(len(batch)))
		s.dropped.Add(int64(stale))
		sent += len(batch)
		lower = append(keys[len(keys)-1], 0)
	}
}

// deleteKeys deletes exactly the hints read, not the range they span: Add
// takes its sequence number before its write commits, so a hint numbered
// inside the range may have become visible only after the read, and must
// stay for the next Replay.
func (s *Store) deleteKeys(keys [][]byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
}

// readBatch copies up to a batch of hints from lower on; keys are their
// store keys (the stale ones too), size their bytes.
func (s *Store) readBatch(lower, upper []byte, oldest int64) (batch []codec.Record, keys [][]byte, size int64, stale int, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("hints: replay: %w", err)
	}
	defer it.Close()
	bytesIn := 0
	for valid := it.First(); valid && len(keys) < batchRecords && bytesIn < batchBytes; valid = it.Next() {
		k, v := it.Key(), it.Value()
		r, added, ok := parseValue(v)
		if !ok {
			return nil, nil, 0, 0, fmt.Errorf("hints: corrupt hint %x", k)
		}
		keys = append(keys, bytes.Clone(k))
		size += int64(len(k) + len(v))
		if added < oldest {
			stale++
			continue
		}
		r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		batch = append(batch, r)
		bytesIn += len(r.Key) + len(r.Value)
	}
	return batch, keys, size, stale, it.Error()
}

// Drop discards every hint for target (a node no longer in any
// configuration) and counts them dropped.
func (s *Store) Drop(target string) error {
	s.mu.Lock()
	n := s.targets[target]
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	var size int64
	lower, upper := appendKey(nil, target, 0), appendKey(nil, target, 1<<64-1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("hints: drop: %w", err)
	}
	count := 0
	for valid := it.First(); valid; valid = it.Next() {
		size += int64(len(it.Key()) + len(it.Value()))
		count++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("hints: drop: %w", err)
	}
	if err := s.db.DeleteRange(lower, append(upper, 0), pebble.NoSync); err != nil {
		return fmt.Errorf("hints: drop: %w", err)
	}
	s.forget(target, count, size)
	s.dropped.Add(int64(count))
	return nil
}

func appendKey(dst []byte, target string, seq uint64) []byte {
	dst = append(dst, target...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func parseKey(k []byte) (target string, seq uint64, ok bool) {
	if len(k) < 9 || k[len(k)-9] != 0 {
		return "", 0, false
	}
	return string(k[:len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:]), true
}

// parseValue decodes a hint; the record aliases v.
func parseValue(v []byte) (r codec.Record, added int64, ok bool) {
	if len(v) < valueHeader {
		return r, 0, false
	}
	added = int64(binary.BigEndian.Uint64(v))
	r.TS = int64(binary.BigEndian.Uint64(v[8:]))
	r.Flags = v[16]
	kl := int(binary.BigEndian.Uint32(v[17:]))
	if len(v)-valueHeader < kl {
		return r, 0, false
	}
	r.Key = v[valueHeader : valueHeader+kl]
	r.Value = v[valueHeader+kl:]
	return r, added, true
}

// quietLogger sends Pebble's info lines to debug.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Infof(format string, args ...any) {
	q.l.Debug(fmt.Sprintf(format, args...), "component", "pebble-hints")
}
func (q quietLogger) Errorf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "component", "pebble-hints")
}
func (q quietLogger) Fatalf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "component", "pebble-hints", "fatal", true)
	panic(fmt.Sprintf("pebble: "+format, args...))
}
