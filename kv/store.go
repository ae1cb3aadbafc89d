package kv

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// SyncMode says when a committed batch reaches stable storage.
type SyncMode int

const (
	// SyncAlways fsyncs the WAL before any write in the batch is acknowledged.
	SyncAlways SyncMode = iota
	// SyncInterval acknowledges once the batch is in the WAL and fsyncs it
	// every Options.SyncInterval: a crash loses at most that window.
	SyncInterval
	// SyncNone leaves syncing to the operating system.
	SyncNone
)

// ParseSyncMode parses the configuration spelling of a SyncMode.
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "", "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("kv: unknown sync mode %q (want always, interval or none)", s)
}

// Options configures a Store. The zero value is usable.
type Options struct {
	Sync          SyncMode
	SyncInterval  time.Duration // for SyncInterval; default 10ms
	CacheBytes    int64         // Pebble block cache; default 256 MiB
	MemtableBytes int64         // default 64 MiB
	// AsyncWriters is how many goroutines apply ApplyAsync writes, a group
	// at a time, each with a completer that waits for the syncs. Default 1:
	// more split what has queued into smaller groups, and measure slower.
	AsyncWriters int
	// MinFreeBytes refuses writes (ErrDiskFull) while the file system
	// holding the store has less free space: values, and tombstones of keys
	// that hold no value (see admit); 0 disables the check.
	MinFreeBytes int64
	// NoCompression stores values as given even when s2 would shrink them.
	NoCompression bool
	Logger        *slog.Logger
	// FS replaces the operating system's file system (tests use vfs.NewMem).
	FS vfs.FS
}

func (o *Options) setDefaults() {
	if o.SyncInterval <= 0 {
		o.SyncInterval = 10 * time.Millisecond
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 256 << 20
	}
	if o.MemtableBytes <= 0 {
		o.MemtableBytes = 64 << 20
	}
	if o.AsyncWriters <= 0 {
		o.AsyncWriters = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Store is an open Pebble database of LWW records. See the package doc.
type Store struct {
	db   *pebble.DB
	opts Options

	// mu guards closed: Apply and Drop hold it shared for their whole run
	// and ApplyAsync while queueing, so Close (exclusive) waits for them.
	mu       sync.RWMutex
	closed   bool
	async    chan *write     // ApplyAsync's queue to the async writers
	stripes  [stripes]stripe // write locks, and the index entries they made last (recent.go)
	stopped  chan struct{}   // closed when the async writers and syncer exit
	stopSync chan struct{}

	keyBufs sync.Pool // *[]byte scratch for Pebble keys on the read path
	space   *spaceGuard
	segs    *segTable // per-segment summaries for anti-entropy (segments.go)
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	space := newSpaceGuard(dir, opts.MinFreeBytes, opts.MemtableBytes, opts.Logger)
	po := &pebble.Options{
		Cache:              cache,
		MemTableSize:       uint64(opts.MemtableBytes),
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             newPebbleLogger(opts.Logger),
		FS:                 opts.FS,
		EventListener:      &pebble.EventListener{WALCreated: space.walCreated},
	}
	// Large values go to blob files so compactions do not rewrite them:
	// this roughly doubles synced throughput of 180 KiB values (BASELINES).
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           4 << 10,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	db, err := pebble.Open(dir, po)
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("kv: open %s: locked by another process (is another node running on this var dir?): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("kv: open %s: %w", dir, err)
	}
	s := &Store{
		db:       db,
		opts:     opts,
		stopped:  make(chan struct{}),
		stopSync: make(chan struct{}),
	}
	s.keyBufs.New = func() any { b := make([]byte, 0, 256); return &b }
	s.segs = new(segTable)
	if err := s.openSegments(); err != nil {
		db.Close()
		return nil, err
	}
	s.space = space
	space.start()
	var wg sync.WaitGroup
	s.async = make(chan *write, asyncQueue)
	for range opts.AsyncWriters {
		wg.Add(1)
		go func() { defer wg.Done(); s.asyncWriter() }()
	}
	if opts.Sync == SyncInterval {
		wg.Add(1)
		go func() { defer wg.Done(); s.syncLoop() }()
	}
	go func() { wg.Wait(); close(s.stopped) }()
	return s, nil
}

// Close stops accepting writes, commits what is queued, syncs and closes the
// database. Writes racing with Close either complete or fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.async)
	close(s.stopSync)
	s.mu.Unlock()
	<-s.stopped
	s.space.close()
	err := s.db.LogData(nil, pebble.Sync)
	return errors.Join(err, s.db.Close())
}

// syncLoop fsyncs the WAL periodically under SyncInterval.
func (s *Store) syncLoop() {
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopSync:
			return
		case <-t.C:
			if err := s.db.LogData(nil, pebble.Sync); err != nil {
				s.opts.Logger.Error("kv: periodic WAL sync failed", "err", err)
			}
		}
	}
}

