package eventloop

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tako-kv/tako/codec"
)

// maxIOV bounds the buffers passed to one writev (Linux rejects more than 1024).
const maxIOV = 1000

// keepOutCap is the largest reply buffer a connection keeps between flushes.
const keepOutCap = 4 << 20

// maxHandshakeFrame bounds the frames of the handshake (a Hello, the client's proof): a
// Hello carries a node id and a few TLVs.
const maxHandshakeFrame = 64 << 10

// peerConn is the server side of one connection.
//
// Replies from any goroutine are appended to out under mu. While the loop is inside
// OnTraffic (inLoop) it flushes out itself before returning, so a reply sent then needs no
// wake-up; otherwise the first reply schedules one flush on the loop (flushQueued) and
// later ones ride along. Only the loop writes to the socket.
//
// Limits (ServerConfig; doc.go, "Limits"): inflight counts the requests handed to the
// Handler and not yet answered; queuedLocked the reply bytes this connection holds (in out,
// and in gnet's outbound buffer as the loop last saw it). At MaxInflight requests or
// MaxOutbound bytes the loop stops framing input (paused) until replies leave; handlers ask
// Admit before starting work that builds a large reply, and work Admit turns away is parked
// until there is room again. deadline is the time by which the handshake, or the partial
// frame in the input, must be complete; the server's janitor closes connections past it.
type peerConn struct {
	srv    *Server
	c      gnet.Conn
	remote string

	// Loop-only state.
	state        connState
	peerID       string
	expect       [][]byte // connProof: the client proof each secret expects
	req          codec.Request
	rw           *ReplyWriter // reused while handlers reply before returning
	bell         *doorbell    // the loop's; nil until it has one. Written on the loop with mu held
	iov          [][]byte
	spare        outBuf
	paused       bool      // input is not framed until replies leave (backpressure)
	stallSince   time.Time // paused or parked: last time the outbound buffer shrank
	lastOutbound int       // paused or parked: OutboundBuffered at the last poll

	inflight atomic.Int32 // requests handed to the Handler and not answered yet
	deadline atomic.Int64 // unix ns by which the handshake or partial frame must complete; 0: none

	mu          sync.Mutex
	out         outBuf   // REQUIRES: mu held
	outbound    int      // REQUIRES: mu held. gnet's OutboundBuffered, as of the loop's last write
	writing     int      // REQUIRES: mu held. Bytes taken from out by the flush under way
	parked      []func() // REQUIRES: mu held. Work Admit turned away, run when there is room
	pollArmed   bool     // REQUIRES: mu held. A poll of the budget is scheduled
	inLoop      bool     // REQUIRES: mu held
	flushQueued bool     // REQUIRES: mu held
	closed      bool     // REQUIRES: mu held
}

// connState is where a connection is in the handshake.
type connState uint8

const (
	connHello connState = iota // the first frame must be a Hello
	connProof                  // the next frame must be the client's proof (cluster secret)
	connReady                  // requests are served
)

// outBuf holds encoded replies back to back in b; refs splice caller-owned buffers in
// (zero-copy values and frames) at the recorded offsets.
type outBuf struct {
	b        []byte
	refs     []outRef
	refBytes int // sum of len(refs[i].b)
}

type outRef struct {
	at      int // the buffer goes after b[:at]
	b       []byte
	release func()
}

func (o *outBuf) empty() bool { return len(o.b) == 0 && len(o.refs) == 0 }

// size is the bytes o holds for the wire.
func (o *outBuf) size() int { return len(o.b) + o.refBytes }

// splice appends a caller-owned buffer after the bytes encoded so far.
func (o *outBuf) splice(b []byte, release func()) {
	o.refs = append(o.refs, outRef{at: len(o.b), b: b, release: release})
	o.refBytes += len(b)
}

// release hands the spliced buffers back to their owners and empties o.
func (o *outBuf) release() {
	for i, r := range o.refs {
		if r.release != nil {
			r.release()
		}
		o.refs[i] = outRef{}
	}
	o.refs, o.refBytes = o.refs[:0], 0
	if cap(o.b) > keepOutCap {
		o.b = nil
	}
	o.b = o.b[:0]
}

func newPeerConn(s *Server, c gnet.Conn) *peerConn {
	pc := &peerConn{srv: s, c: c, remote: remoteOf(c)}
	pc.rw = newReplyWriter(pc)
	pc.deadline.Store(time.Now().Add(s.cfg.HandshakeTimeout).UnixNano())
	return pc
}

