package eventloop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tako-kv/tako/codec"
)

// Handler serves decoded peer requests (every op but Hello and Ping, which the server
// answers itself).
//
// Handle runs on the event loop and must not block: it either replies at once through rw or
// hands the work elsewhere and replies later, from any goroutine. req and its slices point
// into the connection's read buffer and are valid only during the call: copy what must
// outlive it. Every request must get exactly one reply.
type Handler interface {
	Handle(req *codec.Request, rw *ReplyWriter)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(req *codec.Request, rw *ReplyWriter)

// Handle calls f(req, rw).
func (f HandlerFunc) Handle(req *codec.Request, rw *ReplyWriter) { f(req, rw) }

// ServerConfig configures a Server. Zero values take the defaults noted.
type ServerConfig struct {
	// Addr is the host:port to listen on. Port 0 picks a free port (see Server.Addr).
	Addr string
	// NodeID is sent to clients in the Hello reply.
	NodeID string
	// Secrets are the cluster secrets (ReadSecretFile; each at least MinSecretLen bytes).
	// When set, every connection must complete the challenge-response of codec/doc.go
	// ("Cluster secret") under one of them before any request is served; the server proves
	// itself under each (during a rotation: the current one, then the previous). Empty: the
	// peer protocol is unauthenticated, as before.
	Secrets [][]byte
	// TLS, when set, puts every connection under TLS (doc.go, "TLS"): the server's
	// certificate, and for mutual TLS ClientAuth and ClientCAs. The TLS handshake must
	// finish within HandshakeTimeout too; the Hello and the cluster secret handshake follow
	// inside TLS. nil: plaintext.
	TLS *tls.Config
	// Handler serves requests. Required.
	Handler Handler
	// Logger receives connection errors (rate-limited). Default slog.Default().
	// gnet's own logging is process-wide: the last server started sets it.
	Logger *slog.Logger
	// MaxFrame is the largest frame accepted, header included. Default codec.DefaultMaxFrame.
	MaxFrame int
	// NumLoops is the number of event loops. Default: one per two CPUs (GOMAXPROCS/2, at
	// least 1), because a node's process also serves HTTP, runs the store and sends peer
	// requests: on 2 cores, 1 loop moves 180 KiB frames about twice as fast as 2 loops.
	NumLoops int
	// ReadBufferCap is how much each loop reads per syscall. Default 1 MiB: 180 KiB frames
	// then arrive whole in one read, which is about 2.5 times faster than gnet's 64 KiB.
	ReadBufferCap int
	// MaxFramesPerRead caps the frames handled in one callback before the loop serves other
	// connections (the rest are handled on the next turn). Default 256.
	MaxFramesPerRead int
	// MaxOutbound is a connection's reply budget: once its replies (queued, or in gnet's
	// outbound buffer) hold this many bytes, the server stops framing its input and
	// ReplyWriter.Admit parks new reads until the peer has taken replies below it
	// (backpressure; doc.go, "Limits"). A read admitted below the budget may cross it by
	// its own reply, so the budget need not hold a maximal value. The requests waiting in
	// the input meanwhile are bounded by MaxFrame + MaxOutbound: past it the connection is
	// closed. Default 16 MiB.
	MaxOutbound int
	// MaxInflight bounds the requests of a connection handed to the Handler and not yet
	// answered: at the limit the server stops framing its input until replies go out.
	// Default 1024.
	MaxInflight int
	// HandshakeTimeout bounds the time from accept to the end of the handshake (the Hello,
	// and with Secrets the client's proof); a connection that has not finished is closed.
	// Default 5s.
	HandshakeTimeout time.Duration
	// ReadTimeout bounds the time from a frame's first bytes to its last: a connection
	// that leaves a frame incomplete longer is closed. (Idle connections between frames
	// are not timed out: nodes keep their peer connections open; TCP keepalive finds dead
	// ones.) Default 10s: a maximal frame needs 6.7 MB/s.
	ReadTimeout time.Duration
	// WriteTimeout: a connection whose replies fill its budget while its peer takes none
	// of them for this long is closed. Default 30s.
	WriteTimeout time.Duration
	// MaxConnsPerIP caps the connections one remote address holds at once: the next one
	// is closed as soon as it is accepted, before it costs a loop anything. Default 1024
	// (the HTTP servers' cap; a cluster member holds one connection per peer process).
	MaxConnsPerIP int
}

const (
	defaultReadBufferCap    = 1 << 20
	defaultMaxFramesPerRead = 256
	defaultMaxInflight      = 1024
	defaultMaxOutbound      = 16 << 20
	defaultHandshakeTimeout = 5 * time.Second
	defaultReadTimeout      = 10 * time.Second
	defaultReplyStall       = 30 * time.Second
	defaultMaxConnsPerIP    = 1024
)

// Errors returned by Server.
var (
	ErrServerStarted = errors.New("eventloop: server already started")
	ErrNoHandler     = errors.New("eventloop: ServerConfig.Handler is nil")
)

// Server is the peer-protocol server. It frames, decodes and answers Hello and Ping on
// gnet event loops and passes every other request to the Handler.
type Server struct {
	gnet.BuiltinEventEngine

	cfg     ServerConfig
	log     *slog.Logger
	badLog  rateLimiter
	authLog rateLimiter // connections closed for not proving the cluster secret

	acceptLog rateLimiter // accept failures (descriptors exhausted)
	capLog    rateLimiter // connections refused over MaxConnsPerIP
	perIP     ipConns     // open connections by remote address (accept.go)

	mu      sync.Mutex
	started bool
	booted  chan struct{} // closed by OnBoot: listening
	done    chan struct{} // closed when gnet.Rotate returns
	eng     gnet.Engine   // set by OnBoot
	addr    net.Addr      // set by Start, before booted is closed

	ln        net.Listener  // ours, not gnet's: see accept.go
	sockDir   string        // holds the Unix socket gnet listens on, unused (see Start)
	reserve   *os.File      // accept.go: the descriptor given up to shed a connection
	stopping  chan struct{} // closed by Stop: the accept loop and the janitor exit
	stopOnce  sync.Once
	ready     chan struct{} // closed by the first OnTick: the engine takes connections
	readyOnce sync.Once
	expired   []*peerConn    // OnTick's scratch
	loops     sync.WaitGroup // the accept loop
	stopCtx   context.Context
	cancel    context.CancelFunc // cancels stopCtx: TLS handshakes under way end (Stop)
	tlsConns  sync.WaitGroup     // TLS handshakes and bridges (tls.go)

	connMu sync.Mutex
	conns  map[*peerConn]struct{}       // REQUIRES: connMu held. Open connections, for the janitor
	bells  map[gnet.EventLoop]*doorbell // REQUIRES: connMu held. Per loop; nil while opening

	bellMu sync.Mutex   // serializes dialBell
	bellLn net.Listener // doorbell.go: where bell pairs are made; nil until the first
}

// NewServer returns a server for cfg; it does not listen until Start.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = codec.DefaultMaxFrame
	}
	if cfg.ReadBufferCap <= 0 {
		cfg.ReadBufferCap = defaultReadBufferCap
	}
	if cfg.MaxFramesPerRead <= 0 {
		cfg.MaxFramesPerRead = defaultMaxFramesPerRead
	}
	if cfg.MaxOutbound <= 0 {
		cfg.MaxOutbound = defaultMaxOutbound
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = defaultMaxInflight
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = defaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultReplyStall
	}
	if cfg.NumLoops <= 0 {
		cfg.NumLoops = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = defaultMaxConnsPerIP
	}
	stopCtx, cancel := context.WithCancel(context.Background())
	return &Server{
		stopCtx:   stopCtx,
		cancel:    cancel,
		cfg:       cfg,
		log:       cfg.Logger.With("component", "peer-server"),
		badLog:    rateLimiter{interval: time.Second},
		authLog:   rateLimiter{interval: time.Second},
		acceptLog: rateLimiter{interval: time.Second},
		capLog:    rateLimiter{interval: time.Second},
		perIP:     ipConns{open: make(map[netip.Addr]int)},
		booted:    make(chan struct{}),
		done:      make(chan struct{}),
		stopping:  make(chan struct{}),
		ready:     make(chan struct{}),
		conns:     make(map[*peerConn]struct{}),
		bells:     make(map[gnet.EventLoop]*doorbell),
	}
}

