package eventloop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tako-kv/tako/codec"
)

// readBufSize is the reader's buffer: small replies are read many per syscall into it and
// copied out; a reply larger than it is read straight into its own buffer.
const readBufSize = 64 << 10

// call is one request in flight.
//
// Ownership: the caller fills frame and value, registers the call in pending and queues it.
// The writer claims it (state queued->writing) before reading frame and value, and from then
// on owns frame (it returns it to the pool after writing) and signals wrote once the value
// has been passed to the kernel. A caller that gives up first (queued->abandoned) leaves the
// call to the garbage collector: the writer may still hold a pointer to it.
type call struct {
	frame []byte // pooled; encoded request, or its head when value is set
	value []byte // caller-owned, written after frame; nil when all is in frame
	state atomic.Int32
	done  chan struct{} // one signal per use: resp or err is set
	wrote chan struct{} // one signal per use, only when value != nil
	resp  *Response
	err   error
	// timer bounds a request whose context has no deadline (RequestTimeout);
	// pooled with the call so that such requests allocate nothing. timed says it runs;
	// size is the request's bytes, counted in the connection's queued until done.
	timer *time.Timer
	timed bool
	size  int
	// cb, when set, receives the outcome instead of done (Client.Start): the call then
	// belongs to whoever takes it out of pending, who completes it (complete). Such a
	// call has no value and no timer; deadline (UnixNano) bounds it, swept by sweepLoop.
	cb       Completion
	deadline int64
	op       codec.Op
}

const (
	callQueued int32 = iota
	callWriting
	callAbandoned
)

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{done: make(chan struct{}, 1), wrote: make(chan struct{}, 1), timer: t}
}}

func getCall() *call { return callPool.Get().(*call) }

func putCall(c *call) {
	c.timer.Stop()
	c.frame, c.value, c.resp, c.err, c.cb = nil, nil, nil, nil, nil
	c.timed, c.size, c.deadline, c.op = false, 0, 0, codec.OpNone
	c.state.Store(callQueued)
	callPool.Put(c)
}

// clientConn is one connection of a Client: a reader goroutine matching replies to pending
// calls by id, and a writer goroutine writing every queued request with one writev.
type clientConn struct {
	cl     *Client
	nc     net.Conn
	peerID string
	born   time.Time
	nextID atomic.Uint64

	wake    chan struct{} // cap 1: the queue is not empty
	closing chan struct{} // closed by fail
	isDead  atomic.Bool

	// stalledSince is when (UnixNano) the reader began to wait for the rest of a
	// frame, 0 between frames; stallAllowed is how long it may (readLoop, sweepLoop).
	stalledSince, stallAllowed atomic.Int64

	mu      sync.Mutex
	err     error            // REQUIRES: mu held. Set once, by fail.
	pending map[uint64]*call // REQUIRES: mu held
	queued  int              // REQUIRES: mu held. Bytes of the requests in pending
	queue   []*call          // REQUIRES: mu held
	writing bool             // REQUIRES: mu held. A goroutine is writing to nc.

	// diov and dbufs are writeDirect's iovec, reused (WriteTo consumes
	// dbufs, so it is re-sliced from diov each time): only the goroutine that
	// set writing touches them.
	diov  [2][]byte
	dbufs net.Buffers
	// gather is where a TLS connection gathers small frames before a write (tls.go,
	// writeBuffers); nil on a plaintext connection, which writes with writev. Only the
	// goroutine that set writing touches it.
	gather *[]byte
}

func newClientConn(cl *Client, nc net.Conn, peerID string) *clientConn {
	return &clientConn{
		cl:      cl,
		nc:      nc,
		peerID:  peerID,
		born:    time.Now(),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		pending: make(map[uint64]*call),
		gather:  gatherBuf(nc),
	}
}

// gatherBuf returns a gather buffer for a connection that cannot writev (TLS), else nil.
func gatherBuf(nc net.Conn) *[]byte {
	if _, ok := nc.(*tls.Conn); !ok {
		return nil
	}
	b := make([]byte, 0, gatherMax)
	return &b
}

