package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/metrics"
	"github.com/tako-kv/tako/server/tlsconf"
)

// ErrUnknownID is wrapped by New when the coordinator id is not one of the
// configuration's coordinators.
var ErrUnknownID = errors.New("coordinator: unknown id")

// DefaultPoll is how often the file is re-read when Options.Poll is zero.
const DefaultPoll = 500 * time.Millisecond

// Header names of the protocol (see the package doc).
const (
	HeaderVersion = "X-Config-Version"
	PathConfig    = "/configuration"
	PathHealth    = "/health"
)

// Options says which coordinator this is and where its configuration lives.
type Options struct {
	ID     string        // coordinator id in the file's coordinators section
	File   string        // configuration file (YAML or JSON)
	Listen string        // HOST:PORT, or HOST with the configured port, instead of the configured address
	Poll   time.Duration // file re-read period; DefaultPoll when zero
	// TokenFile (-token-file) holds the bearer token the coordinator sends to
	// nodes for their /status; "" sends the first token of http_tokens_file.
	TokenFile string
	Logger    *slog.Logger
}

// Coordinator serves one configuration file. Create it with New.
type Coordinator struct {
	id, file, listen string
	poll             time.Duration
	log              *slog.Logger
	cur              atomic.Pointer[snapshot]

	tokens    httpproxy.TokenGuard   // what requests must carry (http_tokens_file)
	tokenFile string                 // Options.TokenFile
	token     atomic.Pointer[string] // what it sends to nodes

	tls     *tls.Config // HTTPS, when the start-up configuration sets tls_cert_file; else nil
	track   tracker     // migration progress between looks (migration.go)
	nodes   nodeClient  // asks nodes for their reports (migration.go)
	metrics *metrics.Registry
	changes atomic.Int64                  // configurations served after the first
	refused atomic.Int64                  // edits refused
	pending atomic.Pointer[config.Config] // a finishing configuration waiting for ready

	// Owned by the watcher (see watch.go).
	prevSum  [32]byte // content hash at the previous poll
	actedSum [32]byte // content hash last served or refused
	readErr  string   // read error at the previous poll, logged once
}

// snapshot is what the handlers serve: immutable once published.
type snapshot struct {
	cfg  *config.Config
	body []byte // canonical JSON plus a newline (curl-friendly)
	etag string
}

// New loads the file and checks that it names the coordinator id. The
// errors name the file and the problem (config errors keep ErrInvalid).
func New(o Options) (*Coordinator, error) {
	data, err := os.ReadFile(o.File)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.File, err)
	}
	self, ok := cfg.Coordinators[o.ID]
	if !ok {
		return nil, fmt.Errorf("%w %q: not among the coordinators of %s (%s)",
			ErrUnknownID, o.ID, o.File, knownIDs(cfg))
	}
	nodes, err := newNodeClient(cfg, filepath.Dir(o.File))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.File, err)
	}
	c := &Coordinator{id: o.ID, file: o.File, listen: o.Listen, poll: o.Poll, log: o.Logger, tokenFile: o.TokenFile, nodes: nodes}
	// With TLS the configuration is served over HTTPS like every other port
	// (nodes and proxies fetch it with -cacert): a forged configuration would
	// otherwise reach them from whoever sits on the path.
	if files := cfg.TLSFiles(filepath.Dir(o.File)); files.Cert != "" {
		set, err := tlsconf.Load(files)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.File, err)
		}
		c.tls = set.HTTPServer()
	}
	c.listen = config.ListenAddr(self.String(), o.Listen)
	if c.poll <= 0 {
		c.poll = DefaultPoll
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if err := c.loadTokens(cfg, "start"); err != nil {
		return nil, err
	}
	c.metrics = metrics.NewRegistry()
	c.metrics.Coordinator(c.view)
	if err := c.publish(cfg); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	c.prevSum, c.actedSum = sum, sum
	return c, nil
}

func knownIDs(cfg *config.Config) string {
	if len(cfg.Coordinators) == 0 {
		return "it configures no coordinators"
	}
	ids := make([]string, 0, len(cfg.Coordinators))
	for id := range cfg.Coordinators {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, config.NaturalCompare)
	return "known: " + strings.Join(ids, ", ")
}

// publish makes cfg the served configuration.
func (c *Coordinator) publish(cfg *config.Config) error {
	js, err := cfg.JSON()
	if err != nil {
		return fmt.Errorf("coordinator: encode configuration: %w", err)
	}
	c.cur.Store(&snapshot{cfg: cfg, body: append(js, '\n'), etag: `"` + cfg.Version + `"`})
	return nil
}

// Config returns the configuration being served.
func (c *Coordinator) Config() *config.Config { return c.cur.Load().cfg }

// Addr returns the address the coordinator listens on: Options.Listen, or
// its entry in the configuration it was started with.
func (c *Coordinator) Addr() string { return c.listen }

// Listen opens the coordinator's listener; a taken port is an error naming
// the coordinator and the address.
func (c *Coordinator) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return nil, fmt.Errorf("coordinator %s: %w", c.id, err)
	}
	if c.tls != nil {
		ln = tls.NewListener(ln, c.tls)
	}
	return ln, nil
}

// Handler returns the HTTP API of the package doc: every path but /health
// behind the bearer tokens of http_tokens_file, when it is set.
func (c *Coordinator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathConfig, c.serveConfiguration) // GET patterns match HEAD too
	mux.HandleFunc("GET "+PathHealth, c.serveHealth)
	mux.HandleFunc("GET "+PathStatus, c.serveStatus)
	mux.HandleFunc("POST "+PathForceFinish, c.serveForceFinish)
	mux.HandleFunc("GET "+PathPage+"{$}", c.servePage)
	mux.Handle("GET "+metrics.Path, c.metrics.Handler())
	return httpproxy.RequireTokens(&c.tokens, mux, PathHealth)
}

func (c *Coordinator) serveConfiguration(w http.ResponseWriter, r *http.Request) {
	s := c.cur.Load()
	h := w.Header()
	h.Set(HeaderVersion, s.cfg.Version)
	h.Set("ETag", s.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Type", "application/json")
	// ServeContent answers If-None-Match with 304 (RFC 9110 comparison),
	// HEAD without a body, and sets Content-Length.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.body))
}

func (c *Coordinator) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set(HeaderVersion, c.cur.Load().cfg.Version)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// Serve serves ln and watches the file until ctx ends, then shuts the
// server down (bounded) and returns. It returns early only if serving fails.
func (c *Coordinator) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           c.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	watchCtx, stopWatch := context.WithCancel(ctx)
	httpproxy.OnHangup(watchCtx, func() { c.loadTokens(c.Config(), "SIGHUP") })
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); c.Watch(watchCtx) }()
	defer func() { stopWatch(); <-watchDone }()

	c.log.Info("coordinator serving", "id", c.id, "addr", ln.Addr().String(), "tls", c.tls != nil,
		"file", c.file, "version", c.Config().Version)
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("coordinator %s: serve: %w", c.id, err)
	}
	c.log.Info("coordinator stopping", "id", c.id)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		c.log.Warn("coordinator shutdown", "err", err)
	}
	return nil
}

// Run is what tako-coordinator does: New, Listen, then Serve until ctx
// ends. ready, when set, is called with the bound address once requests
// are accepted. Startup errors (file, id, port) return before serving.
func Run(ctx context.Context, o Options, ready func(net.Addr)) error {
	c, err := New(o)
	if err != nil {
		return err
	}
	ln, err := c.Listen()
	if err != nil {
		return err
	}
	if ready != nil {
		ready(ln.Addr())
	}
	return c.Serve(ctx, ln)
}
