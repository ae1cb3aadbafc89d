package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	_ "net/http/pprof" // served only when PprofAddr is set
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/kv/hlc"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/configsource"
	"github.com/tako-kv/tako/server/hints"
	"github.com/tako-kv/tako/server/metrics"
	"github.com/tako-kv/tako/server/nodestatus"
	"github.com/valyala/fasthttp"
)

// NodeConfig is what tako-node's flags say.
type NodeConfig struct {
	ID           string
	ConfigPath   string   // -cfg: the configuration file
	Coordinators []string // -c: coordinators to fetch it from instead
	VarDir       string   // data and cached configuration live under VarDir/<ID>
	// ListenHost, when set, is the host both ports bind to instead of the
	// configured host (-listen; a test harness interposes on the configured
	// one). ListenHTTP and ListenPeer (-listen-http, -listen-peer: HOST or
	// HOST:PORT, config.ListenAddr) override it for one port each.
	ListenHost, ListenHTTP, ListenPeer string
	// ClockOffset is added to this process's clock: a testing aid to inject
	// clock skew (tako-node -clock-offset). Zero in production.
	ClockOffset time.Duration
	PprofAddr   string // net/http/pprof listener; empty: off
	// TokenFile (-token-file) holds the bearer token sent to coordinators
	// (httpproxy.ReadClientToken); "" sends none.
	TokenFile string
	// CAFile (-cacert) is the coordinators' tls_ca_file: with -c, the
	// configuration is fetched over HTTPS, verified against it.
	CAFile string
	Logger *slog.Logger
	// Ready, when set, is called once the node accepts requests.
	Ready func()
}

// RunNode starts a node and serves until ctx is cancelled. Errors starting
// (bad configuration, unknown id, unusable data dir, taken port) are
// returned before anything is served.
func RunNode(ctx context.Context, nc NodeConfig) error {
	log := nc.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Join(nc.VarDir, nc.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	token, err := readClientToken(nc.TokenFile)
	if err != nil {
		return err
	}
	src, cfg, err := configsource.Open(ctx, configsource.Options{
		File: nc.ConfigPath, Coordinators: nc.Coordinators,
		CachePath: filepath.Join(dir, "config.json"), Token: token, CAFile: nc.CAFile, Logger: log,
	})
	if err != nil {
		return err
	}
	if _, ok := cfg.FindNode(nc.ID); !ok && len(nc.Coordinators) == 0 {
		return fmt.Errorf("node id %q is not in configuration %s (from %s)", nc.ID, cfg.Version, src.Origin())
	}
	auth, err := loadPeerAuth(cfg, nc.ConfigPath, log)
	if err != nil {
		return err
	}
	tokens, err := loadHTTPTokens(cfg, nc.ConfigPath, log)
	if err != nil {
		return err
	}
	store, err := openStore(filepath.Join(dir, "store"), cfg.Storage, log)
	if err != nil {
		return err
	}
	sd := newShutdown(log)
	defer sd.finish("node " + nc.ID)
	defer sd.step("store close", func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	})
	// Before anything is served or handed off: a node away for long must
	// not push back values whose tombstones its peers have collected.
	if err := rejoin(store, cfg, nc.ID, log); err != nil {
		return err
	}
	named, err := awaitNamed(ctx, nc, src, cfg, store, auth, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting to be named
		}
		return err
	}
	if named != cfg {
		cfg = named
		rememberPlacement(store, cfg, log)
	}
	self, _ := cfg.FindNode(nc.ID)

	hs, err := openHints(filepath.Join(dir, "hints"), log)
	if err != nil {
		return err
	}
	defer sd.step("hints close", func() { hs.Close() })

	clock := newClock(cfg, nc.ClockOffset)
	peers := newPeerPool(nc.ID, maxFrame(cfg.Storage), log).authenticate(auth)
	defer sd.step("peer clients close", peers.close)
	reg := metrics.NewRegistry()
	cluster, err := NewCluster(cfg, ClusterConfig{Self: nc.ID, Logger: log, Hints: hs, Metrics: metrics.NewCluster(reg),
		Replica: func(n config.Node) Replica {
			if n.ID == nc.ID {
				return localReplica{store}
			}
			return peers.replica(n)
		}})
	if err != nil {
		return err
	}
	defer sd.step("replication stop", cluster.Close)

	// Both ports are claimed before serving starts, so a taken one is an
	// error at start-up, not a half-running node.
	ln, err := httpproxy.Listen(nc.listenAddr(self.HTTPAddr(), nc.ListenHTTP))
	if err != nil {
		return err
	}
	ph := newPeerHandler(store, clock, func(key []byte) (bool, string) { return cluster.mayStore(nc.ID, key) }, log)
	psrv := eventloop.NewServer(eventloop.ServerConfig{Addr: nc.listenAddr(self.PeerAddr(), nc.ListenPeer), NodeID: nc.ID, Handler: ph, Logger: log,
		MaxFrame: maxFrame(cfg.Storage), Secrets: auth.secrets, TLS: auth.tls.PeerServer()})
	if err := psrv.Start(); err != nil {
		ln.Close()
		ph.close()
		return fmt.Errorf("peer server: %w", err)
	}
	defer sd.step("peer server stop", func() {
		// The handler's readers go only once no event loop can call it.
		if stopPeerServer(psrv, log) {
			ph.close()
		}
	})

	heal := newHealer(store, cluster, log)
	reg.Store(store.Stats)
	reg.Healing(heal.metrics)
	processMetrics(reg, cluster, hs, peers, psrv.Conns)
	stopBackground := runBackground(ctx, heal.run, func(ctx context.Context) {
		replayHints(ctx, hs, cluster, log, func(string) { heal.poke() })
	}, func(ctx context.Context) { markAlive(ctx, store, cluster, log) })
	defer sd.step("healing, hint replay and liveness stop", stopBackground)

	return serveHTTP(ctx, httpService{
		ln: ln, tls: auth.tls.HTTPServer(), backend: cluster, local: store, keys: localKeys{store}, clock: clock, storage: cfg.Storage, pprof: nc.PprofAddr, log: log, shutdown: sd,
		src: src, cluster: cluster, ready: nc.Ready, name: "node " + nc.ID, self: nc.ID, started: cfg, metrics: reg,
		tokens: tokens, tokenFile: nc.TokenFile,
		onUpdate: func(cfg *config.Config) { peers.retain(cfg); heal.poke(); rememberPlacement(store, cfg, log) },
		routes: map[string]fasthttp.RequestHandler{
			nodestatus.Path: statusHandler(func() nodestatus.Status { return heal.status(nc.ID, hs) }),
			PathRepair:      repairHandler(heal.poke),
		},
	})
}

