package eventloop

import (
	"context"
	"net"
	"testing"

	"github.com/panjf2000/gnet/v2"

	"github.com/tako-kv/tako/codec"
)

// deferredStats answers every request from a worker goroutine, as the node's peer handler
// answers reads: the reply is sent off the loop, which the doorbell must wake.
func deferredStats(t testing.TB) Handler {
	work := make(chan *ReplyWriter, 64)
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	go func() {
		for {
			select {
			case rw := <-work:
				rw.Stat(codec.StatusOK, 7, 0)
			case <-quit:
				return
			}
		}
	}()
	return HandlerFunc(func(_ *codec.Request, rw *ReplyWriter) { work <- rw })
}

// TestDeferredRepliesWakeTheLoopWithoutAllocating: requests answered from another
// goroutine, one at a time (so that every reply must wake an idle loop), are answered, and
// neither the server nor the client allocates for them in steady state.
func TestDeferredRepliesWakeTheLoopWithoutAllocating(t *testing.T) {
	srv := startServer(t, deferredStats(t), "")
	c := newTestClient(t, srv.Addr().String())
	ctx := context.Background()
	stat := func() {
		if m, err := c.Stat(ctx, []byte("k")); err != nil || m.TS != 7 {
			t.Fatalf("stat: %+v %v", m, err)
		}
	}
	for range 100 {
		stat()
	}
	srv.connMu.Lock()
	bells := 0
	for _, b := range srv.bells {
		if b != nil {
			bells++
		}
	}
	srv.connMu.Unlock()
	if bells == 0 {
		t.Fatal("the connection's loop has no doorbell")
	}
	if raceEnabled {
		return // allocation counts are meaningless under -race
	}
	if n := testing.AllocsPerRun(500, stat); n > 0.05 {
		t.Errorf("%.2f allocations per deferred reply (server and client)", n)
	}
}

// TestDeadBellHandsQueuedConnectionsToExecute: a connection that queues behind a ring
// whose write then fails (the bell closed under it) is not left waiting for a flush that
// will never come: the failing ringer hands it to the loop's Execute, and only falls back
// to Execute itself for its own connection.
func TestDeadBellHandsQueuedConnectionsToExecute(t *testing.T) {
	first, behind := &peerConn{}, &peerConn{}
	loop := &executeLoop{}
	b := &doorbell{loop: loop}
	b.w = &failingConn{beforeFail: func() {
		if !b.ring(behind) {
			t.Error("a ring behind one in flight was refused")
		}
	}}
	if b.ring(first) {
		t.Fatal("a ring whose write failed reported success")
	}
	if len(loop.ran) != 1 || loop.ran[0] != behind {
		t.Fatalf("Execute got %v, want only the connection queued behind the failed ring", loop.ran)
	}
	if b.ring(behind) {
		t.Error("a dead bell rang")
	}
}

// executeLoop is a gnet.EventLoop that records what it is asked to Execute.
type executeLoop struct {
	gnet.EventLoop
	ran []gnet.Runnable
}

func (l *executeLoop) Execute(_ context.Context, r gnet.Runnable) error {
	l.ran = append(l.ran, r)
	return nil
}

// failingConn is a net.Conn whose writes fail, after running beforeFail.
type failingConn struct {
	net.Conn
	beforeFail func()
}

func (c *failingConn) Write([]byte) (int, error) {
	c.beforeFail()
	return 0, net.ErrClosed
}
