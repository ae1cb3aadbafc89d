package eventloop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tako-kv/tako/codec"
)

// ClientConfig configures a Client. Zero values take the defaults noted.
type ClientConfig struct {
	// Addr is the peer's host:port.
	Addr string
	// NodeID is sent in the Hello; empty for proxies.
	NodeID string
	// Secrets are the cluster secrets (ReadSecretFile), the current one first. When set,
	// each connection's handshake is the challenge-response of codec/doc.go ("Cluster
	// secret"): the client refuses a server that proves none of them (ErrUnproven) and
	// proves itself with the first one the server proved. Empty: no proof is offered or
	// asked for.
	Secrets [][]byte
	// TLS, when set, runs each connection under TLS (doc.go, "TLS"): RootCAs to verify the
	// server, and Certificates for mutual TLS. ServerName defaults to Addr's host. The TLS
	// handshake counts in DialTimeout. nil: plaintext.
	TLS *tls.Config
	// Conns is the number of connections to the peer. Default 2.
	Conns int
	// DialTimeout bounds connecting plus the handshake. Default 1s.
	DialTimeout time.Duration
	// WriteTimeout bounds one coalesced write; a peer that stops reading for this long loses
	// the connection. Default 5s.
	WriteTimeout time.Duration
	// RequestTimeout bounds a request whose context carries no deadline, so
	// callers on a hot path need not allocate one: its base, to which the time the
	// bytes take at MinRate is added (requestTimeout). Default 5s.
	RequestTimeout time.Duration
	// MinRate is the slowest transfer a request's deadline allows for: the request's
	// bytes and those queued ahead of it on its connection when it is sent, and a large
	// reply's bytes once its header arrives (the deadline then restarts). Default 20 MB/s,
	// so a 60 MiB Set waits 5s + 3.1s (and more behind other large requests).
	MinRate int
	// MaxBackoff caps the wait between failed connection attempts. Default 1s.
	MaxBackoff time.Duration
	// MaxFrame is the largest reply accepted, header included. Default codec.DefaultMaxFrame.
	MaxFrame int
	// Logger receives connection failures. Default slog.Default().
	Logger *slog.Logger
}

const (
	defaultConns          = 2
	defaultDialTimeout    = time.Second
	defaultWriteTimeout   = 5 * time.Second
	defaultMaxBackoff     = time.Second
	defaultRequestTimeout = 5 * time.Second
	defaultMinRate        = 20e6 // bytes per second
	minBackoff            = 20 * time.Millisecond
)

