package eventloop

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
)

// fakeStore is an in-memory Handler with last-write-wins semantics. With maxDelay set it
// answers every request from another goroutine after a random delay, so that replies
// overtake each other.
type fakeStore struct {
	maxDelay time.Duration
	// slowKey, when a Get asks for it, is answered only after slowDelay.
	slowKey   string
	slowDelay time.Duration

	mu   sync.Mutex
	recs map[string]codec.Record

	outOfOrder atomic.Int64 // replies sent after a reply to a later request
	lastID     atomic.Uint64
}

func newFakeStore() *fakeStore { return &fakeStore{recs: make(map[string]codec.Record)} }

// Handle implements Handler.
func (f *fakeStore) Handle(req *codec.Request, rw *ReplyWriter) {
	delay := time.Duration(0)
	if f.maxDelay > 0 {
		delay = rand.N(f.maxDelay)
	}
	if f.slowKey != "" && req.Op == codec.OpGet && string(req.Key) == f.slowKey {
		delay = f.slowDelay
	}
	if delay == 0 {
		f.serve(req, rw)
		return
	}
	cp := copyRequest(req) // req is valid only during Handle
	time.AfterFunc(delay, func() { f.serve(cp, rw) })
}

func copyRequest(req *codec.Request) *codec.Request {
	cp := *req
	cp.Key = bytes.Clone(req.Key)
	cp.End = bytes.Clone(req.End)
	cp.Value = bytes.Clone(req.Value)
	if req.Op == codec.OpBatchSet {
		it := req.Records
		var recs []codec.Record
		for r, ok := it.Next(); ok; r, ok = it.Next() {
			recs = append(recs, codec.Record{Key: bytes.Clone(r.Key), TS: r.TS, Flags: r.Flags, Value: bytes.Clone(r.Value)})
		}
		frame := codec.AppendBatchSet(nil, req.ID, recs)
		var dec codec.Request
		if err := codec.DecodeRequest(frame, &dec); err != nil {
			panic(err)
		}
		cp.Records = dec.Records
	}
	return &cp
}

func (f *fakeStore) serve(req *codec.Request, rw *ReplyWriter) {
	if last := f.lastID.Load(); req.ID < last {
		f.outOfOrder.Add(1)
	} else {
		f.lastID.CompareAndSwap(last, req.ID)
	}
	switch req.Op {
	case codec.OpGet:
		rec, ok := f.get(req.Key)
		if !ok {
			_ = rw.Get(codec.StatusNotFound, 0, 0, nil)
		} else if len(rec.Value) >= 8<<10 {
			// Stored values are never mutated, so they can go out without a copy.
			_ = rw.GetRef(codec.StatusOK, rec.TS, rec.Flags, rec.Value, nil)
		} else {
			_ = rw.Get(codec.StatusOK, rec.TS, rec.Flags, rec.Value)
		}
	case codec.OpStat:
		if rec, ok := f.get(req.Key); ok {
			_ = rw.Stat(codec.StatusOK, rec.TS, rec.Flags)
		} else {
			_ = rw.Stat(codec.StatusNotFound, 0, 0)
		}
	case codec.OpSet:
		res := f.set(codec.Record{Key: req.Key, TS: req.TS, Flags: req.Flags, Value: req.Value})
		_ = rw.Set(res.Status, res.TS)
	case codec.OpBatchSet:
		it := req.Records
		var results []codec.Result
		for r, ok := it.Next(); ok; r, ok = it.Next() {
			results = append(results, f.set(r))
		}
		_ = rw.Reply(func(dst []byte, id uint64) []byte { return codec.AppendBatchSetReply(dst, id, results) })
	case codec.OpScan:
		_ = rw.SendFrame(f.scan(req, rw.ID()), nil)
	default:
		_ = rw.Error(codec.StatusUnsupported, "fake store: "+req.Op.String())
	}
}

func (f *fakeStore) get(key []byte) (codec.Record, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[string(key)]
	return r, ok
}

// set applies r if it is newer than the stored record (ties broken on the value bytes).
func (f *fakeStore) set(r codec.Record) codec.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.recs[string(r.Key)]
	if ok && (old.TS > r.TS || old.TS == r.TS && bytes.Compare(old.Value, r.Value) >= 0) {
		return codec.Result{Status: codec.StatusStale, TS: old.TS}
	}
	r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	f.recs[string(r.Key)] = r
	return codec.Result{Status: codec.StatusApplied, TS: r.TS}
}

func (f *fakeStore) inRange(start, end []byte) []codec.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var recs []codec.Record
	for _, r := range f.recs {
		if bytes.Compare(r.Key, start) >= 0 && (len(end) == 0 || bytes.Compare(r.Key, end) < 0) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b codec.Record) int { return bytes.Compare(a.Key, b.Key) })
	return recs
}

func (f *fakeStore) scan(req *codec.Request, id uint64) []byte {
	recs := f.inRange(req.Key, req.End)
	w := codec.BeginScanReply(nil, id)
	for i, r := range recs {
		if req.Limit > 0 && w.Len() == int(req.Limit) {
			return w.Finish(true, recs[i].Key)
		}
		if req.Mode != codec.ScanValues {
			r.Value = nil
		}
		w.Add(r)
	}
	return w.Finish(false, nil)
}

// testLogger discards logs unless TAKO_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("TAKO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer starts a server on a free loopback port and stops it when the test ends.
func startServer(t testing.TB, h Handler, addr string, mod ...func(*ServerConfig)) *Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cfg := ServerConfig{Addr: addr, NodeID: "server-1", Handler: h, Logger: testLogger(), NumLoops: 2}
	for _, m := range mod {
		m(&cfg)
	}
	s := NewServer(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(t, s) })
	return s
}

func stopServer(t testing.TB, s *Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// newTestClient returns a client for s that is closed when the test ends.
func newTestClient(t testing.TB, addr string, mod ...func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{Addr: addr, NodeID: "client-1", Logger: testLogger()}
	for _, m := range mod {
		m(&cfg)
	}
	c := NewClient(cfg)
	t.Cleanup(func() { c.Close() })
	return c
}

// testCtx bounds every request of a test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
