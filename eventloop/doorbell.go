package eventloop

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"

	"github.com/panjf2000/gnet/v2"
)

// A reply sent off the loop (by a reader goroutine, or a group commit's callback) must get
// the connection's loop to flush it. gnet's EventLoop.Execute can do that, at the cost of
// two allocations per call (a closure and a queue node): on a peer server that answers
// every read from a reader goroutine, that was the read path's only allocation. A doorbell
// does it with none: one per loop, a connected pair of Unix sockets whose one end the loop
// polls like a peer connection. Ringing it queues the connection on the bell and writes one
// byte, unless the bell has rung already and the loop has not answered yet, so that one
// wake-up flushes every connection of the loop that has replies waiting.
//
// A loop gets its bell when its first connection opens; until the bell is enrolled, and
// after it closes (Stop), connections fall back to Execute.
type doorbell struct {
	w net.Conn // the end we write to; the loop polls the other

	mu      sync.Mutex
	rung    bool        // a byte is on its way and pending will be served
	dead    bool        // closed: ring refuses
	pending []*peerConn // connections whose replies wait for a flush
	serving []*peerConn // loop only: the batch being flushed
	loop    gnet.EventLoop
}

var bellByte = []byte{1}

// ring queues pc for a flush on its loop, waking the loop unless it is woken already. It
// reports false when the bell cannot ring (closed): the caller falls back to Execute.
// Called with pc.mu held; takes b.mu, so the loop must not hold b.mu while taking pc.mu.
func (b *doorbell) ring(pc *peerConn) bool {
	b.mu.Lock()
	if b.dead {
		b.mu.Unlock()
		return false
	}
	b.pending = append(b.pending, pc)
	wake := !b.rung
	b.rung = true
	b.mu.Unlock()
	if !wake {
		return true
	}
	if _, err := b.w.Write(bellByte); err != nil {
		// The bell is dead. pc falls back to Execute (false); connections
		// queued behind it since b.mu was released were told they would be
		// flushed, so they are handed to Execute here (without their locks:
		// pc's is held). Execute fails only when the engine stops, and then
		// OnClose releases their queues.
		b.mu.Lock()
		b.dead, b.rung = true, false
		stranded := b.pending
		b.pending = nil
		b.mu.Unlock()
		for _, other := range stranded {
			if other != pc {
				_ = b.loop.Execute(context.Background(), other)
			}
		}
		return false
	}
	return true
}

// serve runs on the loop when the bell rings: it flushes the connections queued since the
// last ring.
func (b *doorbell) serve(c gnet.Conn) {
	_, _ = c.Discard(c.InboundBuffered())
	b.mu.Lock()
	b.serving, b.pending = b.pending, b.serving[:0]
	b.rung = false
	b.mu.Unlock()
	for i, pc := range b.serving {
		pc.flush()
		b.serving[i] = nil
	}
}

// close stops the bell: later rings fall back to Execute.
func (b *doorbell) close() {
	b.mu.Lock()
	b.dead = true
	b.pending = nil
	b.mu.Unlock()
	if b.w != nil {
		b.w.Close()
	}
}

// bellOf returns the bell of loop el, or nil while it has none; the first call for a loop
// starts opening its bell.
func (s *Server) bellOf(el gnet.EventLoop) *doorbell {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	b, ok := s.bells[el]
	if !ok {
		s.bells[el] = nil // opening
		go s.openBell(el)
	}
	return b
}

// openBell opens loop el's doorbell and enrolls its polled end with the loop; on failure
// the loop keeps waking through Execute (logged once per loop).
func (s *Server) openBell(el gnet.EventLoop) {
	b, polled, err := s.dialBell()
	if err == nil {
		b.loop = el
		var res <-chan gnet.RegisteredResult
		if res, err = el.Enroll(gnet.NewContext(context.Background(), b), polled); err == nil {
			if r, ok := <-res; ok && r.Err != nil {
				err = r.Err
			}
		} else {
			polled.Close()
		}
		if err != nil {
			b.close()
		}
	}
	if err != nil {
		// A dead bell, so that the loop's connections stop looking for one and
		// ring falls back to Execute at once.
		s.connMu.Lock()
		s.bells[el] = &doorbell{dead: true, loop: el}
		s.connMu.Unlock()
		s.log.Debug("peer loop has no doorbell; replies wake it through gnet", "err", err)
	}
}

// dialBell makes a connected pair of Unix sockets through the bell listener in the
// server's private socket directory: the dialed end is for the loop to poll (gnet enrolls
// a Unix connection by its remote address, which only the dialed end has), the accepted
// end for ringing. Pairs are made one at a time, so that each accept is its own dial's.
func (s *Server) dialBell() (*doorbell, net.Conn, error) {
	s.bellMu.Lock()
	defer s.bellMu.Unlock()
	select {
	case <-s.stopping:
		return nil, nil, fmt.Errorf("server stopping")
	default:
	}
	if s.bellLn == nil {
		ln, err := net.Listen("unix", filepath.Join(s.sockDir, "bell.sock"))
		if err != nil {
			return nil, nil, fmt.Errorf("doorbell listener: %w", err)
		}
		s.bellLn = ln
	}
	polled, err := net.Dial("unix", s.bellLn.Addr().String())
	if err != nil {
		return nil, nil, fmt.Errorf("dial doorbell: %w", err)
	}
	w, err := s.bellLn.Accept()
	if err != nil {
		polled.Close()
		return nil, nil, fmt.Errorf("accept doorbell: %w", err)
	}
	return &doorbell{w: w}, polled, nil
}

// openedBell records a bell gnet has enrolled (OnOpen).
func (s *Server) openedBell(b *doorbell) {
	s.connMu.Lock()
	s.bells[b.loop] = b
	s.connMu.Unlock()
}

// closeBells closes the bell listener and every bell (Stop).
func (s *Server) closeBells() {
	s.bellMu.Lock()
	if s.bellLn != nil {
		s.bellLn.Close()
	}
	s.bellMu.Unlock()
	s.connMu.Lock()
	for _, b := range s.bells {
		if b != nil {
			b.close()
		}
	}
	s.connMu.Unlock()
}