// Get returns key's record, tombstones included; ErrNotFound when the store
// has never seen the key. The value is appended to dst[:0], so it is owned by
// the caller and reuses dst's capacity.
func (s *Store) Get(key, dst []byte) (Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Record{}, ErrClosed
	}
	var rec Record
	err := s.lookup(key, func(ts int64, flags byte, _ uint64, payload []byte) error {
		rec = Record{TS: ts, Tombstone: flags&flagTombstone != 0}
		var err error
		rec.Value, err = decodePayload(dst[:0], flags, payload)
		return err
	})
	return rec, err
}

// Stat returns key's timestamp and whether it is a tombstone.
func (s *Store) Stat(key []byte) (Meta, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Meta{}, ErrClosed
	}
	if err := CheckKey(key); err != nil {
		return Meta{}, err
	}
	// The key's index entry holds what Stat returns in a few bytes, and
	// changes with the record in one batch: a large value is not read back
	// (from its blob file) for its timestamp.
	m, _, err := s.indexEntry(key)
	return m, err
}

// lookup calls fn with key's stored header and payload; payload is valid
// only during fn. REQUIRES: the store open (s.mu held shared, or Close
// waiting for the caller).
func (s *Store) lookup(key []byte, fn func(ts int64, flags byte, vhash uint64, payload []byte) error) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	kb := s.keyBufs.Get().(*[]byte)
	*kb = appendDataKey((*kb)[:0], key)
	v, closer, err := s.db.Get(*kb)
	s.keyBufs.Put(kb)
	if errors.Is(err, pebble.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("kv: get: %w", err)
	}
	defer closer.Close()
	ts, flags, vhash, payload, err := parseHeader(v)
	if err != nil {
		return err
	}
	return fn(ts, flags, vhash, payload)
}

// decodePayload appends the stored value to dst, decompressing if needed.
func decodePayload(dst []byte, flags byte, payload []byte) ([]byte, error) {
	if flags&flagCompressed == 0 {
		return append(dst, payload...), nil
	}
	out, err := decompressInto(dst, payload)
	if err != nil {
		return dst, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return out, nil
}

// Scan calls fn for every record (tombstones included) with start <= key <
// end in key order; an empty end means no upper bound. key and rec.Value are
// valid only during fn. fn returning an error stops the scan with it.
//
// The scan holds off Close until it ends, so fn must not call the store's
// writing methods.
func (s *Store) Scan(start, end []byte, fn func(key []byte, rec Record) error) error {
	var buf []byte
	return s.scan(start, end, func(key []byte, ts int64, flags byte, payload []byte) error {
		rec := Record{TS: ts, Tombstone: flags&flagTombstone != 0}
		var err error
		if rec.Value, err = decodePayload(buf[:0], flags, payload); err != nil {
			return err
		}
		buf = rec.Value
		return fn(key, rec)
	})
}

// ScanMeta is Scan without the values: it calls fn with each record's
// timestamp and kind, and decompresses nothing (key listing).
func (s *Store) ScanMeta(start, end []byte, fn func(key []byte, m Meta) error) error {
	return s.scan(start, end, func(key []byte, ts int64, flags byte, _ []byte) error {
		return fn(key, Meta{TS: ts, Tombstone: flags&flagTombstone != 0})
	})
}

// scan calls fn with the stored header and payload of every record with
// start <= key < end (an empty end: no upper bound), in key order.
func (s *Store) scan(start, end []byte, fn func(key []byte, ts int64, flags byte, payload []byte) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	lower := appendDataKey(nil, start)
	upper := []byte{dataPrefix + 1}
	if len(end) > 0 {
		upper = appendDataKey(nil, end)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("kv: scan: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("kv: scan: %w", err)
		}
		ts, flags, _, payload, err := parseHeader(v)
		if err != nil {
			it.Close()
			return fmt.Errorf("kv: scan key %q: %w", it.Key()[1:], err)
		}
		if err := fn(it.Key()[1:], ts, flags, payload); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// EstimateBytes estimates the bytes on disk of the records with start <= key
// < end (an empty end: no upper bound). Records still in the memtable count
// for nothing; 0 on error.
func (s *Store) EstimateBytes(start, end []byte) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0
	}
	upper := []byte{dataPrefix + 1}
	if len(end) > 0 {
		upper = appendDataKey(nil, end)
	}
	n, err := s.db.EstimateDiskUsage(appendDataKey(nil, start), upper)
	if err != nil {
		return 0
	}
	return n
}

// pebbleLogger routes Pebble's logs to slog; its chatty info goes to debug.
// Errors are rate-limited: on a full disk Pebble retries a failing flush
// every few milliseconds, and each retry logs.
type pebbleLogger struct {
	l       *slog.Logger
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func newPebbleLogger(l *slog.Logger) *pebbleLogger { return &pebbleLogger{l: l} }

func (p *pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p *pebbleLogger) Errorf(format string, args ...any) {
	p.mu.Lock()
	if time.Since(p.last) < time.Second {
		p.dropped++
		p.mu.Unlock()
		return
	}
	dropped := p.dropped
	p.last, p.dropped = time.Now(), 0
	p.mu.Unlock()
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble", "suppressed", dropped)
}

func (p *pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble", "fatal", true)
	panic(fmt.Sprintf("pebble: "+format, args...))
}