// awaitNamed returns once a configuration names the node. Until then (a
// node started ahead of the configuration that adds it, or one that left
// and restarts with records it had not handed off) it hands off what its
// store holds to the keys' current owners, and says when it is empty.
func awaitNamed(ctx context.Context, nc NodeConfig, src *configsource.Source, cfg *config.Config, store *kv.Store, auth peerAuth, log *slog.Logger) (*config.Config, error) {
	if _, ok := cfg.FindNode(nc.ID); ok {
		return cfg, nil
	}
	log.Warn("this node is not in the configuration: waiting to be named, handing off what it holds meanwhile",
		"id", nc.ID, "version", cfg.Version, "from", src.Origin())
	peers := newPeerPool(nc.ID, maxFrame(cfg.Storage), log).authenticate(auth)
	defer peers.close()
	cluster, err := NewCluster(cfg, ClusterConfig{Self: nc.ID, Logger: log, Replica: func(n config.Node) Replica { return peers.replica(n) }})
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	// latest holds the newest configuration the watch accepted, named or not:
	// the source counts it as current once delivered, so the node must start
	// with it, not an older one that named it first (its later Watch would
	// then never see the newer one again).
	latest := make(chan *config.Config, 1)
	watchCtx, stop := context.WithCancel(ctx)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		src.Watch(watchCtx, func(next *config.Config) {
			if err := cluster.Update(next); err != nil {
				log.Error("configuration refused", "version", next.Version, "err", err)
				return
			}
			select { // the only sender: after the drain the send cannot block
			case <-latest:
			default:
			}
			latest <- next
		})
	}()
	stopWatch := func() { stop(); <-watching }
	defer stopWatch()
	h := newHealer(store, cluster, log)
	empty := false
	for {
		if !empty {
			rep := h.runPass(watchCtx)
			left := h.store.Records()
			log.Info("handing off", "pushed", rep.Pushed, "dropped", rep.Dropped, "records_left", left, "err", rep.Err)
			if empty = left == 0; empty {
				log.Info("this node holds nothing now; waiting to be named", "id", nc.ID)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case next := <-latest:
			if _, ok := next.FindNode(nc.ID); !ok {
				continue
			}
			stopWatch() // so nothing newer is delivered unseen
			select {
			case newer := <-latest:
				if _, ok := newer.FindNode(nc.ID); ok {
					next = newer
				} else {
					log.Warn("a newer configuration no longer names this node; starting with the one that did", "named_in", next.Version, "newer", newer.Version)
				}
			default:
			}
			log.Info("named by the configuration", "id", nc.ID, "version", next.Version)
			return next, nil
		case <-time.After(time.Second):
		}
	}
}

