package httpproxy

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tako-kv/tako/kv/hlc"
	"github.com/tako-kv/tako/kv/lww"
	"github.com/tako-kv/tako/server/metrics"
	"github.com/valyala/fasthttp"
)

// Errors a Backend wraps to tell the handler what happened.
var (
	// ErrUnavailable: too few replicas answered; the handler answers 503.
	ErrUnavailable = errors.New("replicas unavailable")
	// ErrNoReadQuorum comes with a record from Get or Stat: the newest among
	// the replicas that answered, fewer than a read quorum. The handler
	// serves it marked X-Read-Quorum: no.
	ErrNoReadQuorum = errors.New("read without a read quorum")
)

// Acks is how many replicas must durably acknowledge a write.
type Acks uint8

const (
	AcksDefault Acks = iota // the deployment's write_acks
	AcksOne
	AcksQuorum
	AcksAll
)

func (a Acks) String() string {
	switch a {
	case AcksOne:
		return "one"
	case AcksQuorum:
		return "quorum"
	case AcksAll:
		return "all"
	}
	return "default"
}

// ParseAcks parses "one", "quorum" or "all", in any case ("" is
// AcksDefault): header values are case-insensitive (X-Write-Acks: ALL).
func ParseAcks(s string) (Acks, error) {
	for _, a := range [...]Acks{AcksOne, AcksQuorum, AcksAll} {
		if strings.EqualFold(s, a.String()) {
			return a, nil
		}
	}
	if s == "" {
		return AcksDefault, nil
	}
	return 0, fmt.Errorf("httpproxy: write acks %q: want one, quorum or all", s)
}

// Backend is what the HTTP API reads and writes: a node's local store or the
// cluster behind a proxy. Implementations are safe for concurrent use.
type Backend interface {
	// Get returns key's current record (tombstones included) with the value
	// appended to dst[:0]; lww.ErrNotFound when no replica has it. With
	// ErrNoReadQuorum the record is valid too.
	Get(key, dst []byte) (lww.Record, error)
	// Stat is Get without the value.
	Stat(key []byte) (lww.Meta, error)
	// Apply writes rec under last-write-wins and returns once acks replicas
	// have it durably.
	Apply(key []byte, rec lww.Record, acks Acks) (lww.Result, error)
}

// Reader is one replica's own store, read without routing.
type Reader interface {
	// Get returns the stored record (tombstones included), value appended
	// to dst[:0]; lww.ErrNotFound when there is none.
	Get(key, dst []byte) (lww.Record, error)
}

// Config configures a Handler.
type Config struct {
	Backend Backend
	// Local, when set (a node), serves GET /replica/<key>: this node's own
	// record, for checkers and operators.
	Local Reader
	// Clock stamps writes that carry no X-Timestamp, observes the
	// timestamps of the records the Backend returns, and bounds a client's
	// X-Timestamp. Default: a clock with no offset.
	Clock *hlc.Clock
	// MaxValueBytes bounds a value; larger bodies get 413. Default 64 MiB.
	MaxValueBytes int
	Logger        *slog.Logger
	// ConfigVersion, when set, is reported by /health in X-Config-Version.
	ConfigVersion func() string
	// Keys, when set, serves GET /keys (keys.go).
	Keys Lister
	// Routes serves further paths (exact match, any method), such as a
	// node's /status.
	Routes map[string]fasthttp.RequestHandler
	// Limits bound what clients hold of the server (see Limits).
	Limits Limits
	// Metrics counts every request and its duration. Default: metrics
	// registered nowhere.
	Metrics *metrics.HTTP
	// Tokens, when it holds tokens, requires a bearer token on every path
	// but /health: a read-only one for GET and HEAD, a read-write one for
	// other methods (401 without a known token, 403 for a read-only token
	// that writes). Nil or empty: no authentication.
	Tokens *TokenGuard
	// OpenPaths are further paths (exact match) served without a token,
	// such as a readiness probe's.
	OpenPaths []string
}

