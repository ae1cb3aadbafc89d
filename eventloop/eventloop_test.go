package eventloop

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
)

func TestRoundTrip(t *testing.T) {
	store := newFakeStore()
	srv := startServer(t, store, "")
	c := newTestClient(t, srv.Addr().String())
	ctx := testCtx(t)

	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Get of a missing key.
	resp, err := c.Get(ctx, []byte("k1"))
	if err != nil || resp.Status != codec.StatusNotFound {
		t.Fatalf("get missing: %v %+v", err, resp)
	}
	resp.Release()

	checkMeta := func(name string, m Meta, err error, status codec.Status, ts int64, flags uint8) {
		t.Helper()
		if err != nil || m.Status != status || m.TS != ts || m.Flags != flags {
			t.Fatalf("%s: %+v, %v; want %s ts=%d flags=%d", name, m, err, status, ts, flags)
		}
	}
	checkGet := func(key string, status codec.Status, ts int64, flags uint8, value []byte) {
		t.Helper()
		resp, err := c.Get(ctx, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Release()
		if resp.Status != status || resp.TS != ts || resp.Flags != flags || !bytes.Equal(resp.Value, value) {
			t.Fatalf("get %s: %s ts=%d flags=%d %d bytes; want %s ts=%d flags=%d %d bytes",
				key, resp.Status, resp.TS, resp.Flags, len(resp.Value), status, ts, flags, len(value))
		}
	}

	m, err := c.Set(ctx, []byte("k1"), 100, 0, []byte("v1"))
	checkMeta("set", m, err, codec.StatusApplied, 100, 0)
	m, err = c.Set(ctx, []byte("k1"), 50, 0, []byte("old"))
	checkMeta("stale set", m, err, codec.StatusStale, 100, 0)
	checkGet("k1", codec.StatusOK, 100, 0, []byte("v1"))
	m, err = c.Stat(ctx, []byte("k1"))
	checkMeta("stat", m, err, codec.StatusOK, 100, 0)
	m, err = c.Stat(ctx, []byte("nope"))
	checkMeta("stat missing", m, err, codec.StatusNotFound, 0, 0)
	m, err = c.Delete(ctx, []byte("k1"), 200)
	checkMeta("delete", m, err, codec.StatusApplied, 200, 0)
	checkGet("k1", codec.StatusOK, 200, codec.Tombstone, nil)

	// 180 KiB values: written zero-copy by the client, served zero-copy (GetRef) by the store.
	big := bytes.Repeat([]byte("0123456789abcdef"), 180<<10/16)
	m, err = c.Set(ctx, []byte("big"), 1, 0, big)
	checkMeta("set big", m, err, codec.StatusApplied, 1, 0)
	checkGet("big", codec.StatusOK, 1, 0, big)

	resp, err = c.BatchSet(ctx, []codec.Record{
		{Key: []byte("a"), TS: 1, Value: []byte("va")},
		{Key: []byte("b"), TS: 2, Value: []byte("vb")},
		{Key: []byte("big"), TS: 0, Value: []byte("older")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []codec.Result{{Status: codec.StatusApplied, TS: 1}, {Status: codec.StatusApplied, TS: 2}, {Status: codec.StatusStale, TS: 1}}
	if resp.Results.Len() != len(want) {
		t.Fatalf("batch: %d results", resp.Results.Len())
	}
	for i, w := range want {
		if got := resp.Results.At(i); got != w {
			t.Fatalf("batch result %d = %+v, want %+v", i, got, w)
		}
	}
	resp.Release()

	resp, err = c.Scan(ctx, []byte("a"), []byte("k"), 2, 0, codec.ScanValues)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for it := resp.Records; it.Len() > 0; {
		r, _ := it.Next()
		got = append(got, fmt.Sprintf("%s=%d", r.Key, len(r.Value)))
	}
	if fmt.Sprint(got) != "[a=2 b=2]" || !resp.More || string(resp.Next) != "big" {
		t.Fatalf("scan: %v more=%v next=%q", got, resp.More, resp.Next)
	}
	resp.Release()

	// An op the server does not know comes back as StatusUnsupported; the connection lives on.
	_, err = c.Do(ctx, func(dst []byte, id uint64) []byte {
		dst = codec.AppendPing(dst, id, nil)
		dst[len(dst)-codec.HeaderSize+1] = 200
		return dst
	})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != codec.StatusUnsupported {
		t.Fatalf("unknown op: %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStatusError(t *testing.T) {
	srv := startServer(t, HandlerFunc(func(req *codec.Request, rw *ReplyWriter) {
		_ = rw.Error(codec.StatusError, "disk on fire")
		if err := rw.Error(codec.StatusError, "twice"); !errors.Is(err, ErrReplied) {
			panic(err)
		}
	}), "")
	c := newTestClient(t, srv.Addr().String())
	_, err := c.Get(testCtx(t), []byte("k"))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != codec.StatusError || se.Msg != "disk on fire" || se.Op != codec.OpGet {
		t.Fatalf("err = %v", err)
	}
}

// TestPipelinedOutOfOrder runs 10k requests from many goroutines over two connections
// while the handler answers each after a random delay.
func TestPipelinedOutOfOrder(t *testing.T) {
	store := newFakeStore()
	store.maxDelay = 2 * time.Millisecond
	srv := startServer(t, store, "")
	c := newTestClient(t, srv.Addr().String())
	ctx := testCtx(t)

	const workers, perWorker = 50, 100 // 2 requests each: 10k
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				key := fmt.Appendf(nil, "w%d-k%d", w, i)
				val := fmt.Appendf(nil, "value-%d-%d", w, i)
				if m, err := c.Set(ctx, key, int64(i+1), 0, val); err != nil || m.Status != codec.StatusApplied {
					errc <- fmt.Errorf("set %s: %+v %v", key, m, err)
					return
				}
				resp, err := c.Get(ctx, key)
				if err != nil {
					errc <- err
					return
				}
				if !bytes.Equal(resp.Value, val) || resp.TS != int64(i+1) {
					errc <- fmt.Errorf("get %s = %q ts %d", key, resp.Value, resp.TS)
				}
				resp.Release()
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if store.outOfOrder.Load() == 0 {
		t.Fatal("no reply overtook another: the test did not exercise out-of-order replies")
	}
}

// rawConn dials the server without the client, for speaking broken protocol.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc
}

// readReply reads one reply frame from nc.
func readReply(t *testing.T, nc net.Conn) codec.Reply {
	t.Helper()
	hdr := make([]byte, codec.HeaderSize)
	if _, err := io.ReadFull(nc, hdr); err != nil {
		t.Fatalf("read reply header: %v", err)
	}
	h, err := codec.ParseHeader(hdr, 0)
	if err != nil {
		t.Fatal(err)
	}
	frame := append(hdr, make([]byte, h.BodyLen)...)
	if _, err := io.ReadFull(nc, frame[codec.HeaderSize:]); err != nil {
		t.Fatal(err)
	}
	var r codec.Reply
	if err := codec.DecodeReply(frame, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// expectEOF checks that the server closed nc.
func expectEOF(t *testing.T, nc net.Conn) {
	t.Helper()
	if n, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection still open (read %d bytes)", n)
	}
}

func hello(t *testing.T, nc net.Conn) {
	t.Helper()
	if _, err := nc.Write(codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte("raw"))); err != nil {
		t.Fatal(err)
	}
	if r := readReply(t, nc); r.Status != codec.StatusOK || r.Op != codec.OpHello || string(r.NodeID) != "server-1" {
		t.Fatalf("hello reply: %+v", r)
	}
}

func TestHandshake(t *testing.T) {
	srv := startServer(t, newFakeStore(), "")
	addr := srv.Addr().String()

	t.Run("version mismatch", func(t *testing.T) {
		nc := rawConn(t, addr)
		_, _ = nc.Write(codec.AppendHello(nil, 0, codec.MaxVersion+1, codec.MaxVersion+5, nil))
		if r := readReply(t, nc); r.Status != codec.StatusVersion || r.Op != codec.OpHello {
			t.Fatalf("reply: %s %s %q", r.Op, r.Status, r.Msg)
		}
		expectEOF(t, nc)
	})
	t.Run("request before hello", func(t *testing.T) {
		nc := rawConn(t, addr)
		_, _ = nc.Write(codec.AppendGet(nil, 5, []byte("k")))
		if r := readReply(t, nc); r.Status != codec.StatusHandshake || r.ID != 5 {
			t.Fatalf("reply: %s id=%d %q", r.Status, r.ID, r.Msg)
		}
		expectEOF(t, nc)
	})
	t.Run("duplicate hello", func(t *testing.T) {
		nc := rawConn(t, addr)
		hello(t, nc)
		_, _ = nc.Write(codec.AppendHello(nil, 0, 1, 1, nil))
		if r := readReply(t, nc); r.Status != codec.StatusBadRequest {
			t.Fatalf("reply: %s %q", r.Status, r.Msg)
		}
		expectEOF(t, nc)
	})
	t.Run("client refused", func(t *testing.T) {
		// A client and a server without a common version: the client reports ErrVersion.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer nc.Close()
					_, _ = io.ReadFull(nc, make([]byte, len(codec.AppendHello(nil, 0, 1, 1, []byte("client-1")))))
					_, _ = nc.Write(codec.AppendErrorReply(nil, codec.OpHello, 0, codec.StatusVersion, "speaks 7..9"))
				}()
			}
		}()
		c := newTestClient(t, ln.Addr().String())
		err = c.Ping(testCtx(t))
		if !errors.Is(err, ErrHandshake) || !errors.Is(err, codec.ErrVersion) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestBadFrames sends broken input on raw connections: each gets an error reply where one
// is possible and is closed, while a client on another connection keeps working.
func TestBadFrames(t *testing.T) {
	srv := startServer(t, newFakeStore(), "", func(cfg *ServerConfig) { cfg.MaxFrame = 1 << 20 })
	addr := srv.Addr().String()
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	if _, err := c.Set(ctx, []byte("k"), 1, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	check := func(name string, send []byte, wantOp codec.Op, wantID uint64, wantStatus codec.Status) {
		t.Run(name, func(t *testing.T) {
			nc := rawConn(t, addr)
			hello(t, nc)
			_, _ = nc.Write(send)
			if wantStatus != 0 {
				r := readReply(t, nc)
				if r.Op != wantOp || r.ID != wantID || r.Status != wantStatus {
					t.Fatalf("reply %s id=%d %s %q; want %s id=%d %s", r.Op, r.ID, r.Status, r.Msg, wantOp, wantID, wantStatus)
				}
			}
			expectEOF(t, nc)
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("other client: %v", err)
			}
		})
	}
	check("garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), codec.OpNone, 0, codec.StatusBadRequest)
	oversize := codec.AppendGet(nil, 7, []byte("k"))
	binary.BigEndian.PutUint32(oversize[4:], 100<<20)
	check("oversize", oversize, codec.OpGet, 7, codec.StatusTooLarge)
	emptyKey := codec.AppendGet(nil, 8, []byte("k"))
	binary.BigEndian.PutUint32(emptyKey[codec.HeaderSize:], 0)
	check("corrupt body", emptyKey, codec.OpGet, 8, codec.StatusBadRequest)
	badFlags := codec.AppendGet(nil, 9, []byte("k"))
	badFlags[3] = 0x80
	check("bad header flags", badFlags, codec.OpGet, 9, codec.StatusBadRequest)

	t.Run("truncated", func(t *testing.T) {
		nc := rawConn(t, addr)
		hello(t, nc)
		frame := codec.AppendSet(nil, 3, []byte("k"), 1, 0, []byte("value"))
		_, _ = nc.Write(frame[:len(frame)-2])
		_ = nc.(*net.TCPConn).CloseWrite() // the rest never comes
		expectEOF(t, nc)
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("other client: %v", err)
		}
	})
	t.Run("unknown op keeps the connection", func(t *testing.T) {
		nc := rawConn(t, addr)
		hello(t, nc)
		unknown := codec.AppendPing(nil, 4, []byte("x"))
		unknown[1] = 250
		_, _ = nc.Write(append(unknown, codec.AppendPing(nil, 5, []byte("y"))...))
		if r := readReply(t, nc); r.Status != codec.StatusUnsupported || r.ID != 4 {
			t.Fatalf("reply: %s id=%d", r.Status, r.ID)
		}
		if r := readReply(t, nc); r.Status != codec.StatusOK || r.ID != 5 || string(r.Value) != "y" {
			t.Fatalf("ping after unknown op: %s id=%d", r.Status, r.ID)
		}
	})
}

// TestFramesPerReadCap pipelines many frames in one write to a server that handles two per
// callback: the rest must still be served (the loop wakes itself up).
func TestFramesPerReadCap(t *testing.T) {
	srv := startServer(t, newFakeStore(), "", func(cfg *ServerConfig) { cfg.MaxFramesPerRead = 2 })
	nc := rawConn(t, srv.Addr().String())
	hello(t, nc)
	var batch []byte
	for i := range 100 {
		batch = codec.AppendPing(batch, uint64(i+1), nil)
	}
	if _, err := nc.Write(batch); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if r := readReply(t, nc); r.ID != uint64(i+1) {
			t.Fatalf("reply %d has id %d", i, r.ID)
		}
	}
}

func TestDeadline(t *testing.T) {
	store := newFakeStore()
	store.slowKey, store.slowDelay = "slow", 300*time.Millisecond
	srv := startServer(t, store, "")
	c := newTestClient(t, srv.Addr().String())
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, []byte("slow"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 250*time.Millisecond {
		t.Fatalf("deadline honoured after %v", el)
	}
	// The late reply is dropped; the connection keeps serving.
	time.Sleep(350 * time.Millisecond)
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestConnDeathFailsPending stops the server under a request that would never be answered:
// the request fails promptly with ErrConnLost instead of waiting for its context.
// startHoldingServer starts a server that answers nothing: each request's
// ReplyWriter goes to held. The test stops it.
func startHoldingServer(t *testing.T) (*Server, chan *ReplyWriter) {
	held := make(chan *ReplyWriter, 1)
	srv := NewServer(ServerConfig{Addr: "127.0.0.1:0", Logger: testLogger(), NumLoops: 1,
		Handler: HandlerFunc(func(req *codec.Request, rw *ReplyWriter) { held <- rw })})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	return srv, held
}

func TestConnDeathFailsPending(t *testing.T) {
	srv, held := startHoldingServer(t)
	c := newTestClient(t, srv.Addr().String())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(testCtx(t), []byte("k"))
		errc <- err
	}()
	rw := <-held
	stopServer(t, srv)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConnLost) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("pending request not failed after the connection died")
	}
	// Replying on a dead connection is harmless.
	if err := rw.Get(codec.StatusNotFound, 0, 0, nil); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("late reply: %v", err)
	}
}

func TestServerRestart(t *testing.T) {
	store := newFakeStore()
	srv := startServer(t, store, "")
	addr := srv.Addr().String()
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	if _, err := c.Set(ctx, []byte("k"), 1, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	stopServer(t, srv)
	if err := c.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with the server down")
	}
	startServer(t, store, addr)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not reconnect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := c.Get(ctx, []byte("k"))
	if err != nil || string(resp.Value) != "v" {
		t.Fatalf("get after restart: %v", err)
	}
	resp.Release()
}

func TestUnavailableBacksOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now
	c := newTestClient(t, addr, func(cfg *ClientConfig) { cfg.Conns = 1 })
	ctx := testCtx(t)
	if err := c.Ping(ctx); err == nil {
		t.Fatal("ping to a closed port succeeded")
	}
	// Within the backoff the client fails at once, without dialling.
	if err := c.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second ping: %v", err)
	}
}

func TestStartPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := NewServer(ServerConfig{Addr: ln.Addr().String(), Handler: newFakeStore(), Logger: testLogger()})
	if err := s.Start(); err == nil {
		stopServer(t, s)
		t.Fatal("Start succeeded on a taken port")
	}
}

// TestStopNoLeaks checks that stopping the server and closing the client leave no
// goroutine behind.
func TestStopNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	store := newFakeStore()
	s := NewServer(ServerConfig{Addr: "127.0.0.1:0", Handler: store, Logger: testLogger(), NumLoops: 2})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := NewClient(ClientConfig{Addr: s.Addr().String(), Logger: testLogger(), Conns: 3})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, _ = c.Set(ctx, fmt.Appendf(nil, "k%d", i), 1, 0, []byte("v"))
		})
	}
	wg.Wait()
	stopServer(t, s)
	c.Close()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseFailsPending closes a client under a request that is never answered.
func TestCloseFailsPending(t *testing.T) {
	held := make(chan *ReplyWriter, 1)
	srv := startServer(t, HandlerFunc(func(req *codec.Request, rw *ReplyWriter) { held <- rw }), "")
	c := NewClient(ClientConfig{Addr: srv.Addr().String(), Logger: testLogger()})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Stat(testCtx(t), []byte("k"))
		errc <- err
	}()
	rw := <-held
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending request: %v", err)
	}
	if err := c.Ping(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("request after close: %v", err)
	}
	_ = rw.Stat(codec.StatusNotFound, 0, 0) // the server side may still answer: no harm
}

