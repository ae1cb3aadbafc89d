package kv

import (
	"bytes"
	"sync"
)

// A write's last-write-wins decision needs the stored record's timestamp,
// kind and hash: its index entry. Reading it from Pebble is a search of
// every memtable and, below them, of the sstables' indexes; with many
// writers on a few cores that search was the largest single cost of a
// replica's write (a fifth of a node's CPU under the cluster's durable
// 100 B ingest). So each stripe remembers the index entries its writes
// made, for the last few keys it wrote, and a write of one of those keys
// decides from memory.
//
// Invariant: an entry is exactly the key's index entry in Pebble's current
// state. Every change of an index entry is a write resolved and applied
// under its key's stripe lock (applyGroup), and the entry changes there,
// under the same lock, once the batch holding the change is applied
// (summarise): a drop forgets the key, any other write records its new
// entry. A batch that failed to apply changed nothing and the entry stays.
// The store starts with none. An entry may be missing (never written
// since the store opened, or evicted), never wrong: a miss reads Pebble.

// recentPerStripe bounds each stripe's entries: 64 × 1024 stripes remember
// the last 64 Ki keys written, a few MiB.
const recentPerStripe = 64

// stripe is one write lock and the entries of the keys it wrote last.
type stripe struct {
	sync.Mutex
	recent map[uint64]recentEntry  // by keyHash; REQUIRES: held
	order  [recentPerStripe]uint64 // keyHashes in the order they came; REQUIRES: held
	next   int                     // the slot of order to reuse next; REQUIRES: held
	filled bool                    // every slot of order is used; REQUIRES: held
}

type recentEntry struct {
	key  []byte // owned
	meta Meta
	hash uint64 // RecordHash of the stored record
}

// lookup returns key's index entry if the stripe remembers it.
// REQUIRES: st held.
func (st *stripe) lookup(h uint64, key []byte) (Meta, uint64, bool) {
	e, ok := st.recent[h]
	if !ok || !bytes.Equal(e.key, key) {
		return Meta{}, 0, false
	}
	return e.meta, e.hash, true
}

// remember records key's new index entry; a key new to the stripe evicts
// the one that came first of the last recentPerStripe. REQUIRES: st held.
func (st *stripe) remember(h uint64, key []byte, m Meta, hash uint64) {
	if st.recent == nil {
		st.recent = make(map[uint64]recentEntry, recentPerStripe)
	}
	e, ok := st.recent[h]
	if !ok {
		if st.filled {
			// The oldest slot's key (if still there: a drop or a hash
			// shared with a newer key may have taken it) goes; its buffer
			// is reused.
			if victim, ok := st.recent[st.order[st.next]]; ok {
				delete(st.recent, st.order[st.next])
				e.key = victim.key
			}
		}
		st.order[st.next] = h
		st.next = (st.next + 1) % recentPerStripe
		st.filled = st.filled || st.next == 0
	}
	e.key = append(e.key[:0], key...)
	e.meta, e.hash = m, hash
	st.recent[h] = e
}

// forget drops key's entry (its index entry was deleted). REQUIRES: st held.
func (st *stripe) forget(h uint64, key []byte) {
	if e, ok := st.recent[h]; ok && bytes.Equal(e.key, key) {
		delete(st.recent, h)
	}
}
