package eventloop

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
)

// outcome is a Completion that hands what it got to the test.
type outcome struct {
	resp *Response
	err  error
}

type completions chan outcome

func (c completions) Done(resp *Response, err error) { c <- outcome{resp, err} }

func (c completions) wait(t *testing.T, within time.Duration) outcome {
	t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(within):
		t.Fatalf("no completion within %v", within)
		return outcome{}
	}
}

// TestStart: started calls complete with what the blocking calls return —
// a record, not-found, an applied write, an error status as *StatusError.
func TestStart(t *testing.T) {
	store := newFakeStore()
	srv := startServer(t, store, "")
	c := newTestClient(t, srv.Addr().String())
	if err := c.Ping(testCtx(t)); err != nil { // a connection is up: Start needs one
		t.Fatal(err)
	}
	done := make(completions, 1)

	if !c.StartSet([]byte("k"), 5, 0, []byte("v"), done) {
		t.Fatal("StartSet sent nothing on a live connection")
	}
	if o := done.wait(t, 5*time.Second); o.err != nil || o.resp.Status != codec.StatusApplied || o.resp.TS != 5 {
		t.Fatalf("set: %+v", o)
	} else {
		o.resp.Release()
	}
	if !c.StartGet([]byte("k"), done) {
		t.Fatal("StartGet sent nothing")
	}
	if o := done.wait(t, 5*time.Second); o.err != nil || o.resp.Status != codec.StatusOK || string(o.resp.Value) != "v" || o.resp.TS != 5 {
		t.Fatalf("get: %+v", o)
	} else {
		o.resp.Release()
	}
	if !c.StartStat([]byte("missing"), done) {
		t.Fatal("StartStat sent nothing")
	}
	if o := done.wait(t, 5*time.Second); o.err != nil || o.resp.Status != codec.StatusNotFound {
		t.Fatalf("stat: %+v", o)
	} else {
		o.resp.Release()
	}
	if c.StartSet([]byte("big"), 6, 0, make([]byte, copyBelow), done) {
		t.Fatal("StartSet took a value too large to copy into the frame")
	}

	// An error status arrives as a *StatusError, like Do's.
	failing := startServer(t, HandlerFunc(func(req *codec.Request, rw *ReplyWriter) {
		rw.Error(codec.StatusError, "no")
	}), "")
	fc := newTestClient(t, failing.Addr().String())
	if err := fc.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !fc.StartGet([]byte("k"), done) {
		t.Fatal("StartGet sent nothing")
	}
	var se *StatusError
	if o := done.wait(t, 5*time.Second); !errors.As(o.err, &se) || o.resp != nil {
		t.Fatalf("error status: %+v", o)
	}
}

// TestStartWithoutConnection: with no connection up Start sends nothing
// and never completes; the blocking call dials.
func TestStartWithoutConnection(t *testing.T) {
	srv := startServer(t, newFakeStore(), "")
	c := newTestClient(t, srv.Addr().String())
	done := make(completions, 1)
	if c.StartGet([]byte("k"), done) {
		t.Fatal("StartGet sent on a client that never connected")
	}
	select {
	case o := <-done:
		t.Fatalf("a call that was not sent completed: %+v", o)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestStartTimeout: a started call the peer never answers completes with
// context.DeadlineExceeded about RequestTimeout later, and the connection
// carries on.
func TestStartTimeout(t *testing.T) {
	store := newFakeStore()
	store.slowKey, store.slowDelay = "slow", 2*time.Second
	srv := startServer(t, store, "")
	c := newTestClient(t, srv.Addr().String(), func(cfg *ClientConfig) { cfg.RequestTimeout = 40 * time.Millisecond })
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	done := make(completions, 1)
	start := time.Now()
	if !c.StartGet([]byte("slow"), done) {
		t.Fatal("StartGet sent nothing")
	}
	o := done.wait(t, time.Second)
	if !errors.Is(o.err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", o.err)
	}
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Fatalf("timed out after %v, before RequestTimeout", el)
	}
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatalf("connection after a timeout: %v", err)
	}
}

// TestStartConnDeath: a started call in flight when the connection dies
// completes with ErrConnLost.
func TestStartConnDeath(t *testing.T) {
	srv, held := startHoldingServer(t)
	c := newTestClient(t, srv.Addr().String())
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	done := make(completions, 1)
	if !c.StartStat([]byte("k"), done) {
		t.Fatal("StartStat sent nothing")
	}
	<-held
	stopServer(t, srv)
	if o := done.wait(t, 3*time.Second); !errors.Is(o.err, ErrConnLost) {
		t.Fatalf("err = %v", o.err)
	}
}

// nopCompletion releases the reply and signals.
type nopCompletion struct{ ch chan struct{} }

func (n *nopCompletion) Done(resp *Response, err error) {
	resp.Release()
	n.ch <- struct{}{}
}

// TestStartDoesNotAllocate: a started Get, answered, allocates nothing in
// the client (calls, frames and replies are pooled).
func TestStartDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped: allocation counts are meaningless under the race detector")
	}
	store := newFakeStore()
	srv := startServer(t, store, "")
	c := newTestClient(t, srv.Addr().String())
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	key := []byte("k")
	done := &nopCompletion{ch: make(chan struct{}, 1)}
	allocs := testing.AllocsPerRun(2000, func() {
		if !c.StartGet(key, done) {
			t.Fatal("StartGet sent nothing")
		}
		<-done.ch
	})
	if allocs > 0.05 {
		t.Fatalf("%.2f allocations per started Get", allocs)
	}
}
