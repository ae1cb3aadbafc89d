package kv

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// writeReq is one queued write. The committer owns it from enqueue until
// completion; then it goes back to reqPool.
type writeReq struct {
	key     []byte
	rec     Record // Value uncompressed: tie-breaks compare these bytes
	payload []byte // what is stored: rec.Value or its compressed form
	flags   byte

	// own holds the copies made by ApplyAsync and the compression output, so
	// a pooled request reuses its buffers across writes.
	own  []byte
	comp []byte

	res  Result
	err  error
	done chan struct{}       // Apply waits on it
	cb   func(Result, error) // ApplyAsync calls it from the committer
	prev int32               // earlier request in the batch with the same key hash, or -1
	won  bool                // r's record was added to the batch and is current
	drop bool                // Drop: delete the key if its record is still rec
}

var reqPool = sync.Pool{New: func() any { return &writeReq{done: make(chan struct{}, 1)} }}

// Apply writes rec under key if it is newer than the stored record (see
// Newer) and returns once the write's batch is committed under the sync
// policy. key and rec.Value are read until Apply returns.
func (s *Store) Apply(key []byte, rec Record) (Result, error) {
	r, err := s.newReq(key, rec, false)
	if err != nil {
		return Result{}, err
	}
	if err := s.enqueue(r); err != nil {
		s.putReq(r)
		return Result{}, err
	}
	<-r.done
	res, err := r.res, r.err
	s.putReq(r)
	return res, err
}

// ApplyAsync is Apply for callers that must not block, such as an event
// loop: it copies key and rec.Value, queues the write and returns. done is
// called exactly once, from the committer goroutine (so it must not block),
// or synchronously when the write is refused before queueing.
func (s *Store) ApplyAsync(key []byte, rec Record, done func(Result, error)) {
	r, err := s.newReq(key, rec, true)
	if err != nil {
		done(Result{}, err)
		return
	}
	r.cb = done
	if err := s.enqueue(r); err != nil {
		s.putReq(r)
		done(Result{}, err)
	}
}

// Drop removes key's record if it is still the one with timestamp ts and
// the given kind: a node hands off a key it no longer owns and drops its copy
// without destroying a newer write that reached it meanwhile. It reports
// whether the record was removed. Unlike a tombstone, nothing remains.
func (s *Store) Drop(key []byte, ts int64, tombstone bool) (bool, error) {
	r, err := s.newReq(key, Record{TS: ts, Tombstone: tombstone}, false)
	if err != nil {
		return false, err
	}
	r.drop = true
	if err := s.enqueue(r); err != nil {
		s.putReq(r)
		return false, err
	}
	<-r.done
	res, err := r.res, r.err
	s.putReq(r)
	return res.Applied, err
}

func (s *Store) newReq(key []byte, rec Record, copyIn bool) (*writeReq, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	r := reqPool.Get().(*writeReq)
	if copyIn {
		r.own = append(append(r.own[:0], key...), rec.Value...)
		key, rec.Value = r.own[:len(key)], r.own[len(key):]
	}
	if rec.Tombstone {
		rec.Value = nil
	}
	r.key, r.rec, r.payload, r.flags = key, rec, rec.Value, 0
	if rec.Tombstone {
		r.flags = flagTombstone
	} else if !s.opts.NoCompression {
		// Compress in the writer's goroutine, not the committer's, so
		// concurrent writers use every core.
		if c := compressInto(r.comp, rec.Value); c != nil {
			r.comp, r.payload, r.flags = c, c, flagCompressed
		}
	}
	return r, nil
}

func (s *Store) putReq(r *writeReq) {
	r.key, r.rec, r.payload, r.cb, r.err, r.drop = nil, Record{}, nil, nil, nil, false
	if cap(r.own) > 1<<20 {
		r.own = nil
	}
	if cap(r.comp) > 1<<20 {
		r.comp = nil
	}
	reqPool.Put(r)
}

func (s *Store) enqueue(r *writeReq) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.queue <- r
	return nil
}

func (r *writeReq) finish(res Result, err error) {
	r.res, r.err = res, err
	if r.cb != nil {
		cb := r.cb
		cb(res, err)
		// An async request is ours again once its callback has run.
		return
	}
	r.done <- struct{}{}
}

// committer is the state of the single goroutine that resolves writes and
// hands batches to Pebble. Nothing here is shared.
type committer struct {
	s      *Store
	batch  *pebble.Batch
	reqs   []*writeReq
	byHash map[uint64]int32 // key hash -> latest request index in this batch
	vbuf   []byte           // stored value decoded for a tie-break
	keyBuf []byte
	synced chan syncedBatch // to the completer, under SyncAlways
}

// syncedBatch is a batch applied to the memtable whose WAL sync is pending.
type syncedBatch struct {
	batch *pebble.Batch
	reqs  []*writeReq
}