func (cfg *ClientConfig) setDefaults() {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.MinRate <= 0 {
		cfg.MinRate = defaultMinRate
	}
	if cfg.Conns <= 0 {
		cfg.Conns = defaultConns
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = codec.DefaultMaxFrame
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

// Errors returned by Client. Errors from a request also wrap the cause (net errors,
// context.DeadlineExceeded, codec errors) and name the peer.
var (
	// ErrClosed: the client (or its pool) was closed.
	ErrClosed = errors.New("eventloop: client closed")
	// ErrConnLost: the connection carrying the request died before the reply came. The
	// request may or may not have been applied.
	ErrConnLost = errors.New("eventloop: connection lost")
	// ErrUnavailable: no connection to the peer and the last attempt failed recently
	// (reconnection backs off up to MaxBackoff). The request was not sent.
	ErrUnavailable = errors.New("eventloop: peer unavailable")
	// ErrHandshake: the peer refused or garbled the handshake.
	ErrHandshake = errors.New("eventloop: handshake failed")
)

// StatusError is a reply with an error status.
type StatusError struct {
	Addr   string
	Op     codec.Op
	Status codec.Status
	Msg    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("eventloop: %s %s: %s: %s", e.Addr, e.Op, e.Status, e.Msg)
}

// Response is a decoded reply and the buffer it points into. Call Release once done with
// it (and with any slice taken from it); it must not be used afterwards.
type Response struct {
	codec.Reply
	buf []byte
}

var responsePool = sync.Pool{New: func() any { return new(Response) }}

// Release returns the response and its buffer to their pools.
func (r *Response) Release() {
	if r == nil {
		return
	}
	putBuf(r.buf)
	*r = Response{}
	responsePool.Put(r)
}

// Client talks to one peer over a few pipelined connections: any number of requests may be
// in flight, from any number of goroutines. Connections are dialled on first use and
// redialled after failures, backing off exponentially up to MaxBackoff.
type Client struct {
	cfg   ClientConfig
	log   *slog.Logger
	slots []slot
	next  atomic.Uint32

	ctx    context.Context // cancelled by Close; bounds dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // dial goroutines and connection goroutines
}

// slot is one connection position: the live connection or the state of redialling it.
type slot struct {
	mu      sync.Mutex
	cc      atomic.Pointer[clientConn] // current connection, possibly dead; stored with mu held
	dialing *dialing                   // the running dial, if any
	backoff time.Duration              // wait after the next failure
	retryAt time.Time                  // no dial before this
	lastErr error
}

// dialing is one connection attempt; cc and err are set before done is closed.
type dialing struct {
	done chan struct{}
	cc   *clientConn
	err  error
}

// NewClient returns a client for cfg.Addr. It does not connect until the first request.
func NewClient(cfg ClientConfig) *Client {
	cfg.setDefaults()
	cfg.TLS = clientTLS(cfg.TLS, cfg.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "peer-client", "peer", cfg.Addr),
		slots:  make([]slot, cfg.Conns),
		ctx:    ctx,
		cancel: cancel,
	}
}

// Addr is the peer's address.
func (c *Client) Addr() string { return c.cfg.Addr }

// Conns returns how many of the client's connections are up now
// (monitoring); it neither dials nor waits.
func (c *Client) Conns() int {
	n := 0
	for i := range c.slots {
		if cc := c.slots[i].cc.Load(); cc != nil && !cc.dead() {
			n++
		}
	}
	return n
}

// Close fails every pending request with ErrClosed, closes the connections and waits for
// the client's goroutines to exit.
func (c *Client) Close() error {
	c.cancel()
	for i := range c.slots {
		s := &c.slots[i]
		s.mu.Lock() // orders this with a dial installing its connection
		cc := s.cc.Load()
		s.mu.Unlock()
		if cc != nil {
			cc.fail(ErrClosed)
		}
	}
	c.wg.Wait()
	return nil
}

// conn returns a live connection, preferring the next slot in turn; with none live it
// dials (or waits for a running dial) unless the last attempt failed within the backoff.
func (c *Client) conn(ctx context.Context) (*clientConn, error) {
	n := uint32(len(c.slots))
	start := c.next.Add(1)
	for i := range n {
		if cc := c.slots[(start+i)%n].live(c); cc != nil {
			return cc, nil
		}
	}
	s := &c.slots[start%n]
	s.mu.Lock()
	if c.ctx.Err() != nil {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if cc := s.cc.Load(); cc != nil && !cc.dead() {
		s.mu.Unlock()
		return cc, nil
	}
	d := s.dialing
	if d == nil {
		if d = s.startDialLocked(c); d == nil {
			err := fmt.Errorf("%w: %s: %w", ErrUnavailable, c.cfg.Addr, s.lastErr)
			s.mu.Unlock()
			return nil, err
		}
	}
	s.mu.Unlock()
	select {
	case <-d.done:
		return d.cc, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("eventloop: connect to %s: %w", c.cfg.Addr, ctx.Err())
	}
}

// live returns the slot's connection if it is up (without locking: this is every
// request's path). If it is down it starts a redial in the background (unless backing off)
// and returns nil.
func (s *slot) live(c *Client) *clientConn {
	if cc := s.cc.Load(); cc != nil && !cc.dead() {
		return cc
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cc := s.cc.Load(); cc != nil && !cc.dead() {
		return cc
	}
	if s.dialing == nil && c.ctx.Err() == nil {
		s.startDialLocked(c)
	}
	return nil
}

// startDialLocked starts a dial unless the slot is backing off, and returns it (nil if
// backing off).
// REQUIRES: s.mu held, no dial running.
func (s *slot) startDialLocked(c *Client) *dialing {
	now := time.Now()
	if cc := s.cc.Load(); cc != nil {
		// The connection died. A long-lived one is redialled at once; one that died young (a
		// peer that accepts us and then drops us) counts as a failed attempt.
		if now.Sub(cc.born) > 2*c.cfg.MaxBackoff {
			s.backoff = 0
		} else {
			s.lastErr = cc.failure()
			s.backOffLocked(now, c.cfg.MaxBackoff)
		}
		s.cc.Store(nil)
	}
	if now.Before(s.retryAt) {
		return nil
	}
	d := &dialing{done: make(chan struct{})}
	s.dialing = d
	c.wg.Add(1)
	go c.dial(s, d)
	return d
}

// dial connects and handshakes, then installs the connection in the slot or records the
// failure and the next retry time.
func (c *Client) dial(s *slot, d *dialing) {
	defer c.wg.Done()
	defer close(d.done)
	cc, err := c.connect()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dialing = nil
	if err == nil && c.ctx.Err() != nil {
		cc.fail(ErrClosed)
		cc, err = nil, ErrClosed
	}
	d.cc, d.err = cc, err
	if err != nil {
		s.lastErr = err
		s.backOffLocked(time.Now(), c.cfg.MaxBackoff)
		if errors.Is(err, ErrUnproven) {
			// At most one a backoff period per connection slot.
			c.log.Warn("refusing peer: cluster secret not proven", "err", err, "retry_at", s.retryAt)
		} else {
			c.log.Debug("connect failed", "err", err, "retry_at", s.retryAt)
		}
		return
	}
	s.cc.Store(cc)
	s.retryAt = time.Time{}
}

// backOffLocked doubles the backoff (from minBackoff up to maxBackoff) and sets the next
// retry time, minus up to 20% jitter so that clients do not redial in lockstep.
// REQUIRES: s.mu held.
func (s *slot) backOffLocked(now time.Time, maxBackoff time.Duration) {
	s.backoff = min(max(2*s.backoff, minBackoff), maxBackoff)
	jitter := time.Duration(rand.Int64N(int64(s.backoff)/5 + 1))
	s.retryAt = now.Add(s.backoff - jitter)
}

// connect dials the peer and runs the handshake, all within DialTimeout.
func (c *Client) connect() (*clientConn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("eventloop: dial %s: %w", c.cfg.Addr, err)
	}
	if c.cfg.TLS != nil {
		tc, err := dialTLS(ctx, nc, c.cfg.TLS)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("%w with %s: %w", ErrHandshake, c.cfg.Addr, err)
		}
		nc = tc
	}
	deadline, _ := ctx.Deadline()
	peerID, err := handshake(nc, deadline, &c.cfg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w with %s: %w", ErrHandshake, c.cfg.Addr, err)
	}
	cc := newClientConn(c, nc, peerID)
	c.wg.Add(3)
	go cc.readLoop()
	go cc.writeLoop()
	go cc.sweepLoop()
	return cc, nil
}

// handshake sends a Hello and reads the answer, synchronously, before the connection's
// goroutines start; with secrets it then checks the server's proof and sends its own.
func handshake(nc net.Conn, deadline time.Time, cfg *ClientConfig) (string, error) {
	if err := nc.SetDeadline(deadline); err != nil {
		return "", err
	}
	var nonce []byte
	var tlvs []codec.TLV
	if len(cfg.Secrets) > 0 {
		if err := checkSecrets(cfg.Secrets); err != nil {
			return "", err
		}
		nonce = newNonce()
		tlvs = []codec.TLV{{Type: codec.TLVNonce, Value: nonce}}
	}
	hello := codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte(cfg.NodeID), tlvs...)
	if _, err := nc.Write(hello); err != nil {
		return "", err
	}
	var r codec.Reply
	if err := readHandshakeReply(nc, cfg.MaxFrame, &r); err != nil {
		return "", err
	}
	switch {
	case r.Status == codec.StatusVersion:
		return "", fmt.Errorf("%w: %s", codec.ErrVersion, r.Msg)
	case r.Status.IsError():
		return "", fmt.Errorf("%s: %s", r.Status, r.Msg)
	case r.Op != codec.OpHello:
		return "", fmt.Errorf("%w: %s reply to hello", codec.ErrCorrupt, r.Op)
	case r.Version < codec.MinVersion || r.Version > codec.MaxVersion:
		return "", fmt.Errorf("%w: server chose version %d", codec.ErrVersion, r.Version)
	}
	peerID := string(r.NodeID)
	if nonce != nil {
		if err := proveToServer(nc, &r, nonce, cfg); err != nil {
			return "", err
		}
	}
	return peerID, nc.SetDeadline(time.Time{})
}