// enterLoop marks the start of OnTraffic: replies are batched until flush.
func (pc *peerConn) enterLoop() {
	pc.mu.Lock()
	pc.inLoop = true
	pc.mu.Unlock()
}

// flush writes every queued reply with writev and releases the spliced buffers, then
// resumes a paused connection or parked work if the replies made room.
// Loop only. Never called with mu held: a failed write closes the connection and runs
// OnClose, which takes mu.
func (pc *peerConn) flush() {
	var bell *doorbell
	if pc.bell == nil {
		bell = pc.srv.bellOf(pc.c.EventLoop())
	}
	pc.mu.Lock()
	if bell != nil {
		pc.bell = bell
	}
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	out := pc.out
	pc.out, pc.spare = pc.spare, outBuf{}
	pc.inLoop, pc.flushQueued = false, false
	pc.writing = out.size() // still the connection's until gnet holds it (write)
	pc.mu.Unlock()

	if !out.empty() {
		pc.write(&out)
	}
	out.release()
	pc.spare = out
	pc.checkRoom()
}

// write passes out to gnet's Writev, which writes what the socket takes and copies the rest
// to the connection's outbound buffer: out may be reused once it returns.
func (pc *peerConn) write(out *outBuf) {
	iov, prev := pc.iov[:0], 0
	for _, r := range out.refs {
		if r.at > prev {
			iov = append(iov, out.b[prev:r.at])
		}
		if len(r.b) > 0 {
			iov = append(iov, r.b)
		}
		prev = r.at
	}
	if prev < len(out.b) {
		iov = append(iov, out.b[prev:])
	}
	for i := 0; i < len(iov); i += maxIOV {
		if _, err := pc.c.Writev(iov[i:min(i+maxIOV, len(iov))]); err != nil {
			break // gnet has closed the connection
		}
	}
	clear(iov) // drop references to the reply buffers
	pc.iov = iov[:0]
	ob := pc.c.OutboundBuffered()
	pc.mu.Lock()
	pc.outbound, pc.writing = ob, 0
	pc.mu.Unlock()
}

// Run is the flush scheduled by a reply sent while the loop was not in OnTraffic
// (gnet.Runnable, executed on the connection's loop).
func (pc *peerConn) Run(context.Context) error {
	pc.flush()
	return nil
}

// close runs in OnClose: later replies are dropped, queued ones released, parked work
// dropped (its requests will never be answered: nobody is left to read the answers).
func (pc *peerConn) close() {
	pc.mu.Lock()
	pc.closed = true
	out := pc.out
	pc.out, pc.parked = outBuf{}, nil
	pc.mu.Unlock()
	out.release()
}

// lock takes mu to queue a reply, unless the connection is closed.
func (pc *peerConn) lock() bool {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return false
	}
	return true
}

// unlockAndKick releases mu after queueing a reply and makes sure a flush will follow.
// The flush is scheduled with mu held so that the connection (and the loop's poller) cannot
// be torn down between the check and the schedule.
func (pc *peerConn) unlockAndKick() {
	if !pc.inLoop && !pc.flushQueued {
		pc.flushQueued = true
		if pc.bell == nil || !pc.bell.ring(pc) {
			if err := pc.c.EventLoop().Execute(context.Background(), pc); err != nil {
				pc.flushQueued = false // engine shutting down: OnClose will release the queue
			}
		}
	}
	pc.mu.Unlock()
}

// queuedLocked is the reply bytes the connection holds: encoded and spliced replies not
// yet written or being written, and what gnet's outbound buffer held after the last write.
// REQUIRES: mu held.
func (pc *peerConn) queuedLocked() int { return pc.out.size() + pc.writing + pc.outbound }

// overBudgetLocked reports whether the reply bytes reached MaxOutbound. REQUIRES: mu held.
func (pc *peerConn) overBudgetLocked() bool { return pc.queuedLocked() >= pc.srv.cfg.MaxOutbound }