func (cc *clientConn) dead() bool { return cc.isDead.Load() }

// failure is the error that killed the connection, or nil.
func (cc *clientConn) failure() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

// fail kills the connection: every pending request fails with ErrConnLost (or ErrClosed),
// the socket is closed and both goroutines exit. Only the first call has an effect.
func (cc *clientConn) fail(cause error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	if errors.Is(cause, ErrClosed) {
		cc.err = ErrClosed
	} else {
		cc.err = fmt.Errorf("%w: %s: %w", ErrConnLost, cc.cl.cfg.Addr, cause)
		cc.cl.log.Warn("connection lost", "err", cause, "pending", len(cc.pending))
	}
	pending := cc.pending
	cc.pending, cc.queue = nil, nil
	cc.isDead.Store(true)
	cc.mu.Unlock()

	close(cc.closing)
	cc.nc.Close()
	for _, c := range pending {
		c.err = cc.err
		cc.complete(c)
	}
}

// complete hands a call taken out of pending its outcome (c.resp or c.err set): a
// waiting caller is signalled; a started call's Completion runs here, after the call is
// recycled (a reply, a failure or a deadline can only come once the writer has claimed
// the call or never will: an unclaimed one is left to the garbage collector).
func (cc *clientConn) complete(c *call) {
	cb := c.cb
	if cb == nil {
		c.done <- struct{}{}
		return
	}
	resp, err := c.resp, c.err
	// A call never written is left to the garbage collector: the writer skips it but
	// may still hold the pointer.
	if !c.state.CompareAndSwap(callQueued, callAbandoned) {
		putCall(c)
	}
	if err == nil {
		resp, err = checkStatus(cc.cl.cfg.Addr, resp)
	}
	cb.Done(resp, err)
}

// roundTrip sends one request and waits for its reply, cc's death or ctx.
func (cc *clientConn) roundTrip(ctx context.Context, sizeHint int, encode func([]byte, uint64) []byte, value []byte) (*Response, error) {
	c := getCall()
	id := cc.nextID.Add(1)
	c.frame = encode(getBuf(sizeHint), id)
	c.value = value
	op := codec.Op(c.frame[1])

	c.size = len(c.frame) + len(value)
	_, hasDeadline := ctx.Deadline()
	c.timed = !hasDeadline // the timer bounds it, whether or not ctx can be cancelled
	timeout, err := cc.send(c, id)
	if err != nil {
		return nil, err
	}

	var expired <-chan time.Time
	if c.timed {
		expired = c.timer.C
	}
	select {
	case <-c.done:
		return cc.finish(c)
	case <-ctx.Done():
		return cc.abandon(c, id, op, ctx.Err())
	case <-expired:
		return cc.abandon(c, id, op, fmt.Errorf("no reply within %v (%d bytes): %w", timeout, c.size, context.DeadlineExceeded))
	}
}

// send registers c (frame built, size set) as request id and writes it, or queues it
// for the writer. It returns the call's timeout when the call is bounded by one (its
// timer or its deadline), or cc's error, having recycled c.
func (cc *clientConn) send(c *call, id uint64) (time.Duration, error) {
	var timeout time.Duration
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		putBuf(c.frame)
		putCall(c)
		return 0, err
	}
	if c.timed || c.cb != nil {
		// Set with mu held, so that the reader's extension (extend) follows it.
		timeout = requestTimeout(cc.cl.cfg.RequestTimeout, cc.queued+c.size, cc.cl.cfg.MinRate)
		if c.timed {
			c.timer.Reset(timeout)
		} else {
			c.deadline = time.Now().Add(timeout).UnixNano()
		}
	}
	cc.pending[id] = c
	cc.queued += c.size
	// A lone request is written by its caller: no hand-off to the writer
	// goroutine. With others in flight, the writer coalesces them into one
	// writev, which under load beats a syscall each by far.
	direct := !cc.writing && len(cc.pending) == 1
	if direct {
		cc.writing = true
	} else {
		cc.queue = append(cc.queue, c)
	}
	cc.mu.Unlock()
	if direct {
		cc.writeDirect(c)
	} else {
		cc.kick()
	}
	return timeout, nil
}