// Handler serves the HTTP API. See the package doc.
type Handler struct {
	cfg           Config
	keyBufs       sync.Pool // *[]byte holding a decoded key
	bodyBufs      sync.Pool // *[]byte holding a value of up to smallBody bytes
	bodies        budget    // request body bytes in flight
	overBudgetLog LogLimiter
	refusedLog    LogLimiter // 503 and 507 answers, with their whole error
}

// NewHandler returns a Handler over cfg.Backend.
func NewHandler(cfg Config) *Handler {
	if cfg.Clock == nil {
		cfg.Clock = hlc.New(0)
	}
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewHTTP(nil)
	}
	cfg.Limits.setDefaults(cfg.MaxValueBytes)
	h := &Handler{cfg: cfg}
	h.bodies.max = cfg.Limits.BodyBudgetBytes
	h.keyBufs.New = func() any { b := make([]byte, 0, 128); return &b }
	h.bodyBufs.New = func() any { b := make([]byte, smallBody); return &b }
	return h
}

// NewServer returns a fasthttp server running h, sized for h's limits. Serve
// it on a listener wrapped by RetryAccept.
//
// Bodies are streamed (StreamRequestBody): fasthttp would otherwise read a
// whole body into a pooled buffer before the handler could refuse it, and
// keep large buffers pooled after; the handler reads each body itself under
// the body budget. ReduceMemoryUsage returns a connection's read and write
// buffers (the read buffer is sized for a 64 KiB key: about 200 KiB) to
// their pools between requests, so idle keep-alive connections and silent
// ones waiting for their first byte hold none.
func (h *Handler) NewServer() *fasthttp.Server {
	lim := h.cfg.Limits
	return &fasthttp.Server{
		Handler: h.Serve,
		Name:    "tako",
		// The request line carries the key: a 64 KiB key percent-encoded is
		// up to 192 KiB. Longer lines are refused by fasthttp itself.
		ReadBufferSize:     3*lww.MaxKeyLen + 8<<10,
		MaxRequestBodySize: h.cfg.MaxValueBytes,
		StreamRequestBody:  true,
		// Values are opaque bytes: a multipart Content-Type must not turn
		// a value into a parsed form (and temporary files).
		DisablePreParseMultipartForm: true,
		ReduceMemoryUsage:            true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		// ReadTimeout covers the first byte and the headers; headerReceived
		// then gives the body a deadline of its own, by its length.
		ReadTimeout:     lim.HeaderTimeout,
		HeaderReceived:  h.headerReceived,
		WriteTimeout:    lim.transferTime(h.cfg.MaxValueBytes),
		IdleTimeout:     lim.IdleTimeout,
		MaxConnsPerIP:   lim.MaxConnsPerIP,
		CloseOnShutdown: true,
		Logger:          slogPrinter{h.cfg.Logger},
		ErrorHandler:    h.parseError,
		// fasthttp quotes the raw request headers in its parse errors,
		// bearer tokens included: neither the log nor the 400 may.
		SecureErrorLogMessage: true,
	}
}

// parseError answers requests fasthttp could not parse, with the right
// status and a one-line reason.
func (h *Handler) parseError(ctx *fasthttp.RequestCtx, err error) {
	defer h.cfg.Metrics.Observe(ctx, time.Now())
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		// fasthttp finds the end of the headers only at CRLF CRLF: a request
		// ending them with bare LFs waits here too, and this says why.
		textError(ctx, fasthttp.StatusRequestTimeout, "request line and headers not complete within the header timeout (they must end with CRLF CRLF)")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		textError(ctx, fasthttp.StatusRequestEntityTooLarge, "value larger than the configured maximum")
	case errors.As(err, &small):
		textError(ctx, fasthttp.StatusRequestURITooLong, "request line or headers too long")
	default:
		textError(ctx, fasthttp.StatusBadRequest, "malformed request: "+err.Error())
	}
}

