package eventloop

import (
	"context"
	"testing"

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