// start sends a request whose outcome goes to cb (Client.Start); false if cc is dead.
func (cc *clientConn) start(sizeHint int, encode func([]byte, uint64) []byte, cb Completion) bool {
	c := getCall()
	id := cc.nextID.Add(1)
	c.frame = encode(getBuf(sizeHint), id)
	c.size = len(c.frame)
	c.cb, c.op = cb, codec.Op(c.frame[1])
	_, err := cc.send(c, id)
	return err == nil
}

// sweepLoop fails the started calls (Client.Start) whose deadline passed; a waiting
// caller's call has its own timer instead.
func (cc *clientConn) sweepLoop() {
	defer cc.cl.wg.Done()
	every := min(sweepEvery, max(cc.cl.cfg.RequestTimeout/4, time.Millisecond))
	tick := time.NewTicker(every)
	defer tick.Stop()
	var expired []*call
	for {
		select {
		case <-cc.closing:
			return
		case now := <-tick.C:
			if since := cc.stalledSince.Load(); since != 0 && now.UnixNano()-since > cc.stallAllowed.Load() {
				cc.fail(fmt.Errorf("read: a reply stopped in the middle of its frame for over %v", time.Duration(cc.stallAllowed.Load())))
			}
			expired = cc.expired(now.UnixNano(), expired[:0])
			for i, c := range expired {
				c.err = fmt.Errorf("eventloop: %s %s: no reply in time (%d bytes): %w",
					cc.cl.cfg.Addr, c.op, c.size, context.DeadlineExceeded)
				cc.complete(c)
				expired[i] = nil
			}
		}
	}
}

// sweepEvery is how often a connection looks for started calls past their deadline.
const sweepEvery = 100 * time.Millisecond

// expired takes the started calls past their deadline out of pending.
func (cc *clientConn) expired(now int64, dst []*call) []*call {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for id, c := range cc.pending {
		if c.cb != nil && now >= c.deadline {
			delete(cc.pending, id)
			cc.queued -= c.size
			dst = append(dst, c)
		}
	}
	return dst
}

// kick wakes the writer.
func (cc *clientConn) kick() {
	select {
	case cc.wake <- struct{}{}:
	default:
	}
}

// writeDirect writes one call from its caller's goroutine. REQUIRES: the
// caller set cc.writing.
func (cc *clientConn) writeDirect(c *call) {
	// A started call (Client.Start) may be answered, completed and recycled as soon
	// as it is written: nothing here reads c after the write but for wrote, which only
	// a waiting caller's call with a value has.
	frame, value := c.frame, c.value
	c.state.Store(callWriting)
	cc.diov = [2][]byte{frame, value}
	cc.dbufs = cc.diov[:1]
	if value != nil {
		cc.dbufs = cc.diov[:2]
	}
	err := cc.nc.SetWriteDeadline(time.Now().Add(cc.cl.cfg.WriteTimeout))
	if err == nil {
		err = writeBuffers(cc.nc, &cc.dbufs, cc.gather)
	}
	cc.diov = [2][]byte{}
	putBuf(frame)
	if value != nil {
		c.wrote <- struct{}{}
	}
	cc.doneWriting()
	if err != nil {
		cc.fail(fmt.Errorf("write: %w", err))
	}
}

// doneWriting clears cc.writing and wakes the writer for what queued meanwhile.
func (cc *clientConn) doneWriting() {
	cc.mu.Lock()
	cc.writing = false
	more := len(cc.queue) > 0
	cc.mu.Unlock()
	if more {
		cc.kick()
	}
}