var (
	prefixValues   = []byte("/values/")
	prefixStat     = []byte("/stat/")
	prefixReplica  = []byte("/replica/")
	pathHealth     = []byte("/health")
	hdrTimestamp   = []byte("X-Timestamp")
	hdrWriteAcks   = []byte("X-Write-Acks")
	hdrApplied     = []byte("X-Applied")
	hdrReadQuorum  = []byte("X-Read-Quorum")
	hdrTombstone   = []byte("X-Tombstone")
	valueNo        = []byte("no")
	valueYes       = []byte("yes")
	hdrContentType = []byte("application/octet-stream")
)

// Serve is the fasthttp request handler.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) {
	defer h.cfg.Metrics.Observe(ctx, time.Now())
	uri := originForm(ctx.Request.Header.RequestURI())
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if !h.open(uri) && !h.cfg.Tokens.authorize(ctx) {
		return
	}
	switch {
	case bytes.HasPrefix(uri, prefixValues):
		h.withKey(ctx, uri[len(prefixValues):], h.serveValues)
	case bytes.HasPrefix(uri, prefixStat):
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		h.withKey(ctx, uri[len(prefixStat):], h.serveStat)
	case bytes.HasPrefix(uri, prefixReplica) && h.cfg.Local != nil:
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		h.withKey(ctx, uri[len(prefixReplica):], h.serveReplica)
	case bytes.Equal(uri, pathKeys) && h.cfg.Keys != nil:
		h.serveKeys(ctx)
	case bytes.Equal(uri, pathHealth):
		if h.cfg.ConfigVersion != nil {
			ctx.Response.Header.Set("X-Config-Version", h.cfg.ConfigVersion())
		}
		ctx.SetBodyString("ok\n")
	default:
		if route, ok := h.cfg.Routes[string(uri)]; ok {
			route(ctx)
			return
		}
		textError(ctx, fasthttp.StatusNotFound, "no such path; use /values/<key>, /stat/<key> or /health")
	}
}

// originForm is a request target's path and query: an absolute-form target
// (http://host/values/k, which RFC 9112 says a server must accept) less its
// scheme and authority. Other targets are returned as they are.
func originForm(uri []byte) []byte {
	rest, ok := bytes.CutPrefix(uri, []byte("http://"))
	if !ok {
		if rest, ok = bytes.CutPrefix(uri, []byte("https://")); !ok {
			return uri
		}
	}
	if i := bytes.IndexAny(rest, "/?"); i >= 0 {
		if rest[i] == '?' {
			return append([]byte("/"), rest[i:]...)
		}
		return rest[i:]
	}
	return []byte("/")
}

// open reports whether uri is served without a token: /health and OpenPaths.
func (h *Handler) open(uri []byte) bool {
	if bytes.Equal(uri, pathHealth) {
		return true
	}
	for _, p := range h.cfg.OpenPaths {
		if string(uri) == p {
			return true
		}
	}
	return false
}

// withKey decodes the raw key and calls serve with it.
func (h *Handler) withKey(ctx *fasthttp.RequestCtx, raw []byte, serve func(*fasthttp.RequestCtx, []byte)) {
	kb := h.keyBufs.Get().(*[]byte)
	defer h.keyBufs.Put(kb)
	key, err := decodeKey((*kb)[:0], raw)
	*kb = key
	switch {
	case err != nil:
		textError(ctx, fasthttp.StatusBadRequest, err.Error())
	case len(key) == 0:
		textError(ctx, fasthttp.StatusBadRequest, "empty key")
	case len(key) > lww.MaxKeyLen:
		textError(ctx, fasthttp.StatusRequestURITooLong, "key longer than 65536 bytes")
	default:
		serve(ctx, key)
	}
}

