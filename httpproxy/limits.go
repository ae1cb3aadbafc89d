package httpproxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Limits bound what clients can hold of a server made by NewServer: time,
// connections and memory. Zero fields take the defaults.
type Limits struct {
	// HeaderTimeout bounds the wait for a new connection's first byte and
	// the reading of each request's line and headers (from the connection's
	// start for the first request, from the first byte for the next ones):
	// a slow-loris client is cut off after it. Default 10s.
	HeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Default 2m.
	IdleTimeout time.Duration
	// MinRate is the slowest average rate, in bytes a second, at which a
	// request body must arrive and a response be taken, on top of
	// HeaderTimeout: at the default 1 MiB/s a 64 MiB value has 74s. A
	// body's deadline follows its Content-Length; a response's is sized
	// for the largest value.
	MinRate int
	// MaxConnsPerIP caps the connections one client address holds at once;
	// the next is answered 429 and closed. Default 1024.
	MaxConnsPerIP int
	// BodyBudgetBytes bounds the request body bytes being received and
	// handled at once, counted from each request's Content-Length before
	// its body is read (a chunked body counts as the largest value). A body
	// over the budget is not buffered: its bytes are read and thrown away
	// and the request answered 503 with Retry-After: 1. A lone body is
	// always admitted, so a budget below the largest value cannot lock one
	// out. Default: twice the largest value, at least 128 MiB. (A body costs
	// the node about three times its size while it is stored — the body, the
	// store's batch, the WAL — so the budget is set low.)
	BodyBudgetBytes int64
}

func (l *Limits) setDefaults(maxValue int) {
	if l.HeaderTimeout <= 0 {
		l.HeaderTimeout = 10 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 2 * time.Minute
	}
	if l.MinRate <= 0 {
		l.MinRate = 1 << 20
	}
	if l.MaxConnsPerIP <= 0 {
		l.MaxConnsPerIP = 1024
	}
	if l.BodyBudgetBytes <= 0 {
		l.BodyBudgetBytes = max(2*int64(maxValue), 128<<20)
	}
}

// transferTime is how long n bytes may take at the slowest accepted rate.
func (l *Limits) transferTime(n int) time.Duration {
	return l.HeaderTimeout + time.Duration(int64(n)*int64(time.Second)/int64(l.MinRate))
}

// headerReceived runs once a request's headers are read, before its body:
// the body gets a read deadline sized by its length, so a large value is
// not cut off by HeaderTimeout and a slow one is by its own bound.
func (h *Handler) headerReceived(hdr *fasthttp.RequestHeader) fasthttp.RequestConfig {
	n := hdr.ContentLength()
	if n < 0 || n > h.cfg.MaxValueBytes {
		n = h.cfg.MaxValueBytes // chunked, or refused unread with 413
	}
	return fasthttp.RequestConfig{ReadTimeout: h.cfg.Limits.transferTime(n)}
}

// budget counts bytes in flight against a maximum. Safe for concurrent use.
type budget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes and reports whether they fit; a reservation into
// an empty budget always fits.
func (b *budget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u > 0 && u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// smallBody is the largest body read into a pooled buffer; larger ones get
// a buffer of their own, dropped after the request, so a burst of large
// values does not stay pinned in a pool.
const smallBody = 64 << 10

var hdrRetryAfter = []byte("Retry-After")

// value returns the value a write's request carries, read under the body
// budget, and done, to call once the value is no longer used. ok false: the
// request is answered already (413, 503 over budget, or a body that did not
// arrive).
func (h *Handler) value(ctx *fasthttp.RequestCtx) (v []byte, done func(), ok bool) {
	stream := ctx.RequestBodyStream()
	if stream == nil {
		// The body was read before the handler ran (a server not made by
		// NewServer, or a test calling Serve): nothing left to bound.
		v = ctx.PostBody()
		if len(v) > h.cfg.MaxValueBytes {
			textError(ctx, fasthttp.StatusRequestEntityTooLarge, "value larger than the configured maximum")
			return nil, nil, false
		}
		return v, func() {}, true
	}
	n := ctx.Request.Header.ContentLength()
	if n > h.cfg.MaxValueBytes {
		// Not worth reading: close the connection rather than drain it.
		ctx.SetConnectionClose()
		textError(ctx, fasthttp.StatusRequestEntityTooLarge, "value larger than the configured maximum")
		return nil, nil, false
	}
	reserve := int64(n)
	if n < 0 {
		reserve = int64(h.cfg.MaxValueBytes) // chunked: the length is known only at the end
	}
	if !h.bodies.take(reserve) {
		h.overBudget(ctx, stream, n)
		return nil, nil, false
	}
	v, put, err := h.readValue(stream, n)
	if err != nil {
		h.bodies.give(reserve)
		ctx.SetConnectionClose()
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			textError(ctx, fasthttp.StatusRequestEntityTooLarge, "value larger than the configured maximum")
		} else {
			textError(ctx, fasthttp.StatusBadRequest, "request body: "+err.Error())
		}
		return nil, nil, false
	}
	return v, func() { put(); h.bodies.give(reserve) }, true
}

