package eventloop

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/tako-kv/tako/codec"
)

// Errors returned by ReplyWriter.
var (
	// ErrConnClosed: the connection the request came on is gone; the reply was dropped.
	ErrConnClosed = errors.New("eventloop: connection closed")
	// ErrReplied: the request already got its reply.
	ErrReplied = errors.New("eventloop: request already answered")
)

const (
	statePending int32 = iota
	stateSending
	stateDone
)

// ReplyWriter sends the one reply a request gets. Its methods may be called from any
// goroutine, during Handle or later; the reply is encoded into the connection's write
// queue at once (so arguments may be reused when the call returns, except where a release
// func is taken) and written by the event loop, coalesced with other replies into one
// writev. After the reply is sent the ReplyWriter must not be used again: it is
// recycled.
//
// Recycling: while a request is being handled, two parties hold its ReplyWriter — the
// event loop, until Handle returns, and the reply, until it is sent (or dropped with the
// connection). refs counts them; whichever lets go last recycles it: the loop keeps it for
// the connection's next request, a reply sent later returns it to replyWriters. So a
// handler that replies from another goroutine costs no allocation either.
type ReplyWriter struct {
	pc    *peerConn
	id    uint64
	op    codec.Op
	state atomic.Int32
	refs  atomic.Int32
}

var replyWriters = sync.Pool{New: func() any { return new(ReplyWriter) }}

// newReplyWriter returns a recycled ReplyWriter for a request on pc.
func newReplyWriter(pc *peerConn) *ReplyWriter {
	rw := replyWriters.Get().(*ReplyWriter)
	rw.pc = pc
	return rw
}

// reset readies rw for a request: held by the loop and by the reply to come.
func (rw *ReplyWriter) reset(id uint64, op codec.Op) {
	rw.id, rw.op = id, op
	rw.state.Store(statePending)
	rw.refs.Store(2)
}

// unref drops one holder's reference and reports whether it was the last.
func (rw *ReplyWriter) unref() bool { return rw.refs.Add(-1) == 0 }

// replied drops the reply's reference once the reply is sent or dropped; rw goes back to
// the pool when the loop had let go of it already. Nothing may touch rw afterwards.
func (rw *ReplyWriter) replied() {
	if rw.unref() {
		rw.pc = nil
		replyWriters.Put(rw)
	}
}

// ID is the request id the reply must carry (for frames built by hand, see SendFrame).
func (rw *ReplyWriter) ID() uint64 { return rw.id }

// Op is the op of the request.
func (rw *ReplyWriter) Op() codec.Op { return rw.op }

// PeerNodeID is the node id the client sent in its Hello (empty for proxies).
// Call it during Handle only.
func (rw *ReplyWriter) PeerNodeID() string { return rw.pc.peerID }

// begin claims the reply and locks the connection's write queue.
func (rw *ReplyWriter) begin() error {
	if !rw.state.CompareAndSwap(statePending, stateSending) {
		return ErrReplied
	}
	if !rw.pc.lock() {
		rw.pc.inflight.Add(-1)
		rw.state.Store(stateDone)
		rw.replied()
		return ErrConnClosed
	}
	return nil
}

// end unlocks the write queue, scheduling a flush if needed, and lets go of rw: nothing
// may touch rw afterwards.
func (rw *ReplyWriter) end() {
	pc := rw.pc
	pc.unlockAndKick()
	pc.inflight.Add(-1)
	rw.state.Store(stateDone)
	rw.replied()
}

// Admit reports whether the work that builds this request's reply may start now. Handlers
// call it before reading the store for a reply that may be large (a Get, a Scan), from the
// goroutine that would do the work:
//   - true: the connection is open and its replies hold less than ServerConfig.MaxOutbound
//     bytes. Go ahead and reply.
//   - false, connection closed: the request is dropped (nobody is left to read its reply);
//     rw must not be used again and retry is never called.
//   - false, over budget: retry is kept and called once, on the event loop, when the
//     connection's replies have drained below the budget (never, if it closes first); it
//     must not block, so it should hand the work back to the handler's workers.
func (rw *ReplyWriter) Admit(retry func()) bool { return rw.pc.admit(rw, retry) }

// Get replies to a Get: StatusOK with the record, or StatusNotFound. value is copied.
func (rw *ReplyWriter) Get(status codec.Status, ts int64, flags uint8, value []byte) error {
	if err := rw.begin(); err != nil {
		return err
	}
	rw.pc.out.b = codec.AppendGetReply(rw.pc.out.b, rw.id, status, ts, flags, value)
	rw.end()
	return nil
}

// GetRef is Get without copying value: value is written straight from the caller's buffer,
// which must stay unchanged until release is called. release is called exactly once, on
// the event loop, when the value has been handed to the kernel or the connection is gone
// (also when GetRef returns an error); it must not block.
func (rw *ReplyWriter) GetRef(status codec.Status, ts int64, flags uint8, value []byte, release func()) error {
	if err := rw.begin(); err != nil {
		if release != nil {
			release()
		}
		return err
	}
	pc := rw.pc
	pc.out.b = codec.AppendGetReplyHead(pc.out.b, rw.id, status, ts, flags, len(value))
	pc.out.splice(value, release)
	rw.end()
	return nil
}

// Stat replies to a Stat: StatusOK or StatusNotFound.
func (rw *ReplyWriter) Stat(status codec.Status, ts int64, flags uint8) error {
	if err := rw.begin(); err != nil {
		return err
	}
	rw.pc.out.b = codec.AppendStatReply(rw.pc.out.b, rw.id, status, ts, flags)
	rw.end()
	return nil
}

// Set replies to a Set: StatusApplied or StatusStale, and the timestamp now current.
func (rw *ReplyWriter) Set(status codec.Status, ts int64) error {
	if err := rw.begin(); err != nil {
		return err
	}
	rw.pc.out.b = codec.AppendSetReply(rw.pc.out.b, rw.id, status, ts)
	rw.end()
	return nil
}

// Error sends an error reply (status must be an error status) with a short message.
func (rw *ReplyWriter) Error(status codec.Status, msg string) error {
	if err := rw.begin(); err != nil {
		return err
	}
	rw.pc.out.b = codec.AppendErrorReply(rw.pc.out.b, rw.op, rw.id, status, msg)
	rw.end()
	return nil
}

// Reply sends a reply encoded by encode, which appends one frame for request id to dst
// (a codec.AppendXxxReply call). encode runs with the connection's write queue locked:
// keep it short, or build large replies in your own buffer and use SendFrame.
func (rw *ReplyWriter) Reply(encode func(dst []byte, id uint64) []byte) error {
	if err := rw.begin(); err != nil {
		return err
	}
	rw.pc.out.b = encode(rw.pc.out.b, rw.id)
	rw.end()
	return nil
}

// SendFrame sends a complete reply frame built by the caller (for example with
// codec.BeginScanReply(buf, rw.ID())) without copying it. frame must stay unchanged until
// release is called; release is called as for GetRef.
func (rw *ReplyWriter) SendFrame(frame []byte, release func()) error {
	if err := rw.begin(); err != nil {
		if release != nil {
			release()
		}
		return err
	}
	rw.pc.out.splice(frame, release)
	rw.end()
	return nil
}