// proveToServer checks the server's proof in its Hello reply r against the client's
// secrets, then sends the client's proof under the secret that matched and waits for the
// server to accept it.
func proveToServer(nc net.Conn, r *codec.Reply, nonce []byte, cfg *ClientConfig) error {
	a := parseHelloAuth(r.TLVs)
	sid := string(r.NodeID)
	if a.nonce == nil || len(a.proofs) == 0 {
		return fmt.Errorf("%w: server %q sent no proof (is cluster_secret_file set there?)", ErrUnproven, sid)
	}
	k := matchProof(cfg.Secrets, a.proofs, func(k []byte) []byte {
		return proof(k, serverLabel, nonce, a.nonce, sid, cfg.NodeID)
	})
	if k == nil {
		return fmt.Errorf("%w: server %q proved a secret this client does not hold", ErrUnproven, sid)
	}
	mine := proof(k, clientLabel, a.nonce, nonce, sid, cfg.NodeID)
	if _, err := nc.Write(codec.AppendPing(nil, 0, mine)); err != nil {
		return err
	}
	var ack codec.Reply
	if err := readHandshakeReply(nc, cfg.MaxFrame, &ack); err != nil {
		return err
	}
	switch {
	case ack.Status.IsError():
		return fmt.Errorf("%w: server %q: %s: %s", ErrUnproven, sid, ack.Status, ack.Msg)
	case ack.Op != codec.OpPing || ack.ID != 0 || !bytes.Equal(ack.Value, mine):
		return fmt.Errorf("%w: %s reply to the cluster secret proof", codec.ErrCorrupt, ack.Op)
	}
	return nil
}

