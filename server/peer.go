package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/hashring"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/kv/hlc"
)

// peerHandler serves the peer protocol from this node's store. It runs on
// gnet's event loops: writes go to the store's group-commit queue
// (ApplyAsync) and are answered when durable; point reads run on the loop
// while they are fast (inlineReads) and otherwise go to a pool of reader
// goroutines as pooled jobs (no allocation); scans and digests always go to
// the same readers. A full queue answers "unavailable" — except a point
// read, which then runs on the loop rather than fail a read quorum.
//
// Writes (Set, BatchSet) of a key this node does not replicate in any live
// deployment of its configuration, nor of the one before it, are refused
// with an error naming the reason, logged (rate-limited) and not stored
// (Cluster.mayStore): every legitimate writer — replication, hinted
// hand-off, read repair, anti-entropy and migration copies — writes only to
// a key's replicas under its configuration, which is this node's or, for a
// poll interval after a change, the previous one; so such a write is
// misrouted (or comes from a process configurations behind).
type peerHandler struct {
	store    *kv.Store
	clock    *hlc.Clock // observes records that arrive; refuses those too far ahead
	owns     ownership  // nil: every key is this node's
	log      *slog.Logger
	skewed   httpproxy.LogLimiter // logs refused records
	notOwned httpproxy.LogLimiter // logs writes of keys this node does not own
	points   chan *pointRead
	reads    chan func()
	wg       sync.WaitGroup
	inline   inlineReads
}

// pointRead is a queued get or stat; pooled with its key buffer.
type pointRead struct {
	op    codec.Op
	key   []byte
	rw    *eventloop.ReplyWriter
	h     *peerHandler
	retry func() // queues p again; made once per pooled pointRead
}

var pointReads = sync.Pool{New: func() any { return new(pointRead) }}

// newPointRead takes a pooled pointRead for a request (the key is copied: req dies with
// the Handle call).
func (h *peerHandler) newPointRead(req *codec.Request, rw *eventloop.ReplyWriter) *pointRead {
	p := pointReads.Get().(*pointRead)
	if p.retry == nil {
		p.retry = func() { p.h.queuePoint(p) }
	}
	p.op, p.key, p.rw, p.h = req.Op, append(p.key[:0], req.Key...), rw, h
	return p
}

// queuePoint hands p to the readers, or runs it here when their queue is full. It never
// waits: it runs on the event loop (Handle, or a read the connection's budget parked).
func (h *peerHandler) queuePoint(p *pointRead) {
	select {
	case h.points <- p:
	default:
		p.run()
	}
}

// run answers the read and returns p to its pool. A Get waits for room in its
// connection's reply budget (rw.Admit calls p.retry then) and is dropped with its
// connection, before the store is read.
func (p *pointRead) run() (valueBytes int) {
	if p.op == codec.OpGet && !p.rw.Admit(p.retry) {
		return 0 // parked (p is the connection's until retry) or dropped (left to the GC)
	}
	n := p.h.read(p.op, p.key, p.rw)
	p.key, p.rw, p.h = p.key[:0], nil, nil
	pointReads.Put(p)
	return n
}

const (
	peerReaders  = 16
	scanMaxCount = 1000
	scanMaxBytes = 4 << 20
	zeroCopyMin  = 8 << 10 // values from this size are sent without a copy
)

// ownership reports whether this node replicates key in a live deployment,
// and the version of the configuration that says so.
type ownership func(key []byte) (bool, string)

func newPeerHandler(store *kv.Store, clock *hlc.Clock, owns ownership, log *slog.Logger) *peerHandler {
	h := &peerHandler{store: store, clock: clock, owns: owns, log: log, points: make(chan *pointRead, 4096), reads: make(chan func(), 1024)}
	for range peerReaders {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.serveReads()
		}()
	}
	return h
}

// serveReads runs queued reads until close.
func (h *peerHandler) serveReads() {
	points, reads := h.points, h.reads
	for points != nil || reads != nil {
		select {
		case p, ok := <-points:
			if !ok {
				points = nil
				continue
			}
			p.run()
		case job, ok := <-reads:
			if !ok {
				reads = nil
				continue
			}
			job()
		}
	}
}

