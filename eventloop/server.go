package eventloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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
	// MaxOutbound bounds the replies queued for a connection whose peer does
	// not read them: past it the connection is closed (the client redials),
	// so a stuck peer cannot grow the server's memory without end. Default
	// 4 × MaxFrame.
	MaxOutbound int
}

const (
	defaultReadBufferCap    = 1 << 20
	defaultMaxFramesPerRead = 256
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

	mu      sync.Mutex
	started bool
	booted  chan struct{} // closed by OnBoot: listening
	done    chan struct{} // closed when gnet.Run returns
	eng     gnet.Engine   // set by OnBoot
	addr    net.Addr      // set by OnBoot
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
		cfg.MaxOutbound = 4 * cfg.MaxFrame
	}
	if cfg.NumLoops <= 0 {
		cfg.NumLoops = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "peer-server"),
		badLog:  rateLimiter{interval: time.Second},
		authLog: rateLimiter{interval: time.Second},
		booted:  make(chan struct{}),
		done:    make(chan struct{}),
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
		gnet.WithTCPKeepAlive(15 * time.Second),
		gnet.WithReuseAddr(true), // restart on the same port despite TIME_WAIT
		gnet.WithLogger(gnetLogger{s.log}),
	}
	// gnet reports a taken port as a confusing setsockopt error; claim the
	// address once ourselves for a clear one ("address already in use").
	probe, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		close(s.done)
		return fmt.Errorf("eventloop: listen on %s: %w", s.cfg.Addr, err)
	}
	probe.Close()
	errc := make(chan error, 1)
	go func() {
		defer close(s.done)
		errc <- gnet.Run(s, "tcp://"+s.cfg.Addr, opts...)
	}()
	select {
	case <-s.booted:
		s.log.Debug("listening", "addr", s.addr, "node", s.cfg.NodeID)
		return nil
	case err := <-errc:
		return fmt.Errorf("eventloop: listen on %s: %w", s.cfg.Addr, err)
	}
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
	// Engine.Stop triggers the shutdown and then polls every 500ms; with an expired context
	// it only triggers it, and we wait for gnet.Run to return instead.
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.eng.Stop(expired)
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("eventloop: stop: %w", ctx.Err())
	}
}

// OnBoot records the engine and the bound address.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	s.addr = listenAddr(eng)
	close(s.booted)
	return gnet.None
}

// listenAddr finds the bound address through a duplicate of the listening socket.
func listenAddr(eng gnet.Engine) net.Addr {
	fd, err := eng.Dup()
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil
	}
	defer ln.Close()
	return ln.Addr()
}

// OnOpen attaches the per-connection state.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(newPeerConn(s, c))
	return nil, gnet.None
}

// OnClose drops the replies still queued for the connection.
func (s *Server) OnClose(c gnet.Conn, err error) gnet.Action {
	if pc, ok := c.Context().(*peerConn); ok {
		pc.close()
		if err != nil {
			s.log.Debug("connection closed", "remote", pc.remote, "peer", pc.peerID, "err", err)
		}
	}
	return gnet.None
}

// OnTraffic frames the buffered input: Peek the header, check it, Peek the whole frame,
// serve it, Discard it; at most MaxFramesPerRead frames per call. Replies produced meanwhile
// are written with one writev at the end.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	pc := c.Context().(*peerConn)
	pc.enterLoop()
	action, n := gnet.None, 0
	for ; n < s.cfg.MaxFramesPerRead && action == gnet.None; n++ {
		hb, err := c.Peek(codec.HeaderSize)
		if err != nil {
			break // header incomplete: wait for more input
		}
		h, err := codec.ParseHeader(hb, s.cfg.MaxFrame)
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
	if action == gnet.None && n == s.cfg.MaxFramesPerRead && c.InboundBuffered() >= codec.HeaderSize {
		_ = c.Wake(nil) // frames left over: come back after the other connections
	}
	return action
}
