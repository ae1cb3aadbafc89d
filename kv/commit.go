package kv

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// write is one write in progress. Writes are pooled with their buffers.
type write struct {
	key     []byte
	rec     Record // Value uncompressed: tie-breaks compare these bytes
	payload []byte // what is stored: rec.Value or its compressed form
	flags   byte
	drop    bool // Drop: delete the key if its record is still rec
	cb      func(Result, error)

	own  []byte // ApplyAsync's copies of key and value
	comp []byte // compression output
	vbuf []byte // stored value decoded for a tie-break
	kbuf []byte // the Pebble key
}

var writePool = sync.Pool{New: func() any { return new(write) }}

// asyncQueue is how many ApplyAsync writes may wait for an async writer.
const asyncQueue = 8192

// stripes is how many locks serialise writes by key hash: two writes of one
// key never resolve concurrently, writes of different keys almost never wait
// for each other.
const stripes = 1024

// Apply writes rec under key if it is newer than the stored record (see
// Newer) and returns once the write is committed under the sync policy.
// key and rec.Value are read until Apply returns.
func (s *Store) Apply(key []byte, rec Record) (Result, error) {
	if err := s.admit(rec); err != nil {
		return Result{}, err
	}
	w, err := s.prepare(key, rec, false)
	if err != nil {
		return Result{}, err
	}
	defer putWrite(w)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Result{}, ErrClosed
	}
	return s.commit(w)
}

// ApplyAsync is Apply for callers that must not block, such as an event
// loop: it copies key and rec.Value, queues the write and returns. done is
// called exactly once, from a writer goroutine (so it must not block), or
// synchronously when the write is refused before queueing — ErrBusy when
// the queue is full, rather than waiting.
func (s *Store) ApplyAsync(key []byte, rec Record, done func(Result, error)) {
	if err := s.admit(rec); err != nil {
		done(Result{}, err)
		return
	}
	w, err := s.prepare(key, rec, true)
	if err != nil {
		done(Result{}, err)
		return
	}
	w.cb = done
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		putWrite(w)
		done(Result{}, ErrClosed)
		return
	}
	select {
	case s.async <- w:
	default:
		// Never block the caller (an event loop): refuse, the peer retries
		// or counts this replica out.
		putWrite(w)
		done(Result{}, ErrBusy)
	}
}

// asyncWriter commits queued ApplyAsync writes until Close closes the queue.
func (s *Store) asyncWriter() {
	for w := range s.async {
		res, err := s.commit(w)
		w.cb(res, err)
		putWrite(w)
	}
}

// Drop removes key's record if it is still rec (timestamp, kind and value):
// a node hands off a key it no longer owns and drops its copy without
// destroying a newer write that reached it meanwhile. It reports whether the
// record was removed. Unlike a tombstone, nothing remains.
func (s *Store) Drop(key []byte, rec Record) (bool, error) {
	w, err := s.prepare(key, rec, false)
	if err != nil {
		return false, err
	}
	defer putWrite(w)
	w.drop = true
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false, ErrClosed
	}
	res, err := s.commit(w)
	return res.Applied, err
}

// admit refuses values while the disk is nearly full; tombstones pass, so
// space can be freed through the API.
func (s *Store) admit(rec Record) error {
	if rec.Tombstone {
		return nil
	}
	return s.space.admit(len(rec.Value))
}

// prepare checks and encodes a write in the caller's goroutine, so that
// compression of concurrent writes uses every core.
func (s *Store) prepare(key []byte, rec Record, copyIn bool) (*write, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	w := writePool.Get().(*write)
	if copyIn {
		w.own = append(append(w.own[:0], key...), rec.Value...)
		key, rec.Value = w.own[:len(key)], w.own[len(key):]
	}
	if rec.Tombstone {
		rec.Value = nil
	}
	w.key, w.rec, w.payload, w.flags = key, rec, rec.Value, 0
	if rec.Tombstone {
		w.flags = flagTombstone
	} else if !s.opts.NoCompression {
		if c := compressInto(w.comp, rec.Value); c != nil {
			w.comp, w.payload, w.flags = c, c, flagCompressed
		}
	}
	return w, nil
}

