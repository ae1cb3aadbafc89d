package kv

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
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
	stripe  uint32 // the lock that serialises this key's writes
	khash   uint64 // keyHash(key)
	res     Result
	err     error

	// The write's effect on its segment's summary, applied once the batch
	// is: the old record's hash out (hadOld), the new one in (!drop).
	indexed bool
	hadOld  bool
	oldTomb bool
	seg     int
	oldHash uint64
	newHash uint64
	vhash   uint64 // ValueHash of rec.Value, computed before the lock
	curHash uint64 // RecordHash of the stored record it competes with

	own  []byte // ApplyAsync's copies of key and value
	comp []byte // compression output
	vbuf []byte // stored value decoded for a tie-break
	kbuf []byte // the Pebble key
	ibuf []byte // the index key
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
	if err := s.admit(key, rec); err != nil {
		return Result{}, err
	}
	w, err := s.prepare(key, rec, false)
	if err != nil {
		return Result{}, err
	}
	defer putWrite(w)
	return s.commitOpen(w)
}

// commitOpen commits w unless the store is closed; Close waits for it.
func (s *Store) commitOpen(w *write) (Result, error) {
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
	if err := s.admit(key, rec); err != nil {
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

// asyncWriter commits queued ApplyAsync writes until Close closes the
// queue: whatever has queued up, up to maxGroup writes of distinct stripes,
// goes into one batch (one WAL record, one memtable insert pass). It applies
// a group and goes on to the next at once: a completer goroutine waits for
// each group's sync, in order, and runs its callbacks, so the WAL always has
// the next group ready when a sync ends.
func (s *Store) asyncWriter() {
	synced := make(chan appliedGroup, 64)
	completed := make(chan struct{})
	go func() {
		defer close(completed)
		for g := range synced {
			g.a.wait(g.group)
			for _, w := range g.group {
				w.cb(w.res, w.err)
				putWrite(w)
			}
		}
	}()
	defer func() { close(synced); <-completed }()
	var (
		taken [stripes]bool
		carry *write // drained but its stripe was taken: first of the next group
	)
	for {
		w := carry
		carry = nil
		if w == nil {
			var ok bool
			if w, ok = <-s.async; !ok {
				return
			}
		}
		var group []*write
		group, carry = s.takeGroup(w, &taken, maxGroupBytes)
		a := s.applyGroup(group)
		for _, w := range group {
			taken[w.stripe] = false
		}
		synced <- appliedGroup{a, group}
	}
}

// takeGroup returns the writes to commit with first as one batch: first,
// then whatever has queued up, up to maxGroup writes of distinct stripes
// (taken marks them) holding at most maxBytes of keys and payloads together
// (first alone may hold more). carry is the write it drained that did not fit,
// the first of the next group. A closed queue ends the group too: the writer
// exits on its next receive.
func (s *Store) takeGroup(first *write, taken *[stripes]bool, maxBytes int) (group []*write, carry *write) {
	group = []*write{first}
	taken[first.stripe] = true
	size := first.size()
	for len(group) < maxGroup {
		select {
		case w, ok := <-s.async:
			if !ok {
				return group, nil
			}
			if taken[w.stripe] || size+w.size() > maxBytes {
				return group, w
			}
			taken[w.stripe] = true
			size += w.size()
			group = append(group, w)
		default:
			return group, nil
		}
	}
	return group, nil
}

// size is what w adds to a batch, but for a few bytes of framing per entry:
// its key, twice (the record's and the index entry's), and its payload.
func (w *write) size() int { return 2*len(w.key) + len(w.payload) }

// appliedGroup is a group on its way from an async writer to its completer.
type appliedGroup struct {
	a     applied
	group []*write
}

// maxGroup bounds the writes an async writer commits as one batch, and
// maxGroupBytes their bytes: Pebble panics on a batch of 4 GiB, and values
// may be up to 1 GiB each (config.MaxValueBytesCap), so a few large values
// queued together would take the node down. 64 MiB is a default memtable;
// groups of 180 KiB values stay far below it.
const (
	maxGroup      = 256
	maxGroupBytes = 64 << 20
)

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
	res, err := s.commitOpen(w)
	return res.Applied, err
}

// admit refuses writes while the disk is nearly full, counting what the
// write adds (key, header and value). A tombstone over a stored value is
// admitted all the same: once compacted it frees the value's space, which is
// how an operator frees space through the API. A tombstone of a key that
// holds nothing, or already a tombstone, only adds bytes: left through, a
// flood of DELETEs of new keys would fill the disk to 100%, where Pebble's
// WAL writes fail and the node can no longer write or even shut down
// cleanly. So it is refused like a value. Checking the stored record is a
// read, paid only while space is low.
func (s *Store) admit(key []byte, rec Record) error {
	err := s.space.admit(len(key) + hashedHeaderLen + len(rec.Value))
	if err == nil || !rec.Tombstone {
		return err
	}
	if m, serr := s.Stat(key); serr == nil && !m.Tombstone {
		return nil
	}
	return err
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
	w.khash = keyHash(key)
	w.stripe = uint32(w.khash % stripes)
	w.vhash = ValueHash(rec.Value)
	w.flags = flagHashed
	if rec.Tombstone {
		w.flags |= flagTombstone
	} else if !s.opts.NoCompression {
		if c := compressInto(w.comp, rec.Value); c != nil {
			w.comp, w.payload, w.flags = c, c, flagHashed|flagCompressed
		}
	}
	return w, nil
}

func putWrite(w *write) {
	w.key, w.rec, w.payload, w.cb, w.drop, w.err, w.indexed = nil, Record{}, nil, nil, false, nil, false
	for _, b := range []*[]byte{&w.own, &w.comp, &w.vbuf} {
		if cap(*b) > 1<<20 {
			*b = nil // do not pin a burst of large values
		}
	}
	writePool.Put(w)
}

// commit commits one write; see commitGroup.
func (s *Store) commit(w *write) (Result, error) {
	one := [1]*write{w}
	s.commitGroup(one[:])
	return w.res, w.err
}

// commitGroup commits group and waits until it is durable; see applyGroup.
func (s *Store) commitGroup(group []*write) {
	s.applyGroup(group).wait(group)
}

// applied is a group applied to the memtable, its WAL sync still pending.
type applied struct {
	s     *Store
	b     *pebble.Batch // nil when nothing was written or the apply failed
	wrote bool
	err   error
}

// applyGroup resolves each write of group (all of distinct stripes) against
// the stored record under its stripe's lock and applies the winners as one
// batch, without waiting for the WAL sync; wait on the result settles each
// write's res and err. Stripes are locked in ascending order, so groups
// never deadlock. Pebble makes a batch visible before its sync, so the next
// write of a key resolves against it, and coalesces the syncs of batches
// applied meanwhile into one fsync (group commit).
func (s *Store) applyGroup(group []*write) applied {
	slices.SortFunc(group, func(a, b *write) int { return cmp.Compare(a.stripe, b.stripe) })
	for _, w := range group {
		s.stripes[w.stripe].Lock()
	}
	b := s.db.NewBatch()
	for _, w := range group {
		w.res, w.err = s.resolve(b, w)
	}
	a := applied{s: s, b: b, wrote: !b.Empty()}
	if a.wrote {
		if s.opts.Sync == SyncAlways {
			a.err = s.db.ApplyNoSyncWait(b, pebble.Sync)
		} else {
			a.err = s.db.Apply(b, pebble.NoSync)
		}
		if a.err != nil {
			a.wrote, a.b = false, nil // Pebble forbids reusing or closing a batch that failed here
			a.err = fmt.Errorf("kv: commit: %w", a.err)
		}
	}
	if a.wrote {
		s.summarise(group) // visible now, still under the stripe locks
	}
	for _, w := range group {
		s.stripes[w.stripe].Unlock()
	}
	return a
}

// wait waits until the group is durable and settles each write's error.
func (a applied) wait(group []*write) {
	s, err := a.s, a.err
	switch {
	case err != nil:
	case a.wrote && s.opts.Sync == SyncAlways:
		if err = a.b.SyncWait(); err != nil {
			err = fmt.Errorf("kv: sync: %w", err)
		}
	case !a.wrote && s.opts.Sync == SyncAlways:
		// Nothing written, but the answers rest on stored records, which
		// may be concurrent writes still waiting for their sync: acknowledge
		// only once those are durable too.
		if err = s.db.LogData(nil, pebble.Sync); err != nil {
			err = fmt.Errorf("kv: sync: %w", err)
		}
	}
	if a.b != nil {
		a.b.Close()
	}
	if err != nil {
		for _, w := range group {
			if w.err == nil {
				w.err = err
			}
		}
	}
}

// resolve decides w against the stored record and adds what is to be
// written to b. REQUIRES: w's stripe locked.
func (s *Store) resolve(b *pebble.Batch, w *write) (Result, error) {
	cur, found, err := s.current(w)
	if err != nil {
		return Result{}, err
	}
	w.kbuf = appendDataKey(w.kbuf[:0], w.key)
	if w.drop {
		if !found || Newer(cur, w.rec) || Newer(w.rec, cur) {
			return Result{TS: cur.TS}, nil // not the record being handed off
		}
		if err := b.Delete(w.kbuf, nil); err != nil {
			return Result{}, fmt.Errorf("kv: batch delete: %w", err)
		}
		if err := s.index(b, w, true); err != nil {
			return Result{}, err
		}
		return Result{TS: cur.TS, Applied: true}, nil
	}
	if found && !Newer(w.rec, cur) {
		if Newer(cur, w.rec) {
			return Result{TS: cur.TS}, nil
		}
		// Identical record: already current, nothing to write.
		return Result{TS: cur.TS, Applied: true}, nil
	}
	hl := headerSize(w.flags)
	op := b.SetDeferred(len(w.kbuf), hl+len(w.payload))
	copy(op.Key, w.kbuf)
	putHeader(op.Value, w.rec.TS, w.flags, w.vhash)
	copy(op.Value[hl:], w.payload)
	if err := op.Finish(); err != nil {
		return Result{}, fmt.Errorf("kv: batch set: %w", err)
	}
	if err := s.index(b, w, found); err != nil {
		return Result{}, err
	}
	return Result{TS: w.rec.TS, Applied: true}, nil
}

// index adds to b the change of w's index entry (see segments.go): the new
// record's, or its removal for a drop. found says a record was stored
// before; current left its hash in w.curHash. REQUIRES: w's stripe locked.
func (s *Store) index(b *pebble.Batch, w *write, found bool) error {
	w.seg = Segment(w.key)
	w.ibuf = appendIndexKey(w.ibuf[:0], w.seg, w.key)
	w.indexed, w.hadOld, w.oldHash = true, found, w.curHash
	if w.drop {
		if err := b.Delete(w.ibuf, nil); err != nil {
			return fmt.Errorf("kv: index delete: %w", err)
		}
		return nil
	}
	w.newHash = recordHash(w.key, w.rec.TS, w.rec.Tombstone, w.vhash)
	var v [indexValLen]byte
	putIndexValue(v[:], w.rec.TS, w.flags, w.newHash)
	if err := b.Set(w.ibuf, v[:], nil); err != nil {
		return fmt.Errorf("kv: index set: %w", err)
	}
	return nil
}

// summarise folds the applied writes of group into the segment summaries.
func (s *Store) summarise(group []*write) {
	for _, w := range group {
		if !w.indexed || w.err != nil {
			continue
		}
		if w.hadOld {
			s.segs.update(w.seg, w.oldHash, w.oldTomb, -1)
		}
		st := &s.stripes[w.stripe]
		if w.drop {
			st.forget(w.khash, w.key)
		} else {
			s.segs.update(w.seg, w.newHash, w.rec.Tombstone, 1)
			st.remember(w.khash, w.key, Meta{TS: w.rec.TS, Tombstone: w.rec.Tombstone}, w.newHash)
		}
		w.indexed = false
	}
}

// current returns the record w competes with, without its value unless the
// two tie (same timestamp and kind: the value bytes decide), and sets
// w.curHash and w.oldTomb. It reads the key's index entry, a few bytes,
// rather than the record: overwriting a large value must not read the old
// one back (from an sstable, a whole block to load, check and decompress).
func (s *Store) current(w *write) (Record, bool, error) {
	m, h, ok := s.stripes[w.stripe].lookup(w.khash, w.key)
	if !ok {
		var err error
		m, h, err = s.indexEntry(w.key)
		if errors.Is(err, ErrNotFound) {
			return Record{}, false, nil
		}
		if err != nil {
			return Record{}, false, err
		}
	}
	w.oldTomb, w.curHash = m.Tombstone, h
	cur := Record{TS: m.TS, Tombstone: m.Tombstone}
	if m.TS != w.rec.TS || m.Tombstone != w.rec.Tombstone {
		return cur, true, nil
	}
	err := s.lookup(w.key, func(_ int64, flags byte, _ uint64, payload []byte) error {
		var err error
		w.vbuf, err = decodePayload(w.vbuf[:0], flags, payload)
		cur.Value = w.vbuf
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Record{}, false, fmt.Errorf("%w: index entry of %q without its record", ErrCorrupt, w.key)
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