// rejoin quarantines a node that was away longer than tombstone_grace (see
// quarantine), records cfg as the configuration it runs with, and marks it
// alive.
func rejoin(store *kv.Store, cfg *config.Config, id string, log *slog.Logger) error {
	t, err := newTopology(cfg, id, func(config.Node) Replica { return nil })
	if err != nil {
		return err
	}
	n, err := quarantine(store, t, lastTopology(store, id, log), cfg.ActiveDeployment().TombstoneGrace, log)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	if n > 0 {
		log.Warn("discarded records after a long absence", "records", n)
	}
	rememberPlacement(store, cfg, log)
	return store.MarkAlive(time.Now())
}

// lastTopology is the topology of the configuration the node last ran with
// (rememberPlacement), or nil when there is none or it no longer parses.
func lastTopology(store *kv.Store, id string, log *slog.Logger) *topology {
	js, ok, err := store.Placement()
	if err != nil {
		log.Warn("the configuration this node last ran with is unreadable", "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	cfg, err := config.Parse(js)
	if err == nil {
		var t *topology
		if t, err = newTopology(cfg, id, func(config.Node) Replica { return nil }); err == nil {
			return t
		}
	}
	log.Warn("the configuration this node last ran with no longer loads", "err", err)
	return nil
}

// rememberPlacement records cfg as the configuration the node runs with,
// for quarantine after a long absence. A failure is logged: a later long
// absence is then judged against the configuration recorded before.
func rememberPlacement(store *kv.Store, cfg *config.Config, log *slog.Logger) {
	js, err := cfg.JSON()
	if err == nil {
		err = store.SetPlacement(js)
	}
	if err != nil {
		log.Warn("record the configuration this node runs with", "version", cfg.Version, "err", err)
	}
}

// markAlive records, until ctx ends and once more then, that the node is
// up: often enough that a restart within tombstone_grace is never taken
// for a long absence.
func markAlive(ctx context.Context, store *kv.Store, c *Cluster, log *slog.Logger) {
	every := min(time.Minute, c.Config().ActiveDeployment().TombstoneGrace/4)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := store.MarkAlive(time.Now()); err != nil {
				log.Warn("mark alive", "err", err)
			}
			return
		case <-t.C:
			if err := store.MarkAlive(time.Now()); err != nil {
				log.Warn("mark alive", "err", err)
			}
		}
	}
}

// runBackground runs each fn on its own goroutine until ctx ends or the
// returned stop is called; stop waits for them all.
func runBackground(ctx context.Context, fns ...func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); fn(ctx) }()
	}
	return func() { cancel(); wg.Wait() }
}