// finish collects the outcome of a completed call and recycles the call when the writer
// is done with it.
func (cc *clientConn) finish(c *call) (*Response, error) {
	resp, err := c.resp, c.err
	if !c.state.CompareAndSwap(callQueued, callAbandoned) {
		// The writer claimed the call; wait until it no longer reads the value.
		if c.value != nil {
			<-c.wrote
		}
		putCall(c)
	}
	return resp, err
}

// abandon gives up on a call whose context ended.
func (cc *clientConn) abandon(c *call, id uint64, op codec.Op, cause error) (*Response, error) {
	cc.mu.Lock()
	_, mine := cc.pending[id]
	if mine {
		delete(cc.pending, id)
		cc.queued -= c.size
	}
	cc.mu.Unlock()
	if !mine {
		// The reply (or the connection's failure) was delivered meanwhile: take it.
		<-c.done
		return cc.finish(c)
	}
	err := fmt.Errorf("eventloop: %s %s: %w", cc.cl.cfg.Addr, op, cause)
	if c.state.CompareAndSwap(callQueued, callAbandoned) {
		return nil, err // never written; the writer will skip it
	}
	if c.value != nil {
		// The caller may reuse value as soon as we return: wait for the write to finish
		// (bounded by WriteTimeout).
		<-c.wrote
	}
	putCall(c)
	return nil, err
}