// Start listens on cfg.Addr and serves in the background. It returns once the socket is
// listening, or the error that prevented it (for example, the port is taken).
func (s *Server) Start() error {
	if s.cfg.Handler == nil {
		return ErrNoHandler
	}
	if err := checkSecrets(s.cfg.Secrets); err != nil {
		return err
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrServerStarted
	}
	s.started = true
	s.mu.Unlock()

	opts := []gnet.Option{
		gnet.WithNumEventLoop(s.cfg.NumLoops),
		gnet.WithReadBufferCap(s.cfg.ReadBufferCap),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{s.log}),
		// Connections are enrolled from our accept loop, concurrently with the loops'
		// own bookkeeping: round-robin's cursor is not safe for that.
		gnet.WithLoadBalancing(gnet.LeastConnections),
		gnet.WithTicker(true), // OnTick
	}
	// The listener is ours, not gnet's: gnet stops its whole engine on the first accept
	// error, EMFILE included (accept.go). Go's listener sets SO_REUSEADDR (a restart binds
	// the port despite TIME_WAIT) and 15s keepalive on accepted connections.
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		close(s.done)
		return fmt.Errorf("eventloop: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln, s.addr = ln, ln.Addr()
	// gnet refuses to enroll connections into an engine without a listener of its own:
	// give it a Unix socket in a private directory, which no one else can reach.
	s.sockDir, err = os.MkdirTemp("", "tako-peer-")
	if err != nil {
		ln.Close()
		close(s.done)
		return fmt.Errorf("eventloop: listen on %s: %w", s.cfg.Addr, err)
	}
	s.reserve, _ = os.Open(os.DevNull) // best effort: without it, EMFILE only backs off
	errc := make(chan error, 1)
	go func() {
		defer close(s.done)
		errc <- gnet.Run(s, "unix://"+filepath.Join(s.sockDir, "gnet.sock"), opts...)
	}()
	select {
	case <-s.ready:
	case err := <-errc:
		ln.Close()
		s.releaseFiles()
		return fmt.Errorf("eventloop: listen on %s: %w", s.cfg.Addr, err)
	}
	s.loops.Add(1)
	go s.acceptLoop()
	s.log.Debug("listening", "addr", s.addr, "node", s.cfg.NodeID)
	return nil
}