// close stops the readers after the queued reads ran. REQUIRES: the peer
// server is stopped, so no Handle call is running or will come.
func (h *peerHandler) close() {
	close(h.points)
	close(h.reads)
	h.wg.Wait()
}

// Handle implements eventloop.Handler.
func (h *peerHandler) Handle(req *codec.Request, rw *eventloop.ReplyWriter) {
	switch req.Op {
	case codec.OpSet:
		h.set(req, rw)
	case codec.OpBatchSet:
		h.batchSet(req, rw)
	case codec.OpGet, codec.OpStat:
		p := h.newPointRead(req, rw)
		if start, ok := h.inline.allow(req.Op, h.log); ok {
			n := p.run()
			h.inline.ran(start, n, h.log)
		} else {
			h.queuePoint(p)
		}
	case codec.OpScan:
		start, end := append([]byte(nil), req.Key...), append([]byte(nil), req.End...)
		limit, limitBytes, mode := req.Limit, req.LimitBytes, req.Mode
		h.offload(rw, func() { h.scan(start, end, limit, limitBytes, mode, rw) })
	case codec.OpSums:
		ranges := make([]codec.SegmentRange, req.Ranges.Len())
		for i := range ranges {
			ranges[i] = req.Ranges.At(i)
		}
		shift := req.Shift
		h.offload(rw, func() {
			sums := segmentSums(h.store, shift, ranges)
			rw.Reply(func(dst []byte, id uint64) []byte { return codec.AppendSumsReply(dst, id, sums) })
		})
	case codec.OpPurge:
		var recs []codec.Record
		it := req.Records
		for r, ok := it.Next(); ok; r, ok = it.Next() {
			recs = append(recs, codec.Record{Key: bytes.Clone(r.Key), TS: r.TS, Flags: r.Flags, Value: bytes.Clone(r.Value)})
		}
		h.offload(rw, func() {
			results := make([]codec.Result, len(recs))
			if _, err := purge(h.store, recs, results); err != nil {
				rw.Error(errorStatus(err), err.Error())
				return
			}
			rw.Reply(func(dst []byte, id uint64) []byte { return codec.AppendPurgeReply(dst, id, results) })
		})
	case codec.OpSegmentScan:
		seg, after, limit := int(req.Segment), append([]byte(nil), req.Key...), req.Limit
		h.offload(rw, func() { h.segmentScan(seg, after, limit, rw) })
	default:
		rw.Error(codec.StatusUnsupported, "op "+req.Op.String()+" not served")
	}
}

// offload hands a range operation to the readers, or refuses it when they
// are all busy and the queue is full: the event loop never waits. The job
// starts only once its connection's reply budget has room (it is parked
// until then) and is dropped with its connection: scans build replies of
// up to scanMaxBytes, and nobody reads those of a closed connection.
func (h *peerHandler) offload(rw *eventloop.ReplyWriter, job func()) {
	var admitted func()
	admitted = func() {
		if rw.Admit(func() { h.offload(rw, admitted) }) {
			job()
		}
	}
	select {
	case h.reads <- admitted:
	default:
		rw.Error(codec.StatusUnavailable, "node busy: too many range operations queued")
	}
}

// errorStatus is the peer status for a store error.
func errorStatus(err error) codec.Status {
	switch {
	case errors.Is(err, kv.ErrDiskFull):
		return codec.StatusDiskFull // the coordinator answers 507 when every replica says so
	case errors.Is(err, kv.ErrBusy):
		return codec.StatusUnavailable
	}
	return codec.StatusError
}

func recordOf(ts int64, flags uint8, value []byte) kv.Record {
	return kv.Record{TS: ts, Tombstone: flags&codec.Tombstone != 0, Value: value}
}

func flagsOf(tombstone bool) uint8 {
	if tombstone {
		return codec.Tombstone
	}
	return 0
}

func setStatus(res kv.Result) codec.Status {
	if res.Applied {
		return codec.StatusApplied
	}
	return codec.StatusStale
}