// commitLoop is the committer. Under SyncAlways it does not wait for the
// fsync of a batch before building the next: Pebble makes an applied batch
// visible at once (so the next batch's LWW reads see it) and the completer
// goroutine acknowledges the batch's writers when its sync is done. Batches
// built while one syncs share the next sync — group commit, pipelined.
func (s *Store) commitLoop() {
	c := &committer{s: s, byHash: make(map[uint64]int32)}
	if s.opts.Sync == SyncAlways {
		c.synced = make(chan syncedBatch, 4)
		done := make(chan struct{})
		go func() { defer close(done); c.complete() }()
		defer func() { close(c.synced); <-done }()
	}
	for {
		r, ok := <-s.queue
		if !ok {
			return
		}
		c.reqs = append(c.reqs[:0], r)
		size := len(r.key) + len(r.payload)
	drain:
		for len(c.reqs) < s.opts.MaxBatchCount && size < s.opts.MaxBatchBytes {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break drain
				}
				c.reqs = append(c.reqs, r)
				size += len(r.key) + len(r.payload)
			default:
				break drain
			}
		}
		c.commit()
	}
}

// commit resolves every queued request against the store and the earlier
// requests of the batch and commits the winners in one batch.
func (c *committer) commit() {
	c.batch = c.s.db.NewBatch()
	clear(c.byHash)
	for i, r := range c.reqs {
		r.prev, r.won = -1, false
		h := keyHash(r.key)
		if j, ok := c.byHash[h]; ok {
			r.prev = j
		}
		c.byHash[h] = int32(i)
		r.res, r.err = c.resolve(r)
	}
	switch {
	case c.batch.Empty():
		finishAll(c.s, c.reqs, nil)
		c.batch.Close()
	case c.synced != nil:
		if err := c.s.db.ApplyNoSyncWait(c.batch, pebble.Sync); err != nil {
			// Pebble forbids reusing or closing a batch that failed here.
			finishAll(c.s, c.reqs, fmt.Errorf("kv: commit batch of %d writes: %w", len(c.reqs), err))
			break
		}
		c.synced <- syncedBatch{c.batch, slices.Clone(c.reqs)}
	default:
		var err error
		if err = c.batch.Commit(c.s.wo); err != nil {
			err = fmt.Errorf("kv: commit batch of %d writes: %w", len(c.reqs), err)
		}
		finishAll(c.s, c.reqs, err)
		c.batch.Close()
	}
	c.batch = nil
	clear(c.reqs)
}

// complete acknowledges synced batches in commit order.
func (c *committer) complete() {
	for sb := range c.synced {
		var err error
		if err = sb.batch.SyncWait(); err != nil {
			err = fmt.Errorf("kv: sync batch of %d writes: %w", len(sb.reqs), err)
		}
		finishAll(c.s, sb.reqs, err)
		sb.batch.Close()
	}
}

// finishAll completes reqs; a request's own error wins over the batch's.
func finishAll(s *Store, reqs []*writeReq, batchErr error) {
	for _, r := range reqs {
		err := r.err
		if err == nil {
			err = batchErr
		}
		if async := r.cb != nil; async {
			r.finish(r.res, err)
			s.putReq(r)
		} else {
			r.finish(r.res, err) // the waiter owns r from here
		}
	}
}

// resolve decides r against the record current for its key — the latest
// winner earlier in this batch, else the stored one — and adds r to the batch
// when it is newer.
func (c *committer) resolve(r *writeReq) (Result, error) {
	cur, found, err := c.current(r)
	if err != nil {
		return Result{}, err
	}
	if r.drop {
		if !found || cur.TS != r.rec.TS || cur.Tombstone != r.rec.Tombstone {
			return Result{TS: cur.TS}, nil
		}
		c.keyBuf = appendDataKey(c.keyBuf[:0], r.key)
		if err := c.batch.Delete(c.keyBuf, nil); err != nil {
			return Result{}, fmt.Errorf("kv: batch delete: %w", err)
		}
		return Result{TS: cur.TS, Applied: true}, nil
	}
	if found && !Newer(r.rec, cur) {
		if Newer(cur, r.rec) {
			return Result{TS: cur.TS}, nil
		}
		// Identical record: already current, nothing to write.
		return Result{TS: cur.TS, Applied: true}, nil
	}
	op := c.batch.SetDeferred(1+len(r.key), headerLen+len(r.payload))
	op.Key[0] = dataPrefix
	copy(op.Key[1:], r.key)
	putHeader(op.Value, r.rec.TS, r.flags)
	copy(op.Value[headerLen:], r.payload)
	if err := op.Finish(); err != nil {
		return Result{}, fmt.Errorf("kv: batch set: %w", err)
	}
	r.won = true
	return Result{TS: r.rec.TS, Applied: true}, nil
}

// current returns the record r competes with. A stored value is decoded only
// when the timestamps tie, the one case where its bytes decide.
func (c *committer) current(r *writeReq) (Record, bool, error) {
	for j := r.prev; j >= 0; j = c.reqs[j].prev {
		if e := c.reqs[j]; e.won && bytes.Equal(e.key, r.key) {
			return e.rec, true, nil
		}
	}
	var cur Record
	err := c.s.lookup(r.key, func(ts int64, flags byte, payload []byte) error {
		cur = Record{TS: ts, Tombstone: flags&flagTombstone != 0}
		if ts != r.rec.TS || cur.Tombstone != r.rec.Tombstone {
			return nil
		}
		var err error
		c.vbuf, err = decodePayload(c.vbuf[:0], flags, payload)
		cur.Value = c.vbuf
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Record{}, false, nil
	}
	return cur, err == nil, err
}

// keyHash is FNV-1a, enough to spread keys within one batch; collisions are
// resolved by comparing bytes.
func keyHash(k []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range k {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}