// Addr is the address the server listens on (useful with port 0), or nil before Start.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.booted:
		return s.addr
	default:
		return nil
	}
}

// Stop closes the listener and every connection and waits, until ctx is done, for the
// event loops to exit. Replies handlers send afterwards are dropped.
func (s *Server) Stop(ctx context.Context) error {
	select {
	case <-s.booted:
	default:
		return nil // never started, or failed to start
	}
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.cancel()
		s.ln.Close()
		s.loops.Wait() // no connection is enrolled after this
		s.closeBells()
		s.releaseFiles()
	})
	// Engine.Stop triggers the shutdown and then polls every 500ms; with an expired context
	// it only triggers it, and we wait for gnet.Run to return instead.
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.eng.Stop(expired)
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("eventloop: stop: %w", ctx.Err())
	}
	// gnet closed its ends of the TLS bridges: they end now.
	bridged := make(chan struct{})
	go func() { s.tlsConns.Wait(); close(bridged) }()
	select {
	case <-bridged:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("eventloop: stop: %w", ctx.Err())
	}
}

// OnBoot records the engine.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	close(s.booted)
	return gnet.None
}

// OnOpen attaches the per-connection state.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if b, ok := c.Context().(*doorbell); ok {
		s.openedBell(b)
		return nil, gnet.None
	}
	pc := newPeerConn(s, c)
	pc.bell = s.bellOf(c.EventLoop())
	c.SetContext(pc)
	s.connMu.Lock()
	s.conns[pc] = struct{}{}
	s.connMu.Unlock()
	return nil, gnet.None
}