// errNotOwner refuses a write of a key this node does not replicate.
var errNotOwner = errors.New("not an owner: this node replicates the key in no live deployment")

// admit checks a record that arrived from a peer and observes its
// timestamp: one of a key this node does not own, or stamped beyond
// max_clock_skew, is refused, never stored.
func (h *peerHandler) admit(key []byte, ts int64) error {
	if h.owns != nil {
		if ok, version := h.owns(key); !ok {
			h.notOwned.Warn(h.log, "refused a peer write of a key this node does not own", "key", fmt.Sprintf("%.64q", key), "config", version)
			return fmt.Errorf("%w of configuration %s", errNotOwner, version)
		}
	}
	if err := h.clock.Check(ts); err != nil {
		h.skewed.Warn(h.log, "refused a peer record", "key", fmt.Sprintf("%.64q", key), "err", err)
		return err
	}
	h.clock.Observe(ts)
	return nil
}

func (h *peerHandler) set(req *codec.Request, rw *eventloop.ReplyWriter) {
	if err := h.admit(req.Key, req.TS); err != nil {
		rw.Error(codec.StatusError, err.Error())
		return
	}
	h.store.ApplyAsync(req.Key, recordOf(req.TS, req.Flags, req.Value), func(res kv.Result, err error) {
		if err != nil {
			rw.Error(errorStatus(err), err.Error())
			return
		}
		rw.Set(setStatus(res), res.TS)
	})
}

func (h *peerHandler) batchSet(req *codec.Request, rw *eventloop.ReplyWriter) {
	n := req.Records.Len()
	results := make([]codec.Result, n)
	var mu sync.Mutex
	left, failed := n, error(nil)
	finish := func() {
		if failed != nil {
			rw.Error(errorStatus(failed), failed.Error())
			return
		}
		rw.Reply(func(dst []byte, id uint64) []byte { return codec.AppendBatchSetReply(dst, id, results) })
	}
	if n == 0 {
		finish()
		return
	}
	// One record beyond max_clock_skew, or of a key this node does not own,
	// refuses the whole batch, before any is applied: batch results carry no
	// per-record error (and a refused record must not pass for stored: a
	// healer drops what every owner confirmed).
	for it := req.Records; ; {
		r, ok := it.Next()
		if !ok {
			break
		}
		if err := h.admit(r.Key, r.TS); err != nil {
			rw.Error(codec.StatusError, err.Error())
			return
		}
	}
	it := req.Records
	for i := 0; ; i++ {
		r, ok := it.Next()
		if !ok {
			break
		}
		h.store.ApplyAsync(r.Key, recordOf(r.TS, r.Flags, r.Value), func(res kv.Result, err error) {
			mu.Lock()
			results[i] = codec.Result{Status: setStatus(res), TS: res.TS}
			if err != nil && failed == nil {
				failed = err
			}
			left--
			last := left == 0
			mu.Unlock()
			if last {
				finish()
			}
		})
	}
}

// read answers a Get or a Stat and returns the bytes of the value it sent.
func (h *peerHandler) read(op codec.Op, key []byte, rw *eventloop.ReplyWriter) (valueBytes int) {
	if op == codec.OpStat {
		m, err := h.store.Stat(key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			rw.Stat(codec.StatusNotFound, 0, 0)
		case err != nil:
			rw.Error(codec.StatusError, err.Error())
		default:
			rw.Stat(codec.StatusOK, m.TS, flagsOf(m.Tombstone))
		}
		return
	}
	buf := getBuf()
	rec, err := h.store.Get(key, *buf)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		putBuf(buf)
		rw.Get(codec.StatusNotFound, 0, 0, nil)
	case err != nil:
		putBuf(buf)
		rw.Error(codec.StatusError, err.Error())
	case len(rec.Value) < zeroCopyMin:
		// Copying a small value into the reply costs less than the closure
		// that would return the buffer later.
		rw.Get(codec.StatusOK, rec.TS, flagsOf(rec.Tombstone), rec.Value)
		*buf = rec.Value
		putBuf(buf)
	default:
		*buf = rec.Value
		// A large value goes out from our buffer without another copy.
		rw.GetRef(codec.StatusOK, rec.TS, flagsOf(rec.Tombstone), rec.Value, func() { putBuf(buf) })
	}
	return len(rec.Value)
}

var valueBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func getBuf() *[]byte { return valueBufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // let huge buffers go
	}
	*b = (*b)[:0]
	valueBufs.Put(b)
}

// scan answers a Scan with at most limit records and about limitBytes of
// keys and values, and where to resume.
func (h *peerHandler) scan(start, end []byte, limit, limitBytes uint32, mode codec.ScanMode, rw *eventloop.ReplyWriter) {
	recs, next, err := scanRecords(h.store, start, end, limit, limitBytes, mode)
	if err != nil {
		rw.Error(codec.StatusError, err.Error())
		return
	}
	rw.Reply(func(dst []byte, id uint64) []byte {
		return codec.AppendScanReply(dst, id, recs, next != nil, next)
	})
}

// scanRecords returns the records of store with start <= key < end (end
// empty: no upper bound), at most limit of them and about limitBytes of keys
// and values (0, or more than a peer reply holds: the peer maximum), with
// what mode asks for in their values; next is where to resume, nil when the
// range is done.
func scanRecords(store *kv.Store, start, end []byte, limit, limitBytes uint32, mode codec.ScanMode) (recs []codec.Record, next []byte, err error) {
	if limit == 0 || limit > scanMaxCount {
		limit = scanMaxCount
	}
	if limitBytes == 0 || limitBytes > scanMaxBytes {
		limitBytes = scanMaxBytes
	}
	var size uint32
	errFull := errors.New("full")
	add := func(key []byte, m kv.Meta, value []byte) error {
		if uint32(len(recs)) >= limit || size >= limitBytes {
			next = append([]byte(nil), key...)
			return errFull
		}
		size += uint32(len(key) + len(value))
		recs = append(recs, codec.Record{Key: append([]byte(nil), key...), TS: m.TS, Flags: flagsOf(m.Tombstone), Value: value})
		return nil
	}
	if mode == codec.ScanKeys {
		// Key listing: no value is read out of its compression.
		err = store.ScanMeta(start, end, func(key []byte, m kv.Meta) error { return add(key, m, nil) })
	} else {
		err = store.Scan(start, end, func(key []byte, rec kv.Record) error {
			var v []byte
			switch mode {
			case codec.ScanValues:
				v = append([]byte(nil), rec.Value...)
			case codec.ScanHashes:
				v = binary.BigEndian.AppendUint64(nil, valueHash(rec.Value))
			}
			return add(key, rec.Meta(), v)
		})
	}
	if err != nil && err != errFull {
		return nil, nil, err
	}
	return recs, next, nil
}

// segmentScan answers a SegmentScan with at most limit records of segment
// seg after the key after, each with its record hash as value.
func (h *peerHandler) segmentScan(seg int, after []byte, limit uint32, rw *eventloop.ReplyWriter) {
	if limit == 0 || limit > scanMaxCount {
		limit = scanMaxCount
	}
	var recs []codec.Record
	var next []byte
	errFull := errors.New("full")
	err := h.store.ScanSegment(seg, after, func(key []byte, m kv.Meta, hash uint64) error {
		if uint32(len(recs)) >= limit {
			return errFull
		}
		recs = append(recs, codec.Record{Key: append([]byte(nil), key...), TS: m.TS, Flags: flagsOf(m.Tombstone),
			Value: binary.BigEndian.AppendUint64(nil, hash)})
		return nil
	})
	if err != nil && err != errFull {
		rw.Error(codec.StatusError, err.Error())
		return
	}
	more := err == errFull
	if len(recs) > 0 {
		next = recs[len(recs)-1].Key
	}
	rw.Reply(func(dst []byte, id uint64) []byte {
		w := codec.BeginSegmentScanReply(dst, id)
		for _, r := range recs {
			w.Add(r)
		}
		return w.Finish(more, next)
	})
}

// valueHash identifies a value in ScanHashes replies: healing compares
// records that tie on timestamp and kind by it.
func valueHash(v []byte) uint64 { return hashring.Hash(v) }