// readHandshakeReply reads one reply frame of at most 64 KiB into a buffer of its own
// and decodes it into r, which points into that buffer.
func readHandshakeReply(nc net.Conn, maxFrame int, r *codec.Reply) error {
	buf := make([]byte, codec.HeaderSize, 256)
	if _, err := readFull(nc, buf); err != nil {
		return err
	}
	h, err := codec.ParseHeader(buf, min(maxFrame, 64<<10))
	if err != nil {
		return err
	}
	buf = append(buf, make([]byte, h.BodyLen)...)
	if _, err := readFull(nc, buf[codec.HeaderSize:]); err != nil {
		return err
	}
	return codec.DecodeReply(buf, r)
}

// do sends one request built by encode (appending to a buffer of capacity sizeHint) and
// waits for its reply. A non-nil value is written after the encoded frame without being
// copied; it is not referenced once do returns.
func (c *Client) do(ctx context.Context, sizeHint int, encode func(dst []byte, id uint64) []byte, value []byte) (*Response, error) {
	cc, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := cc.roundTrip(ctx, sizeHint, encode, value)
	if err != nil {
		return nil, err
	}
	return checkStatus(c.cfg.Addr, resp)
}

// checkStatus turns a reply with an error status into a *StatusError, releasing it.
func checkStatus(addr string, resp *Response) (*Response, error) {
	if resp.Status.IsError() {
		err := &StatusError{Addr: addr, Op: resp.Op, Status: resp.Status, Msg: string(resp.Msg)}
		resp.Release()
		return nil, err
	}
	return resp, nil
}

// Completion receives the outcome of a request sent with a Start method: the reply
// (Release it when done) or an error, as Do would return them. Done runs on the goroutine
// that ends the request — the connection's reader for a reply, the one that saw the
// connection fail, or the sweep of requests past their deadline — so it must not block.
type Completion interface {
	Done(resp *Response, err error)
}

// start sends the request encode builds on a live connection without waiting for the
// reply, which goes to cb. It returns false, having sent nothing and with cb not to be
// called, when no connection is up: the caller then makes a blocking call, which dials.
// A started request is bounded by RequestTimeout (plus MinRate for its reply's bytes),
// give or take sweepEvery.
func (c *Client) start(sizeHint int, encode func(dst []byte, id uint64) []byte, cb Completion) bool {
	n := uint32(len(c.slots))
	first := c.next.Add(1)
	for i := range n {
		if cc := c.slots[(first+i)%n].live(c); cc != nil {
			return cc.start(sizeHint, encode, cb)
		}
	}
	return false
}

// StartGet is Get without waiting: see Completion. False: nothing was sent.
func (c *Client) StartGet(key []byte, cb Completion) bool {
	return c.start(256, func(dst []byte, id uint64) []byte { return codec.AppendGet(dst, id, key) }, cb)
}

// StartStat is Stat without waiting: the Completion gets the reply (Status, TS, Flags).
func (c *Client) StartStat(key []byte, cb Completion) bool {
	return c.start(256, func(dst []byte, id uint64) []byte { return codec.AppendStat(dst, id, key) }, cb)
}

// StartSet is Set without waiting, for values small enough to be copied into the frame
// (below 8 KiB): false for a larger one, or when nothing was sent.
func (c *Client) StartSet(key []byte, ts int64, flags uint8, value []byte, cb Completion) bool {
	if len(value) >= copyBelow {
		return false
	}
	return c.start(codec.HeaderSize+codec.RecordSize(len(key), len(value)),
		func(dst []byte, id uint64) []byte { return codec.AppendSet(dst, id, key, ts, flags, value) }, cb)
}