// full reports whether the connection may not take another request now: MaxInflight
// requests unanswered, or MaxOutbound bytes of replies held.
func (pc *peerConn) full() bool {
	if int(pc.inflight.Load()) >= pc.srv.cfg.MaxInflight {
		return true
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.overBudgetLocked()
}

// pause stops framing the connection's input until replies make room (backpressure): the
// requests stay in gnet's inbound buffer, bounded by checkInbound. Loop only.
func (pc *peerConn) pause() {
	if pc.paused {
		return
	}
	pc.paused = true
	pc.deadline.Store(0) // the input holds whole frames waiting, not a stalled one
	pc.stallSince, pc.lastOutbound = time.Now(), pc.c.OutboundBuffered()
	pc.mu.Lock()
	pc.armPollLocked()
	pc.mu.Unlock()
}

// checkInbound closes a paused connection whose peer keeps sending: gnet reads the socket
// whether or not we frame it, so the requests waiting are bounded, to MaxFrame +
// MaxOutbound (a maximal Set may still arrive whole while a client reads its replies).
// Loop only.
func (pc *peerConn) checkInbound() gnet.Action {
	limit := pc.srv.cfg.MaxFrame + pc.srv.cfg.MaxOutbound
	if n := pc.c.InboundBuffered(); n > limit {
		pc.srv.badLog.log(pc.srv.log, "closing peer connection: it sends requests without reading the replies",
			"remote", pc.remote, "peer", pc.peerID, "waiting", n, "limit", limit)
		return gnet.Close
	}
	return gnet.None
}

// pollInterval is how often a paused connection, or one with parked work, checks whether
// gnet's outbound buffer drained (gnet has no callback for that).
const pollInterval = 2 * time.Millisecond

// armPollLocked schedules a poll of the connection's budget, unless one is pending.
// REQUIRES: mu held.
func (pc *peerConn) armPollLocked() {
	if pc.pollArmed || pc.closed {
		return
	}
	pc.pollArmed = true
	time.AfterFunc(pollInterval, func() {
		if err := pc.c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(pc.poll)); err != nil {
			pc.mu.Lock()
			pc.pollArmed = false // engine shutting down
			pc.mu.Unlock()
		}
	})
}

// poll runs on the loop: it refreshes what gnet's outbound buffer holds, resumes the
// connection or its parked work if there is room, and otherwise polls again, closing a
// connection whose peer has not taken a byte of its replies for WriteTimeout.
func (pc *peerConn) poll(context.Context) error {
	ob := pc.c.OutboundBuffered()
	pc.mu.Lock()
	pc.pollArmed = false
	if pc.closed {
		pc.mu.Unlock()
		return nil
	}
	pc.outbound = ob
	pc.mu.Unlock()
	if pc.checkRoom() {
		return nil
	}
	now := time.Now()
	if ob < pc.lastOutbound || pc.stallSince.IsZero() {
		pc.stallSince = now
	}
	pc.lastOutbound = ob
	if ob > 0 && now.Sub(pc.stallSince) > pc.srv.cfg.WriteTimeout {
		pc.srv.badLog.log(pc.srv.log, "closing peer connection: its peer does not read its replies",
			"remote", pc.remote, "peer", pc.peerID, "queued", ob, "for", now.Sub(pc.stallSince).Round(time.Millisecond))
		pc.c.Close()
		return nil
	}
	pc.mu.Lock()
	pc.armPollLocked()
	pc.mu.Unlock()
	return nil
}

// checkRoom runs parked work once the reply bytes are below MaxOutbound, and resumes a
// paused connection once it is not full; it reports whether nothing waits any more.
// Loop only.
func (pc *peerConn) checkRoom() bool {
	pc.mu.Lock()
	var parked []func()
	if len(pc.parked) > 0 && !pc.overBudgetLocked() {
		parked, pc.parked = pc.parked, nil
	}
	waiting := len(pc.parked) > 0
	pc.mu.Unlock()
	for _, run := range parked {
		run()
	}
	if pc.paused {
		if pc.full() {
			waiting = true
		} else {
			pc.paused, pc.stallSince = false, time.Time{}
			_ = pc.c.Wake(nil) // frame what waited in the input
		}
	}
	if waiting {
		pc.mu.Lock()
		pc.armPollLocked()
		pc.mu.Unlock()
	} else if !pc.paused {
		pc.stallSince = time.Time{}
	}
	return !waiting
}

// admit is ReplyWriter.Admit: false, with the request dropped, if the connection is gone;
// false, with retry parked, if its replies hold MaxOutbound bytes; else true.
func (pc *peerConn) admit(rw *ReplyWriter, retry func()) bool {
	pc.mu.Lock()
	switch {
	case pc.closed:
		pc.mu.Unlock()
		if rw.state.CompareAndSwap(statePending, stateDone) {
			pc.inflight.Add(-1)
			rw.replied()
		}
		return false
	case pc.overBudgetLocked():
		pc.parked = append(pc.parked, retry)
		pc.armPollLocked()
		pc.mu.Unlock()
		return false
	}
	pc.mu.Unlock()
	return true
}