// readValue reads a body of n bytes (-1: chunked) from stream. put returns
// a pooled buffer; v is valid until then.
func (h *Handler) readValue(stream io.Reader, n int) (v []byte, put func(), err error) {
	switch {
	case n < 0:
		v, err = io.ReadAll(io.LimitReader(stream, int64(h.cfg.MaxValueBytes)+1))
		if err == nil && len(v) > h.cfg.MaxValueBytes {
			err = fasthttp.ErrBodyTooLarge
		}
		return v, func() {}, err
	case n <= smallBody:
		bp := h.bodyBufs.Get().(*[]byte)
		if cap(*bp) < n {
			*bp = make([]byte, smallBody)
		}
		v = (*bp)[:n]
		_, err = io.ReadFull(stream, v)
		return v, func() { h.bodyBufs.Put(bp) }, err
	default:
		v = make([]byte, n)
		_, err = io.ReadFull(stream, v)
		return v, func() {}, err
	}
}

// overBudget answers a write whose body does not fit the budget: 503 with
// Retry-After. The body is read and thrown away first (no memory kept): a
// client still sending it when the server closes would get a reset and
// likely lose the answer. The body's read deadline bounds the drain.
func (h *Handler) overBudget(ctx *fasthttp.RequestCtx, stream io.Reader, n int) {
	limit := int64(n)
	if n < 0 {
		limit = int64(h.cfg.MaxValueBytes) + 1
	}
	got, err := io.CopyN(io.Discard, stream, limit)
	if n >= 0 && got < limit || n < 0 && !errors.Is(err, io.EOF) {
		ctx.SetConnectionClose() // not all read: the connection is out of step
	}
	h.overBudgetLog.Warn(h.cfg.Logger, "request body refused: over the memory budget for bodies in flight",
		"remote", ctx.RemoteAddr().String(), "bytes", n, "budget", h.bodies.max)
	textError(ctx, fasthttp.StatusServiceUnavailable,
		"request bodies in flight exceed the memory budget ("+strconv.FormatInt(h.bodies.max, 10)+" bytes); retry")
	ctx.Response.Header.SetCanonical(hdrRetryAfter, []byte("1"))
}

// RetryAccept wraps ln so that Accept rides out errors a busy or exhausted
// process recovers from — out of descriptors (EMFILE, ENFILE), of buffers,
// a connection aborted before it was taken, a timeout — instead of
// returning them: fasthttp's Serve ends on any such error, and the process
// with it. It sleeps between attempts, from 5ms doubling to 1s, logging at
// most once a second; Close wakes a sleeping Accept, which then returns
// net.ErrClosed.
func RetryAccept(ln net.Listener, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.Default()
	}
	return &retryListener{Listener: ln, log: log, closed: make(chan struct{})}
}

type retryListener struct {
	net.Listener
	log       *slog.Logger
	closed    chan struct{}
	closeOnce sync.Once
	logged    LogLimiter
}

const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

func (l *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !retryableAccept(err) {
			return c, err
		}
		delay = min(max(2*delay, minAcceptBackoff), maxAcceptBackoff)
		l.logged.Warn(l.log, "http accept failed; retrying", "addr", l.Addr().String(), "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-l.closed:
			t.Stop()
			return nil, fmt.Errorf("httpproxy: accept: %w", net.ErrClosed)
		case <-t.C:
		}
	}
}

func (l *retryListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// retryableAccept reports whether an Accept error passes with time.
func retryableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// LogLimiter logs at most once a second, counting the lines it left out
// (noisy causes: refused connections, refused records). The zero value is
// ready; it is safe for concurrent use.
type LogLimiter struct {
	last    atomic.Int64 // unix nanoseconds of the last line
	dropped atomic.Int64
}

// Warn logs msg at warning level unless a line went out less than a second
// ago.
func (r *LogLimiter) Warn(l *slog.Logger, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(time.Second) || !r.last.CompareAndSwap(last, now) {
		r.dropped.Add(1)
		return
	}
	l.Warn(msg, append(args, "suppressed", r.dropped.Swap(0))...)
}