// TestRequestTimeout: a request whose context has no deadline, cancellable
// or not, is bounded by ClientConfig.RequestTimeout, and the connection keeps
// serving afterwards.
func TestRequestTimeout(t *testing.T) {
	store := newFakeStore()
	store.slowKey, store.slowDelay = "slow", 300*time.Millisecond
	srv := startServer(t, store, "")
	c := NewClient(ClientConfig{Addr: srv.Addr().String(), RequestTimeout: 30 * time.Millisecond})
	defer c.Close()
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"cancellable, no deadline", cancellable}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := c.Get(tc.ctx, []byte("slow"))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v", err)
			}
			if el := time.Since(start); el > 250*time.Millisecond {
				t.Fatalf("timeout honoured after %v", el)
			}
			time.Sleep(350 * time.Millisecond)
			if err := c.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStuckReaderIsDisconnected: a client that sends requests but never
// reads the replies is paused once MaxOutbound bytes of replies are queued
// for it, and disconnected once it has taken none of them for WriteTimeout.
func TestStuckReaderIsDisconnected(t *testing.T) {
	value := bytes.Repeat([]byte{'v'}, 100<<10)
	srv := startServer(t, &nullHandler{value: value}, "", func(c *ServerConfig) {
		c.MaxOutbound, c.WriteTimeout = 1<<20, 200*time.Millisecond
	})
	nc := rawConn(t, srv.Addr().String())
	hello(t, nc)
	const asked = 400 // 40 MB of replies: far more than socket buffers hold
	var reqs []byte
	for i := range asked {
		reqs = codec.AppendGet(reqs, uint64(i+1), []byte("k"))
	}
	if _, err := nc.Write(reqs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the replies pile up unread
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.Copy(io.Discard, nc)
	if err != nil {
		t.Fatalf("reading after the pile-up: %v (want EOF)", err)
	}
	if want := int64(asked * len(value)); got >= want {
		t.Fatalf("received all %d bytes: the stuck reader was not disconnected", got)
	}
	// The server keeps serving others.
	c := newTestClient(t, srv.Addr().String())
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestConns: the connection counts the metrics report follow connections
// opening and closing, on the client and on the server.
func TestConns(t *testing.T) {
	srv := startServer(t, newFakeStore(), "")
	c := newTestClient(t, srv.Addr().String())
	if n := c.Conns(); n != 0 {
		t.Fatalf("%d client connections before the first request", n)
	}
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if n := c.Conns(); n < 1 {
		t.Fatalf("%d client connections after a ping", n)
	}
	// want is read on every poll: the client may still be dialling its other
	// connection slot in the background.
	waitConns := func(want func() int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for srv.Conns() != want() {
			if time.Now().After(deadline) {
				t.Fatalf("server holds %d connections, want %d", srv.Conns(), want())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitConns(c.Conns)
	c.Close()
	if n := c.Conns(); n != 0 {
		t.Fatalf("%d client connections after Close", n)
	}
	waitConns(func() int { return 0 })
}