// writeLoop writes queued requests, all that accumulated since the last write in one
// writev: frames and zero-copy values side by side.
func (cc *clientConn) writeLoop() {
	defer cc.cl.wg.Done()
	var (
		batch  []*call
		iov    net.Buffers
		bufs   net.Buffers // WriteTo consumes its receiver; declared here, it escapes once
		frames [][]byte
		wrote  []*call
	)
	for {
		select {
		case <-cc.wake:
		case <-cc.closing:
			return
		}
		// Let the callers that are runnable queue their requests too: one writev for many
		// requests instead of one each. Costs nothing when nothing else is runnable.
		runtime.Gosched()
		cc.mu.Lock()
		if cc.writing || len(cc.queue) == 0 {
			cc.mu.Unlock()
			continue // a caller is writing directly; it kicks us when done
		}
		cc.writing = true
		batch, cc.queue = cc.queue, batch[:0]
		cc.mu.Unlock()

		for _, c := range batch {
			frame, value := c.frame, c.value
			if !c.state.CompareAndSwap(callQueued, callWriting) {
				continue // abandoned by its caller
			}
			iov, frames = append(iov, frame), append(frames, frame)
			if value != nil {
				iov, wrote = append(iov, value), append(wrote, c)
			}
		}
		clear(batch)
		if len(iov) == 0 {
			cc.doneWriting()
			continue
		}
		err := cc.nc.SetWriteDeadline(time.Now().Add(cc.cl.cfg.WriteTimeout))
		if err == nil {
			bufs = iov
			err = writeBuffers(cc.nc, &bufs, cc.gather)
		}
		for _, f := range frames {
			putBuf(f)
		}
		for _, c := range wrote {
			c.wrote <- struct{}{}
		}
		clear(iov)
		clear(frames)
		clear(wrote)
		iov, frames, wrote = iov[:0], frames[:0], wrote[:0]
		cc.doneWriting()
		if err != nil {
			cc.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}

// readLoop reads replies and hands each to its waiting call.
//
// A reply that has begun to arrive must finish within RequestTimeout plus the time its
// bytes take at MinRate: a peer that stalls in the middle of a frame (a paused process, a
// half-dead link that TCP keepalive still answers for) would otherwise hold the reader
// forever, and every later call on the connection would time out one by one without the
// connection ever being redialled. The reader notes when it began to wait for the rest of
// a frame and the sweep fails the connection past that allowance, which keeps timer
// updates (a read deadline set and cleared around every frame that arrives in pieces) off
// the reader's path. Between replies the reader waits without a bound.
func (cc *clientConn) readLoop() {
	defer cc.cl.wg.Done()
	rb := make([]byte, readBufSize)
	r, w := 0, 0      // unread bytes are rb[r:w]
	midFrame := false // waiting for the rest of a frame: the sweep watches (stalledSince)
	within := func(frameBytes int) {
		if !midFrame {
			midFrame = true
			cc.stallAllowed.Store(int64(requestTimeout(cc.cl.cfg.RequestTimeout, frameBytes, cc.cl.cfg.MinRate)))
			cc.stalledSince.Store(time.Now().UnixNano())
		}
	}
	fill := func(need int) error {
		if len(rb)-r < need {
			w = copy(rb, rb[r:w])
			r = 0
		}
		for w-r < need {
			if w > r {
				within(need)
			}
			n, err := cc.nc.Read(rb[w:])
			w += n
			if err != nil && w-r < need {
				return err
			}
		}
		return nil
	}
	frameDone := func() {
		if midFrame {
			midFrame = false
			cc.stalledSince.Store(0)
		}
	}
	for {
		if err := fill(codec.HeaderSize); err != nil {
			cc.fail(fmt.Errorf("read: %w", err))
			return
		}
		h, err := codec.ParseHeader(rb[r:w], cc.cl.cfg.MaxFrame)
		if err != nil {
			cc.fail(err)
			return
		}
		n := h.FrameLen()
		buf := getBuf(n)[:n]
		if n <= len(rb) {
			if err := fill(n); err != nil {
				putBuf(buf)
				cc.fail(fmt.Errorf("read: %w", err))
				return
			}
			copy(buf, rb[r:r+n])
			r += n
		} else {
			// Large reply: its call's deadline restarts with time for its bytes. Copy what
			// is buffered, read the rest straight into place.
			cc.extend(h.ID, n)
			m := copy(buf, rb[r:w])
			r, w = 0, 0
			frameDone() // the header's allowance: the body gets its own
			within(n)
			if _, err := io.ReadFull(cc.nc, buf[m:]); err != nil {
				putBuf(buf)
				cc.fail(fmt.Errorf("read: %w", err))
				return
			}
		}
		frameDone()
		if err := cc.deliver(buf); err != nil {
			cc.fail(err)
			return
		}
	}
}

// extend restarts the deadline of request id, whose reply of n bytes has begun to arrive,
// with the time those bytes take at MinRate. Under mu, a call in pending still belongs to
// its caller (abandon removes it under mu before recycling it), so its timer is its own.
func (cc *clientConn) extend(id uint64, n int) {
	cc.mu.Lock()
	if c := cc.pending[id]; c != nil {
		timeout := requestTimeout(cc.cl.cfg.RequestTimeout, n, cc.cl.cfg.MinRate)
		switch {
		case c.timed:
			c.timer.Reset(timeout)
		case c.cb != nil:
			c.deadline = time.Now().Add(timeout).UnixNano()
		}
	}
	cc.mu.Unlock()
}

// deliver decodes one reply frame (taking ownership of buf) and completes its call.
func (cc *clientConn) deliver(buf []byte) error {
	resp := responsePool.Get().(*Response)
	resp.buf = buf
	if err := codec.DecodeReply(buf, &resp.Reply); err != nil {
		resp.Release()
		return err
	}
	if resp.ID == 0 {
		// A connection-level error: the server is about to close the connection.
		err := fmt.Errorf("%s: %s", resp.Status, resp.Msg)
		resp.Release()
		return err
	}
	cc.mu.Lock()
	c := cc.pending[resp.ID]
	if c != nil {
		delete(cc.pending, resp.ID)
		cc.queued -= c.size
	}
	cc.mu.Unlock()
	if c == nil {
		resp.Release() // its caller gave up
		return nil
	}
	c.resp = resp
	cc.complete(c)
	return nil
}

// readFull reads exactly len(b) bytes.
func readFull(nc net.Conn, b []byte) (int, error) { return io.ReadFull(nc, b) }
