package launcher

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/configsource"
	"github.com/tako-kv/tako/server/tlsconf"
)

// ErrAllExited is returned by Run when every child exited on its own.
var ErrAllExited = errors.New("launcher: every process has exited")

// Options are tako-cluster's flags plus what tests substitute.
type Options struct {
	ConfigPath   string
	ProxyPorts   []int    // -p
	Skip         []string // -s: node ids not to start, now or later
	VarDir       string   // -v; DefaultVarDir when empty
	Debug        bool     // -d, passed on to every child
	StartTimeout time.Duration
	StopTimeout  time.Duration
	// Poll is how often the running configuration is checked for changes,
	// and a leaving node's report; configsource.DefaultPoll when zero.
	Poll time.Duration
	// HandoffTimeout bounds how long a node that no live deployment names
	// keeps running to hand off what it holds (-handoff);
	// DefaultHandoffTimeout when zero.
	HandoffTimeout time.Duration

	// BinDir is searched for the binaries before $PATH; empty means the
	// directory of the running executable.
	BinDir string
	// Out receives progress, the process tables and exit reports; os.Stdout
	// when nil.
	Out io.Writer
	// Logger receives the configuration watcher's logs (edits taken or
	// refused); a text logger on Out when nil.
	Logger *slog.Logger
	// Health reports whether url answers 200; an HTTP GET when nil (over HTTPS
	// verified against tls_ca_file for nodes and proxies when tls_cert_file is set).
	Health func(ctx context.Context, url string) error
	// TokenFile (-token-file) holds the bearer token tako-cluster sends to
	// the coordinators and nodes, and is passed on to every child; Run
	// defaults it to the configuration's http_tokens_file.
	TokenFile string
	token     string // what TokenFile holds; set by Run
}

func (o Options) withDefaults() Options {
	if o.VarDir == "" {
		o.VarDir = DefaultVarDir
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.HandoffTimeout <= 0 {
		o.HandoffTimeout = DefaultHandoffTimeout
	}
	if o.Poll <= 0 {
		o.Poll = configsource.DefaultPoll
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Out, nil))
	}
	return o
}

// cluster is one Run's state, owned by Run's goroutine.
type cluster struct {
	o        Options
	cfg      *config.Config // the configuration last acted on
	plan     planner        // the start-up flags, for nodes that appear later
	status   *http.Client   // reads leaving nodes' and coordinators' reports
	bins     map[Kind]string
	children []*child          // every child ever started, in start order
	nodes    map[string]*child // node id -> its latest process, while a live deployment names it
	exits    chan *child       // children that exited, read by follow
	closed   chan struct{}     // closed when Run returns: exits is not read any more

	leaving   map[string]*leaver // node id -> its process, named no more, handing off
	handedOff chan handoffEnd    // leavers' watches end here, read by follow
	watches   sync.WaitGroup     // the leavers' watches; follow waits for them

	hangups chan os.Signal // SIGHUP: forwarded to every child (follow)
}

// Run starts the cluster, follows its configuration until ctx ends (or
// every child has exited) and stops every child before returning. It
// returns an error when the cluster could not be started; an interrupt
// during start-up is not one.
func Run(ctx context.Context, o Options) error {
	o = o.withDefaults()
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return err
	}
	if o, err = o.withToken(cfg); err != nil {
		return err
	}
	pc, err := newPollClients(cfg, o.ConfigPath)
	if err != nil {
		return err
	}
	if o.Health == nil {
		o.Health = pc.health
	}
	specs, err := Plan(cfg, o)
	if err != nil {
		return err
	}
	bins, err := findBinaries(o.BinDir, specs)
	if err != nil {
		return err
	}
	if err := checkFree(clusterAddrs(cfg, o.ProxyPorts, o.Skip)); err != nil {
		return err
	}
	if err := os.MkdirAll(o.VarDir, 0o755); err != nil {
		return fmt.Errorf("var directory: %w", err)
	}
	c := &cluster{o: o, cfg: cfg, plan: newPlanner(cfg, o), status: pc.status, bins: bins, nodes: map[string]*child{},
		exits: make(chan *child), closed: make(chan struct{}), leaving: map[string]*leaver{}, handedOff: make(chan handoffEnd),
		hangups: make(chan os.Signal, 1)}
	// SIGHUP (logrotate's postrotate, a closed terminal) must not stop the
	// cluster: the children reopen their logs on it, so it is passed on.
	signal.Notify(c.hangups, syscall.SIGHUP)
	defer signal.Stop(c.hangups)
	defer close(c.closed)
	defer c.stopAll()
	for _, kind := range []Kind{Coordinator, Node, Proxy} {
		if _, err := c.start(ctx, kind, ofKind(specs, kind)); err != nil {
			// Ctrl-C in a terminal reaches the children too; a child that
			// exited from it is not a start-up failure.
			sleep(ctx, 250*time.Millisecond)
			if ctx.Err() != nil {
				fmt.Fprintln(o.Out, "tako-cluster: interrupted during start-up")
				return nil
			}
			return err
		}
	}
	fmt.Fprintf(o.Out, "tako-cluster: %d processes running (configuration %s, version %s)\n",
		len(c.children), o.ConfigPath, cfg.Version)
	c.printTable(c.children)
	c.printHints()
	return c.follow(ctx)
}