// openHints opens the process's hint store in dir.
func openHints(dir string, log *slog.Logger) (*hints.Store, error) {
	hs, err := hints.Open(dir, hints.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	if st := hs.Stats(); st.Pending > 0 {
		log.Info("hints held from an earlier run", "hints", st.Pending, "bytes", st.PendingBytes)
	}
	return hs, nil
}

// newClock returns the process's hybrid logical clock, bounded by the
// active deployment's max_clock_skew.
func newClock(cfg *config.Config, offset time.Duration) *hlc.Clock {
	c := hlc.New(offset)
	c.SetMaxSkew(cfg.ActiveDeployment().MaxClockSkew)
	return c
}

// listenAddr is where the port configured at addr binds: at the port's own
// override, else on ListenHost, else at addr.
func (nc NodeConfig) listenAddr(addr, override string) string {
	if override == "" {
		override = nc.ListenHost
	}
	return config.ListenAddr(addr, override)
}

// httpService is the HTTP side shared by nodes and proxies.
type httpService struct {
	ln        net.Listener
	tls       *tls.Config // nil: plaintext
	backend   httpproxy.Backend
	local     httpproxy.Reader // a node's own store; nil in a proxy
	keys      httpproxy.Lister // GET /keys: a node's own keys, or the cluster's
	clock     *hlc.Clock
	storage   config.Storage
	pprof     string
	log       *slog.Logger
	src       *configsource.Source
	cluster   *Cluster
	ready     func()
	name      string
	self      string               // the node's id; empty in a proxy
	started   *config.Config       // the configuration the process started with
	onUpdate  func(*config.Config) // after a new configuration is in use
	routes    map[string]fasthttp.RequestHandler
	tokens    *httpTokens // the bearer tokens HTTP requests need
	tokenFile string      // -token-file: reread on SIGHUP
	shutdown  *shutdown   // bounds the HTTP drain
	metrics   *metrics.Registry
}

// httpListener is what the HTTP server accepts from: ln, with accept errors ridden out,
// and under TLS when tlsCfg is set (the TLS handshake then runs on the connection's
// goroutine, under the server's header timeout; the per-IP cap sees the TCP address).
func httpListener(ln net.Listener, tlsCfg *tls.Config, log *slog.Logger) net.Listener {
	ln = httpproxy.RetryAccept(ln, log)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return ln
}

// serveHTTP serves the HTTP API, with the metrics (metrics.Path) and
// readiness (PathReady), and follows configuration updates until ctx ends,
// then drains requests in flight.
func serveHTTP(ctx context.Context, s httpService) error {
	ln := s.ln
	routes := maps.Clone(s.routes)
	if routes == nil {
		routes = map[string]fasthttp.RequestHandler{}
	}
	routes[metrics.Path] = s.metrics.Serve
	routes[PathReady] = (&readiness{cluster: s.cluster}).serve
	h := httpproxy.NewHandler(httpproxy.Config{
		Backend:       s.backend,
		Local:         s.local,
		Keys:          s.keys,
		Clock:         s.clock,
		MaxValueBytes: int(s.storage.MaxValueBytes),
		Logger:        s.log,
		ConfigVersion: func() string { return s.cluster.Config().Version },
		Routes:        routes,
		Metrics:       metrics.NewHTTP(s.metrics),
		Tokens:        &s.tokens.guard,
		OpenPaths:     []string{PathReady}, // probes, like /health; /metrics needs a token
	})
	srv := h.NewServer()
	serveErr := make(chan error, 1)
	// Accept errors such as EMFILE are ridden out, not fatal: the process
	// must outlive a flood of connections.
	go func() { serveErr <- srv.Serve(httpListener(ln, s.tls, s.log)) }()
	stopPprof := startPprof(s.pprof, s.log)
	defer stopPprof()

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	httpproxy.OnHangup(watchCtx, func() {
		s.tokens.reload(s.cluster.Config(), "SIGHUP")
		s.rereadClientToken()
	})
	go s.src.Watch(watchCtx, func(cfg *config.Config) {
		if err := s.cluster.Update(cfg); err != nil {
			s.log.Error("configuration refused", "version", cfg.Version, "err", err)
			return
		}
		s.tokens.reload(cfg, "configuration "+cfg.Version)
		s.clock.SetMaxSkew(cfg.ActiveDeployment().MaxClockSkew)
		if s.onUpdate != nil {
			s.onUpdate(cfg)
		}
		s.log.Info("configuration updated", "version", cfg.Version)
		if keys := restartKeys(s.started, cfg, s.self); len(keys) > 0 {
			s.log.Warn("configuration updated, but these keys take effect only when this process restarts",
				"version", cfg.Version, "keys", keys, "started_with", s.started.Version)
		}
	})

	s.log.Info(s.name+" serving", "http", ln.Addr().String(), "tls", s.tls != nil, "config", s.cluster.Config().Version, "from", s.src.Origin())
	if s.ready != nil {
		s.ready()
	}
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	s.log.Info(s.name + " stopping")
	s.shutdown.step("http drain", func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), httpDrainTimeout)
		defer cancel()
		if err := srv.ShutdownWithContext(shutdownCtx); err != nil {
			s.log.Warn("http shutdown: requests still in flight", "err", err, "waited", httpDrainTimeout)
		}
	})
	return nil
}