func (h *Handler) serveValues(ctx *fasthttp.RequestCtx, key []byte) {
	switch {
	case ctx.IsGet(), ctx.IsHead():
		h.get(ctx, key)
	case ctx.IsPost(), ctx.IsPut():
		h.write(ctx, key, false)
	case ctx.IsDelete():
		h.write(ctx, key, true)
	default:
		methodNotAllowed(ctx, "GET, HEAD, POST, PUT, DELETE")
	}
}

func (h *Handler) get(ctx *fasthttp.RequestCtx, key []byte) {
	h.serveRecord(ctx, key, h.cfg.Backend.Get)
}

// serveReplica answers GET /replica/<key> from this node's own store: a
// tombstone is a 404 with its X-Timestamp and X-Tombstone: yes.
func (h *Handler) serveReplica(ctx *fasthttp.RequestCtx, key []byte) {
	h.serveRecord(ctx, key, h.cfg.Local.Get)
}

// serveRecord answers a read of key's record from get.
func (h *Handler) serveRecord(ctx *fasthttp.RequestCtx, key []byte, get func(key, dst []byte) (lww.Record, error)) {
	// Read straight into the response's body buffer: no copy, no allocation.
	buf := ctx.Response.SwapBody(nil)
	rec, err := get(key, buf[:0])
	if err = h.readResult(ctx, err, rec.Meta()); err != nil {
		ctx.Response.SwapBody(buf)
		h.backendError(ctx, err)
		return
	}
	ctx.Response.SwapBody(rec.Value)
	ctx.Response.Header.SetContentTypeBytes(hdrContentType)
	setTimestamp(ctx, rec.TS)
}

// readResult observes a read's record and marks the reply: a read without a
// read quorum, a tombstone (its timestamp, then not found). It returns the
// error left to answer with.
func (h *Handler) readResult(ctx *fasthttp.RequestCtx, err error, m lww.Meta) error {
	if errors.Is(err, ErrNoReadQuorum) {
		ctx.Response.Header.SetCanonical(hdrReadQuorum, valueNo)
		err = nil
	}
	if err != nil {
		return err
	}
	h.cfg.Clock.Observe(m.TS)
	if m.Tombstone {
		setTimestamp(ctx, m.TS)
		ctx.Response.Header.SetCanonical(hdrTombstone, valueYes)
		return lww.ErrNotFound
	}
	return nil
}

func (h *Handler) serveStat(ctx *fasthttp.RequestCtx, key []byte) {
	m, err := h.cfg.Backend.Stat(key)
	if err = h.readResult(ctx, err, m); err != nil {
		h.backendError(ctx, err)
		return
	}
	setTimestamp(ctx, m.TS)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	var b [24]byte
	ctx.Response.AppendBody(strconv.AppendInt(b[:0], m.TS, 10))
	ctx.Response.AppendBodyString("\n")
}

func (h *Handler) write(ctx *fasthttp.RequestCtx, key []byte, tombstone bool) {
	ts, ok, err := parseTimestamp(ctx.Request.Header.PeekBytes(hdrTimestamp))
	if err != nil {
		textError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	switch {
	case !ok:
		ts = h.cfg.Clock.Now()
	default:
		if err := h.cfg.Clock.Check(ts); err != nil {
			textError(ctx, fasthttp.StatusBadRequest, "bad X-Timestamp: "+err.Error())
			return
		}
	}
	acks, err := ParseAcks(string(ctx.Request.Header.PeekBytes(hdrWriteAcks)))
	if err != nil {
		textError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	rec := lww.Record{TS: ts, Tombstone: tombstone}
	if !tombstone {
		v, done, ok := h.value(ctx)
		if !ok {
			return
		}
		defer done()
		rec.Value = v
	}
	res, err := h.cfg.Backend.Apply(key, rec, acks)
	if err != nil {
		h.backendError(ctx, err)
		return
	}
	h.cfg.Clock.Observe(res.TS)
	setTimestamp(ctx, res.TS)
	if !res.Applied {
		// A newer record won; X-Timestamp is the winner's.
		ctx.Response.Header.SetCanonical(hdrApplied, valueNo)
	}
}

// parseTimestamp parses an X-Timestamp value: decimal µs since the epoch.
func parseTimestamp(v []byte) (ts int64, ok bool, err error) {
	if len(v) == 0 {
		return 0, false, nil
	}
	neg := v[0] == '-'
	digits := v
	if neg {
		digits = v[1:]
	}
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false, fmt.Errorf("bad X-Timestamp %q: want decimal microseconds", v)
	}
	var u uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("bad X-Timestamp %q: want decimal microseconds", v)
		}
		u = u*10 + uint64(c-'0')
	}
	if u > 1<<63-1 {
		return 0, false, fmt.Errorf("bad X-Timestamp %q: out of range", v)
	}
	ts = int64(u)
	if neg {
		ts = -ts
	}
	return ts, true, nil
}