// Conns returns the connections the server holds open now (monitoring).
func (s *Server) Conns() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.conns)
}

// OnClose drops the replies still queued for the connection.
func (s *Server) OnClose(c gnet.Conn, err error) gnet.Action {
	switch ctx := c.Context().(type) {
	case *doorbell:
		ctx.close()
	case *peerConn:
		pc := ctx
		s.connMu.Lock()
		delete(s.conns, pc)
		s.connMu.Unlock()
		s.perIP.give(pc.ip())
		pc.close()
		if err != nil {
			s.log.Debug("connection closed", "remote", pc.remote, "peer", pc.peerID, "err", err)
		}
	}
	return gnet.None
}

// OnTraffic frames the buffered input: Peek the header, check it, Peek the whole frame,
// serve it, Discard it; at most MaxFramesPerRead frames per call, and none while the
// connection is full (MaxInflight, MaxOutbound): then it pauses until replies leave.
// Replies produced meanwhile are written with one writev at the end.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	pc, ok := c.Context().(*peerConn)
	if !ok {
		c.Context().(*doorbell).serve(c)
		return gnet.None
	}
	if pc.paused {
		return pc.checkInbound() // gnet read more input; it waits
	}
	pc.enterLoop()
	action, n := gnet.None, 0
	for ; n < s.cfg.MaxFramesPerRead && action == gnet.None; n++ {
		if pc.state == connReady && pc.full() {
			pc.pause()
			break
		}
		hb, err := c.Peek(codec.HeaderSize)
		if err != nil {
			break // header incomplete: wait for more input
		}
		h, err := codec.ParseHeader(hb, pc.frameLimit())
		if err != nil {
			action = pc.reject(h, err)
			break
		}
		frame, err := c.Peek(h.FrameLen())
		if err != nil {
			break // frame incomplete
		}
		action = pc.serve(frame)
		_, _ = c.Discard(h.FrameLen())
	}
	pc.flush()
	switch {
	case action != gnet.None:
		return action
	case pc.paused:
		return pc.checkInbound()
	}
	pc.watchPartial(n > 0)
	if n == s.cfg.MaxFramesPerRead && c.InboundBuffered() >= codec.HeaderSize {
		_ = c.Wake(nil) // frames left over: come back after the other connections
	}
	return action
}

// OnTick runs on gnet's ticker goroutine, which gnet starts once its loops are registered:
// the first tick says the engine can take connections (OnBoot comes too early for that),
// and every tick closes connections past their deadline (peerConn.deadline: the handshake,
// or a partial frame), a few times per timeout.
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	s.readyOnce.Do(func() { close(s.ready) })
	now := time.Now().UnixNano()
	s.connMu.Lock()
	for pc := range s.conns {
		if d := pc.deadline.Load(); d != 0 && now >= d {
			s.expired = append(s.expired, pc)
		}
	}
	s.connMu.Unlock()
	for _, pc := range s.expired {
		// The loop checks again: the deadline is loop state.
		_ = pc.c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(pc.expire))
	}
	clear(s.expired)
	s.expired = s.expired[:0]
	every := min(s.cfg.HandshakeTimeout, s.cfg.ReadTimeout) / 4
	return min(max(every, 5*time.Millisecond), time.Second), gnet.None
}