// Do sends the request that encode appends to dst (a codec.AppendXxx call with the given
// id) and waits for the reply or ctx. A reply with an error status is returned as a
// *StatusError. The caller must Release the Response.
func (c *Client) Do(ctx context.Context, encode func(dst []byte, id uint64) []byte) (*Response, error) {
	return c.do(ctx, 256, encode, nil)
}

// copyBelow is the value size under which Set copies the value into the frame rather than
// passing it to writev separately.
const copyBelow = 8 << 10

// requestTimeout is how long a request may wait for its reply when its context carries no
// deadline: base, plus the time bytes take at rate bytes per second, so that large values
// (and the ones queued ahead of them) are not failed for taking the time they need.
func requestTimeout(base time.Duration, bytes, rate int) time.Duration {
	return base + time.Duration(float64(bytes)/float64(rate)*float64(time.Second))
}

// Ping checks that the peer answers.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.Do(ctx, func(dst []byte, id uint64) []byte { return codec.AppendPing(dst, id, nil) })
	resp.Release()
	return err
}

// Get fetches key's record. resp.Status is StatusOK (resp.TS, resp.Flags, resp.Value; a
// tombstone has the codec.Tombstone flag) or StatusNotFound. resp.Value points into the
// response buffer: Release resp when done with it.
func (c *Client) Get(ctx context.Context, key []byte) (*Response, error) {
	return c.Do(ctx, func(dst []byte, id uint64) []byte { return codec.AppendGet(dst, id, key) })
}

// Meta is the outcome of Stat and Set.
type Meta struct {
	Status codec.Status // Stat: OK or NotFound. Set: Applied or Stale.
	TS     int64        // Stat: the stored timestamp. Set: the timestamp now current.
	Flags  uint8        // Stat: the stored record flags.
}

func metaOf(resp *Response, err error) (Meta, error) {
	if err != nil {
		return Meta{}, err
	}
	m := Meta{Status: resp.Status, TS: resp.TS, Flags: resp.Flags}
	resp.Release()
	return m, nil
}

// Stat fetches key's timestamp and flags without its value.
func (c *Client) Stat(ctx context.Context, key []byte) (Meta, error) {
	return metaOf(c.Do(ctx, func(dst []byte, id uint64) []byte { return codec.AppendStat(dst, id, key) }))
}

// Set writes a record (last write wins). Large values are written from the caller's slice
// without being copied; Set does not keep any argument after it returns.
func (c *Client) Set(ctx context.Context, key []byte, ts int64, flags uint8, value []byte) (Meta, error) {
	if len(value) < copyBelow {
		return metaOf(c.do(ctx, codec.HeaderSize+codec.RecordSize(len(key), len(value)),
			func(dst []byte, id uint64) []byte { return codec.AppendSet(dst, id, key, ts, flags, value) }, nil))
	}
	return metaOf(c.do(ctx, codec.HeaderSize+codec.RecordSize(len(key), 0),
		func(dst []byte, id uint64) []byte { return codec.AppendSetHead(dst, id, key, ts, flags, len(value)) }, value))
}

// Delete writes a tombstone for key at ts.
func (c *Client) Delete(ctx context.Context, key []byte, ts int64) (Meta, error) {
	return c.Set(ctx, key, ts, codec.Tombstone, nil)
}

// BatchSet writes recs; resp.Results holds one result per record, in order.
func (c *Client) BatchSet(ctx context.Context, recs []codec.Record) (*Response, error) {
	size := codec.HeaderSize + 4
	for _, r := range recs {
		size += codec.RecordSize(len(r.Key), len(r.Value))
	}
	return c.do(ctx, size, func(dst []byte, id uint64) []byte { return codec.AppendBatchSet(dst, id, recs) }, nil)
}

// Scan reads the records with keys in [start, end) (end empty = unbounded), at most limit
// records and about limitBytes bytes (0 = the server's defaults). resp.Records iterates
// over them; resp.More and resp.Next say where to continue.
func (c *Client) Scan(ctx context.Context, start, end []byte, limit, limitBytes uint32, mode codec.ScanMode) (*Response, error) {
	return c.Do(ctx, func(dst []byte, id uint64) []byte {
		return codec.AppendScan(dst, id, start, end, limit, limitBytes, mode)
	})
}