// watchPartial keeps the read deadline of a ready connection: a frame that has begun to
// arrive must be complete within ReadTimeout of when it began (served says whether this
// callback completed frames, so that what is buffered now is a new frame). Loop only.
func (pc *peerConn) watchPartial(served bool) {
	if pc.state != connReady || pc.paused {
		return
	}
	switch {
	case pc.c.InboundBuffered() == 0:
		pc.deadline.Store(0)
	case served || pc.deadline.Load() == 0:
		pc.deadline.Store(time.Now().Add(pc.srv.cfg.ReadTimeout).UnixNano())
	}
}

// expire runs on the loop when the janitor found the deadline passed: it closes the
// connection if the deadline still stands.
func (pc *peerConn) expire(context.Context) error {
	d := pc.deadline.Load()
	if d == 0 || time.Now().UnixNano() < d {
		return nil // the handshake or the frame completed meanwhile
	}
	pc.deadline.Store(0)
	what, limit := "partial frame not completed", pc.srv.cfg.ReadTimeout
	if pc.state != connReady {
		what, limit = "handshake not completed", pc.srv.cfg.HandshakeTimeout
	}
	pc.srv.badLog.log(pc.srv.log, "closing peer connection: "+what+" in time",
		"remote", pc.remote, "peer", pc.peerID, "timeout", limit, "buffered", pc.c.InboundBuffered())
	pc.c.Close()
	return nil
}

// reply queues a reply encoded by the server itself (handshake, ping, errors).
func (pc *peerConn) reply(encode func(dst []byte) []byte) {
	if pc.lock() {
		pc.out.b = encode(pc.out.b)
		pc.unlockAndKick()
	}
}

func (pc *peerConn) replyError(op codec.Op, id uint64, status codec.Status, msg string) {
	pc.reply(func(dst []byte) []byte { return codec.AppendErrorReply(dst, op, id, status, msg) })
}

// reject answers a frame whose header is unusable and closes the connection.
func (pc *peerConn) reject(h codec.Header, err error) gnet.Action {
	switch {
	case errors.Is(err, codec.ErrTooLarge):
		pc.replyError(h.Op, h.ID, codec.StatusTooLarge, err.Error())
	case errors.Is(err, codec.ErrCorrupt):
		pc.replyError(h.Op, h.ID, codec.StatusBadRequest, err.Error())
	default: // bad magic: nothing in the header can be trusted
		pc.replyError(codec.OpNone, 0, codec.StatusBadRequest, err.Error())
	}
	pc.srv.badLog.log(pc.srv.log, "closing peer connection: bad frame header",
		"remote", pc.remote, "peer", pc.peerID, "err", err)
	return gnet.Close
}

// serve decodes one complete frame and answers or dispatches it.
func (pc *peerConn) serve(frame []byte) gnet.Action {
	req := &pc.req
	err := codec.DecodeRequest(frame, req)
	switch pc.state {
	case connHello:
		return pc.handshake(req, err)
	case connProof:
		return pc.checkProof(req, err)
	}
	switch {
	case errors.Is(err, codec.ErrUnknownOp):
		// A newer peer tried a newer op: say so and carry on with the next frame.
		pc.replyError(req.Op, req.ID, codec.StatusUnsupported, err.Error())
		return gnet.None
	case err != nil:
		pc.replyError(req.Op, req.ID, codec.StatusBadRequest, err.Error())
		pc.srv.badLog.log(pc.srv.log, "closing peer connection: bad frame",
			"remote", pc.remote, "peer", pc.peerID, "err", err)
		return gnet.Close
	}
	switch req.Op {
	case codec.OpHello:
		pc.replyError(req.Op, req.ID, codec.StatusBadRequest, "duplicate hello")
		return gnet.Close
	case codec.OpPing:
		pc.reply(func(dst []byte) []byte { return codec.AppendPingReply(dst, req.ID, req.Value) })
		return gnet.None
	}
	rw := pc.rw
	rw.reset(req.ID, req.Op)
	pc.inflight.Add(1) // until the reply (ReplyWriter.end) or the drop (admit)
	pc.srv.cfg.Handler.Handle(req, rw)
	if !rw.unref() {
		// The handler kept rw to reply later; it is theirs until then.
		pc.rw = newReplyWriter(pc)
	}
	return gnet.None
}