// shutdownTimeout bounds a node's or proxy's whole shutdown: SIGTERM stops
// the process within it even when a step cannot finish (a request stuck on
// a client that never ends its upload, a store stuck on a full disk).
// Acknowledged writes are durable already, so exiting with a step left
// running loses none of them.
const shutdownTimeout = 15 * time.Second

// httpDrainTimeout is how long requests in flight get to finish; the rest
// of shutdownTimeout is left to the steps after it.
const httpDrainTimeout = 10 * time.Second

// shutdown runs the steps of a process's shutdown, each waited for only
// until a deadline shutdownTimeout after the first step began. A step past
// it is logged and left running; the process exits without it. Steps run
// one after the other from the goroutine that runs the process.
type shutdown struct {
	log      *slog.Logger
	timeout  time.Duration // shutdownTimeout; tests shorten it
	start    time.Time
	deadline time.Time
	late     []string
}

func newShutdown(log *slog.Logger) *shutdown {
	return &shutdown{log: log, timeout: shutdownTimeout}
}

// minStepWait lets a step that finishes at once be seen to, even past the
// deadline, so it is not reported as stuck.
const minStepWait = 50 * time.Millisecond

// step runs fn and waits for it until the deadline; it reports whether fn
// finished.
func (s *shutdown) step(name string, fn func()) bool {
	if s.start.IsZero() {
		s.start = time.Now()
		s.deadline = s.start.Add(s.timeout)
	}
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	t := time.NewTimer(max(time.Until(s.deadline), minStepWait))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		s.late = append(s.late, name)
		s.log.Error("shutdown step did not finish in time; going on without it", "step", name, "shutdown_timeout", s.timeout)
		return false
	}
}

// finish logs how the shutdown went.
func (s *shutdown) finish(name string) {
	if s.start.IsZero() {
		return
	}
	if len(s.late) > 0 {
		s.log.Error(name+" stopped with steps unfinished", "unfinished", s.late, "took", time.Since(s.start).Round(time.Millisecond))
		return
	}
	s.log.Info(name+" stopped", "took", time.Since(s.start).Round(time.Millisecond))
}

// stopPeerServer stops the peer server and reports whether it stopped.
func stopPeerServer(psrv *eventloop.Server, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := psrv.Stop(ctx); err != nil {
		log.Warn("peer server stop", "err", err)
		return false
	}
	return true
}

// maxFrame is the largest peer frame a cluster with these storage settings
// needs: the largest value, its key and room for a healing batch around it.
func maxFrame(st config.Storage) int {
	return max(codec.DefaultMaxFrame, int(st.MaxValueBytes)+kv.MaxKeyLen+healChunkBytes+64<<10)
}

// openStore opens the node's store in dir.
func openStore(dir string, st config.Storage, log *slog.Logger) (*kv.Store, error) {
	mode, err := kv.ParseSyncMode(st.Sync)
	if err != nil {
		return nil, err
	}
	return kv.Open(dir, kv.Options{
		Sync:          mode,
		SyncInterval:  st.SyncInterval,
		CacheBytes:    st.CacheBytes,
		MemtableBytes: st.MemtableBytes,
		MinFreeBytes:  st.MinFreeBytes,
		Logger:        log,
	})
}

// startPprof serves net/http/pprof on addr when it is set.
func startPprof(addr string, log *slog.Logger) (stop func()) {
	if addr == "" {
		return func() {}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("pprof listener", "addr", addr, "err", err)
		return func() {}
	}
	srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof", "err", err)
		}
	}()
	log.Info("pprof serving", "addr", ln.Addr().String())
	return func() { srv.Close() }
}