func ofKind(specs []Spec, kind Kind) []Spec {
	var out []Spec
	for _, s := range specs {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// start starts every spec (all of kind) and waits until all answer. It is
// the one way a child is started, at start-up and when a configuration
// names new nodes. It returns the children it started, also on error.
func (c *cluster) start(ctx context.Context, kind Kind, specs []Spec) ([]*child, error) {
	var started []*child
	for _, s := range specs {
		ch, err := startChild(c.bins[kind], s, c.exits, c.closed)
		if err != nil {
			return started, err
		}
		c.children = append(c.children, ch)
		if kind == Node {
			c.nodes[s.Name] = ch
		}
		started = append(started, ch)
	}
	if len(started) == 0 {
		return nil, nil
	}
	return started, c.waitUp(ctx, kind, started)
}

// waitUp polls every child's health URL until all answer, one exits, the
// phase times out or ctx ends; it shows "nodes up 3/10" as they come up.
func (c *cluster) waitUp(ctx context.Context, kind Kind, cs []*child) error {
	p := newProgress(c.o.Out, kind.plural(), len(cs))
	defer p.end()
	deadline := time.Now().Add(c.o.StartTimeout)
	up := make([]bool, len(cs))
	n := 0
	for {
		for i, ch := range cs {
			if up[i] {
				continue
			}
			if ch.exited() {
				ch.expected = true // the error reports it
				return fmt.Errorf("%s (%s, pid %d) exited during start-up: %s; last lines of %s:\n%s",
					ch.spec.Name, kind.Binary(), ch.pid(), ch.exitText(), ch.spec.Log, ch.logTail(15))
			}
			if c.o.Health(ctx, ch.spec.Health) == nil {
				up[i] = true
				n++
			}
		}
		p.show(n)
		if n == len(cs) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return c.notUpError(kind, cs, up)
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func (c *cluster) notUpError(kind Kind, cs []*child, up []bool) error {
	var names []string
	var first *child
	for i, ch := range cs {
		if !up[i] {
			names = append(names, ch.spec.Name)
			if first == nil {
				first = ch
			}
		}
	}
	return fmt.Errorf("%s not answering %s after %v: %s; last lines of %s:\n%s",
		kind.plural(), "/health", c.o.StartTimeout, strings.Join(names, ", "), first.spec.Log, first.logTail(15))
}

// findBinaries locates the binary of every kind specs use: in dir (the
// running executable's directory when empty), else on $PATH.
func findBinaries(dir string, specs []Spec) (map[Kind]string, error) {
	if dir == "" {
		if exe, err := os.Executable(); err == nil {
			if resolved, err := filepath.EvalSymlinks(exe); err == nil {
				exe = resolved
			}
			dir = filepath.Dir(exe)
		}
	}
	bins := map[Kind]string{}
	var missing []string
	for _, kind := range []Kind{Coordinator, Node, Proxy} {
		if !usesKind(specs, kind) {
			continue
		}
		name := kind.Binary()
		if p := filepath.Join(dir, name); dir != "" && isExecutable(p) {
			bins[kind] = p
		} else if p, err := exec.LookPath(name); err == nil {
			bins[kind] = p
		} else {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("cannot find %s (looked in %s and on $PATH); build them first (go build -o bin/ ./cmd/... in the module root)",
			strings.Join(missing, ", "), dir)
	}
	return bins, nil
}

func usesKind(specs []Spec, kind Kind) bool {
	for _, s := range specs {
		if s.Kind == kind {
			return true
		}
	}
	return false
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// pollClients are the HTTP clients the launcher polls its children with: health
// checks, and reports (a coordinator's asks every node in turn, 2 s each at most, so it
// may take longer than a health check). With tls_cert_file set they trust tls_ca_file
// (read at start, relative to the configuration file).
type pollClients struct{ healthC, status *http.Client }

func newPollClients(cfg *config.Config, cfgPath string) (pollClients, error) {
	tr := &http.Transport{DisableKeepAlives: true} // no environment proxy
	if cfg.TLSCertFile != "" {
		pool, err := tlsconf.LoadCA("tls_ca_file", cfg.TLSFiles(filepath.Dir(cfgPath)).CA)
		if err != nil {
			return pollClients{}, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return pollClients{healthC: &http.Client{Timeout: time.Second, Transport: tr},
		status: &http.Client{Timeout: 5 * time.Second, Transport: tr}}, nil
}

// withToken resolves TokenFile (default: cfg's http_tokens_file) to an
// absolute path, for the children, and reads its token.
func (o Options) withToken(cfg *config.Config) (Options, error) {
	if o.TokenFile == "" {
		o.TokenFile = cfg.TokensFile(filepath.Dir(o.ConfigPath))
	}
	if o.TokenFile == "" {
		return o, nil
	}
	abs, err := filepath.Abs(o.TokenFile)
	if err != nil {
		return o, fmt.Errorf("-token-file: %w", err)
	}
	o.TokenFile = abs
	if o.token, err = httpproxy.ReadClientToken(abs); err != nil {
		return o, fmt.Errorf("-token-file: %w", err)
	}
	return o, nil
}

// health is the default Options.Health: GET url must answer 200.
func (pc pollClients) health(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := pc.healthC.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