func setTimestamp(ctx *fasthttp.RequestCtx, ts int64) {
	var b [24]byte
	ctx.Response.Header.SetCanonical(hdrTimestamp, strconv.AppendInt(b[:0], ts, 10))
	ctx.Response.Header.SetLastModified(time.UnixMicro(ts))
}

func (h *Handler) backendError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, lww.ErrNotFound):
		textError(ctx, fasthttp.StatusNotFound, "not found")
	case errors.Is(err, lww.ErrKeyTooLong):
		textError(ctx, fasthttp.StatusRequestURITooLong, err.Error())
	case errors.Is(err, lww.ErrKeyEmpty):
		textError(ctx, fasthttp.StatusBadRequest, err.Error())
	case errors.Is(err, lww.ErrDiskFull), errors.Is(err, syscall.ENOSPC):
		h.refusedLog.Warn(h.cfg.Logger, "request refused", "method", string(ctx.Method()), "uri", logURI(ctx), "err", err)
		textError(ctx, fasthttp.StatusInsufficientStorage, err.Error())
	case errors.Is(err, ErrUnavailable):
		h.refusedLog.Warn(h.cfg.Logger, "request refused", "method", string(ctx.Method()), "uri", logURI(ctx), "err", err)
		textError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
	default:
		h.cfg.Logger.Error("request failed", "method", string(ctx.Method()), "uri", logURI(ctx), "err", err)
		textError(ctx, fasthttp.StatusInternalServerError, err.Error())
	}
}

// textError answers status with a one-line reason in plain words: the Go
// package prefixes of wrapped errors ("eventloop: ") are context for logs,
// not for clients.
func textError(ctx *fasthttp.RequestCtx, status int, reason string) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.AppendBodyString(plainReason(reason))
	ctx.Response.AppendBodyString("\n")
}

// goPrefixes are the prefixes Tako's packages put on their errors.
var goPrefixes = []string{"httpproxy", "eventloop", "kv", "codec", "hlc", "lww", "server", "cluster", "config", "configsource", "hints"}

// plainReason drops the package prefixes from an error text: a prefix is
// one of goPrefixes and ": " at the start, or after a space or '('.
func plainReason(s string) string {
	if !strings.Contains(s, ": ") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if i == 0 || s[i-1] == ' ' || s[i-1] == '(' {
			if n := prefixAt(s[i:]); n > 0 {
				i += n
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// prefixAt returns the length of the package prefix s starts with, or 0.
func prefixAt(s string) int {
	for _, p := range goPrefixes {
		if strings.HasPrefix(s, p) && strings.HasPrefix(s[len(p):], ": ") {
			return len(p) + 2
		}
	}
	return 0
}

// logURI is the request URI for a log line, cut to a sane length (keys
// run to 64 KiB).
func logURI(ctx *fasthttp.RequestCtx) string {
	return fmt.Sprintf("%.256s", ctx.RequestURI())
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	textError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed; allowed: "+allow)
}

// Listen opens a TCP listener for the HTTP API, so a taken port is reported
// before serving starts.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpproxy: listen %s: %w", addr, err)
	}
	return ln, nil
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.l.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}
