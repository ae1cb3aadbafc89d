package eventloop

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"sync"

	"github.com/panjf2000/gnet/v2"

	"github.com/tako-kv/tako/codec"
)

// maxIOV bounds the buffers passed to one writev (Linux rejects more than 1024).
const maxIOV = 1000

// keepOutCap is the largest reply buffer a connection keeps between flushes.
const keepOutCap = 4 << 20

// peerConn is the server side of one connection.
//
// Replies from any goroutine are appended to out under mu. While the loop is inside
// OnTraffic (inLoop) it flushes out itself before returning, so a reply sent then needs no
// wake-up; otherwise the first reply schedules one flush on the loop (flushQueued) and
// later ones ride along. Only the loop writes to the socket.
type peerConn struct {
	srv    *Server
	c      gnet.Conn
	remote string

	// Loop-only state.
	state  connState
	peerID string
	expect [][]byte // connProof: the client proof each secret expects
	req    codec.Request
	rw     *ReplyWriter // reused while handlers reply before returning
	iov    [][]byte
	spare  outBuf

	mu          sync.Mutex
	out         outBuf // REQUIRES: mu held
	inLoop      bool   // REQUIRES: mu held
	flushQueued bool   // REQUIRES: mu held
	closed      bool   // REQUIRES: mu held
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
	b    []byte
	refs []outRef
}

type outRef struct {
	at      int // the buffer goes after b[:at]
	b       []byte
	release func()
}

func (o *outBuf) empty() bool { return len(o.b) == 0 && len(o.refs) == 0 }

// release hands the spliced buffers back to their owners and empties o.
func (o *outBuf) release() {
	for i, r := range o.refs {
		if r.release != nil {
			r.release()
		}
		o.refs[i] = outRef{}
	}
	o.refs = o.refs[:0]
	if cap(o.b) > keepOutCap {
		o.b = nil
	}
	o.b = o.b[:0]
}

func newPeerConn(s *Server, c gnet.Conn) *peerConn {
	pc := &peerConn{srv: s, c: c}
	if a := c.RemoteAddr(); a != nil {
		pc.remote = a.String()
	}
	pc.rw = &ReplyWriter{pc: pc}
	return pc
}

// enterLoop marks the start of OnTraffic: replies are batched until flush.
func (pc *peerConn) enterLoop() {
	pc.mu.Lock()
	pc.inLoop = true
	pc.mu.Unlock()
}

// flush writes every queued reply with writev and releases the spliced buffers.
// Loop only. Never called with mu held: a failed write closes the connection and runs
// OnClose, which takes mu.
func (pc *peerConn) flush() {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	out := pc.out
	pc.out, pc.spare = pc.spare, outBuf{}
	pc.inLoop, pc.flushQueued = false, false
	pc.mu.Unlock()

	if !out.empty() {
		pc.write(&out)
	}
	out.release()
	pc.spare = out
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
	if n := pc.c.OutboundBuffered(); n > pc.srv.cfg.MaxOutbound {
		pc.srv.badLog.log(pc.srv.log, "closing a connection whose peer does not read its replies",
			"remote", pc.remote, "peer", pc.peerID, "queued", n, "limit", pc.srv.cfg.MaxOutbound)
		pc.c.Close()
	}
}

// Run is the flush scheduled by a reply sent while the loop was not in OnTraffic
// (gnet.Runnable, executed on the connection's loop).
func (pc *peerConn) Run(context.Context) error {
	pc.flush()
	return nil
}

// close runs in OnClose: later replies are dropped, queued ones released.
func (pc *peerConn) close() {
	pc.mu.Lock()
	pc.closed = true
	out := pc.out
	pc.out = outBuf{}
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
		if err := pc.c.EventLoop().Execute(context.Background(), pc); err != nil {
			pc.flushQueued = false // engine shutting down: OnClose will release the queue
		}
	}
	pc.mu.Unlock()
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
	pc.srv.cfg.Handler.Handle(req, rw)
	if rw.state.Load() != stateDone {
		// The handler kept rw to reply later; it is theirs until then.
		pc.rw = &ReplyWriter{pc: pc}
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
		pc.state = connReady
		id, node := req.ID, pc.srv.cfg.NodeID
		pc.reply(func(dst []byte) []byte { return codec.AppendHelloReply(dst, id, v, []byte(node)) })
		return gnet.None
	}
	pc.replyError(req.Op, req.ID, status, err.Error())
	pc.srv.badLog.log(pc.srv.log, "closing peer connection: handshake failed",
		"remote", pc.remote, "err", err)
	return gnet.Close
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
			pc.state, pc.expect = connReady, nil
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