// handshake serves the first frame of a connection, which must be an acceptable Hello.
func (pc *peerConn) handshake(req *codec.Request, err error) gnet.Action {
	var status codec.Status
	switch {
	case err == nil && req.Op != codec.OpHello:
		status, err = codec.StatusHandshake, fmt.Errorf("%s before hello", req.Op)
	case errors.Is(err, codec.ErrUnknownOp):
		status, err = codec.StatusHandshake, fmt.Errorf("%w before hello", err)
	case err != nil:
		status = codec.StatusBadRequest
	default:
		var v uint16
		if v, err = codec.NegotiateVersion(req.MinVersion, req.MaxVersion); err != nil {
			status = codec.StatusVersion
			break
		}
		pc.peerID = string(req.NodeID)
		if len(pc.srv.cfg.Secrets) > 0 {
			return pc.challenge(req, v)
		}
		// Unknown TLVs, and a nonce when this server holds no secret, are ignored.
		pc.ready()
		id, node := req.ID, pc.srv.cfg.NodeID
		pc.reply(func(dst []byte) []byte { return codec.AppendHelloReply(dst, id, v, []byte(node)) })
		return gnet.None
	}
	pc.replyError(req.Op, req.ID, status, err.Error())
	pc.srv.badLog.log(pc.srv.log, "closing peer connection: handshake failed",
		"remote", pc.remote, "err", err)
	return gnet.Close
}

// ready ends the handshake: requests are served from now on, without its deadline.
func (pc *peerConn) ready() {
	pc.state, pc.expect = connReady, nil
	pc.deadline.Store(0)
}

// frameLimit is the largest frame the connection may send now: until the handshake is
// done only handshake frames, so that a stranger cannot make the server buffer a large
// frame (MaxFrame) before it has said who it is.
func (pc *peerConn) frameLimit() int {
	if pc.state != connReady {
		return min(pc.srv.cfg.MaxFrame, maxHandshakeFrame)
	}
	return pc.srv.cfg.MaxFrame
}

// challenge answers an acceptable Hello when the server holds cluster secrets: its nonce
// and one proof per secret, and the client proofs those secrets expect next
// (codec/doc.go, "Cluster secret"). A Hello without a nonce is refused.
func (pc *peerConn) challenge(req *codec.Request, v uint16) gnet.Action {
	a := parseHelloAuth(req.TLVs)
	if a.nonce == nil {
		return pc.unproven(codec.OpHello, req.ID, "hello carries no nonce: this server requires the cluster secret")
	}
	secrets, node := pc.srv.cfg.Secrets, pc.srv.cfg.NodeID
	ns := newNonce()
	tlvs := make([]codec.TLV, 0, 1+len(secrets))
	tlvs = append(tlvs, codec.TLV{Type: codec.TLVNonce, Value: ns})
	pc.expect = make([][]byte, len(secrets))
	for i, k := range secrets {
		tlvs = append(tlvs, codec.TLV{Type: codec.TLVProof, Value: proof(k, serverLabel, a.nonce, ns, node, pc.peerID)})
		pc.expect[i] = proof(k, clientLabel, ns, a.nonce, node, pc.peerID)
	}
	pc.state = connProof
	id := req.ID
	pc.reply(func(dst []byte) []byte { return codec.AppendHelloReply(dst, id, v, []byte(node), tlvs...) })
	return gnet.None
}

// checkProof serves the frame after an authenticated Hello, which must be the client's
// proof: a Ping with id 0 whose payload is the HMAC one of the secrets expects.
func (pc *peerConn) checkProof(req *codec.Request, err error) gnet.Action {
	switch {
	case err != nil:
		return pc.unproven(codec.OpNone, 0, fmt.Sprintf("bad frame before the cluster secret proof: %v", err))
	case req.Op != codec.OpPing || req.ID != 0 || len(req.Value) != ProofSize:
		return pc.unproven(codec.OpNone, 0, fmt.Sprintf("%s before the cluster secret proof", req.Op))
	}
	for _, want := range pc.expect {
		if hmac.Equal(req.Value, want) {
			pc.ready()
			pc.reply(func(dst []byte) []byte { return codec.AppendPingReply(dst, 0, req.Value) })
			return gnet.None
		}
	}
	return pc.unproven(codec.OpPing, 0, "wrong cluster secret proof")
}

// unproven refuses a connection that did not prove the cluster secret: a StatusHandshake
// reply, a rate-limited log line with the remote address, and a close.
func (pc *peerConn) unproven(op codec.Op, id uint64, why string) gnet.Action {
	pc.expect = nil
	pc.replyError(op, id, codec.StatusHandshake, why)
	pc.srv.authLog.log(pc.srv.log, "closing peer connection: cluster secret not proven",
		"remote", pc.remote, "peer", pc.peerID, "reason", why)
	return gnet.Close
}