func putWrite(w *write) {
	w.key, w.rec, w.payload, w.cb, w.drop = nil, Record{}, nil, nil, false
	for _, b := range []*[]byte{&w.own, &w.comp, &w.vbuf} {
		if cap(*b) > 1<<20 {
			*b = nil // do not pin a burst of large values
		}
	}
	writePool.Put(w)
}

// commit resolves w against the stored record under its key's stripe lock
// and applies the winner as its own batch; it waits for the WAL sync after
// releasing the lock. Pebble coalesces the syncs of batches committed
// concurrently into one fsync (group commit), and makes a batch visible
// before its sync, so the next write of the key resolves against it.
func (s *Store) commit(w *write) (Result, error) {
	mu := &s.stripes[keyHash(w.key)%stripes]
	mu.Lock()
	res, b, err := s.resolve(w)
	if b != nil && err == nil {
		if s.opts.Sync == SyncAlways {
			err = s.db.ApplyNoSyncWait(b, pebble.Sync)
		} else {
			err = s.db.Apply(b, pebble.NoSync)
		}
		if err != nil {
			b = nil // Pebble forbids reusing or closing a batch that failed here
			err = fmt.Errorf("kv: commit: %w", err)
		}
	}
	mu.Unlock()
	if b == nil {
		if err == nil && s.opts.Sync == SyncAlways {
			// Nothing written, but the answer rests on the stored record,
			// which may be a concurrent write still waiting for its sync:
			// acknowledge only once that is durable too.
			if err = s.db.LogData(nil, pebble.Sync); err != nil {
				err = fmt.Errorf("kv: sync: %w", err)
			}
		}
		return res, err
	}
	if s.opts.Sync == SyncAlways {
		if err = b.SyncWait(); err != nil {
			err = fmt.Errorf("kv: sync: %w", err)
		}
	}
	b.Close()
	return res, err
}

// resolve decides w against the stored record and returns the batch to
// apply, nil when nothing is to be written. REQUIRES: w's stripe locked.
func (s *Store) resolve(w *write) (Result, *pebble.Batch, error) {
	cur, found, err := s.current(w)
	if err != nil {
		return Result{}, nil, err
	}
	w.kbuf = appendDataKey(w.kbuf[:0], w.key)
	if w.drop {
		if !found || Newer(cur, w.rec) || Newer(w.rec, cur) {
			return Result{TS: cur.TS}, nil, nil // not the record being handed off
		}
		b := s.db.NewBatch()
		if err := b.Delete(w.kbuf, nil); err != nil {
			b.Close()
			return Result{}, nil, fmt.Errorf("kv: batch delete: %w", err)
		}
		return Result{TS: cur.TS, Applied: true}, b, nil
	}
	if found && !Newer(w.rec, cur) {
		if Newer(cur, w.rec) {
			return Result{TS: cur.TS}, nil, nil
		}
		// Identical record: already current, nothing to write.
		return Result{TS: cur.TS, Applied: true}, nil, nil
	}
	b := s.db.NewBatch()
	op := b.SetDeferred(len(w.kbuf), headerLen+len(w.payload))
	copy(op.Key, w.kbuf)
	putHeader(op.Value, w.rec.TS, w.flags)
	copy(op.Value[headerLen:], w.payload)
	if err := op.Finish(); err != nil {
		b.Close()
		return Result{}, nil, fmt.Errorf("kv: batch set: %w", err)
	}
	return Result{TS: w.rec.TS, Applied: true}, b, nil
}

// current returns the stored record w competes with. The stored value is
// decoded only when the timestamps tie, the one case where its bytes decide.
func (s *Store) current(w *write) (Record, bool, error) {
	var cur Record
	err := s.lookup(w.key, func(ts int64, flags byte, payload []byte) error {
		cur = Record{TS: ts, Tombstone: flags&flagTombstone != 0}
		if ts != w.rec.TS || cur.Tombstone != w.rec.Tombstone {
			return nil
		}
		var err error
		w.vbuf, err = decodePayload(w.vbuf[:0], flags, payload)
		cur.Value = w.vbuf
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Record{}, false, nil
	}
	return cur, err == nil, err
}

// keyHash is FNV-1a, enough to spread keys over the stripes.
func keyHash(k []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range k {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}
