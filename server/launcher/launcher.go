package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tako-kv/tako/server/config"
)

// ErrAllExited is returned by Run when every child exited on its own.
var ErrAllExited = errors.New("launcher: every process has exited")

// Options are tako-cluster's flags plus what tests substitute.
type Options struct {
	ConfigPath   string
	ProxyPorts   []int    // -p
	Skip         []string // -s: node ids not to start
	VarDir       string   // -v; DefaultVarDir when empty
	Debug        bool     // -d, passed on to every child
	StartTimeout time.Duration
	StopTimeout  time.Duration

	// BinDir is searched for the binaries before $PATH; empty means the
	// directory of the running executable.
	BinDir string
	// Out receives progress, the process table and exit reports; os.Stdout
	// when nil.
	Out io.Writer
	// Health reports whether url answers 200; an HTTP GET when nil.
	Health func(ctx context.Context, url string) error
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
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Health == nil {
		o.Health = httpHealth
	}
	return o
}

// cluster is one Run's state.
type cluster struct {
	o        Options
	cfg      *config.Config
	bins     map[Kind]string
	children []*child
	exits    chan *child // every child's exit, buffered for all of them
}

// Run starts the cluster, runs until ctx ends (or every child has exited)
// and stops every child before returning. It returns an error when the
// cluster could not be started; an interrupt during start-up is not one.
func Run(ctx context.Context, o Options) error {
	o = o.withDefaults()
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return err
	}
	specs, err := Plan(cfg, o)
	if err != nil {
		return err
	}
	bins, err := findBinaries(o.BinDir, specs)
	if err != nil {
		return err
	}
	if err := checkPortsFree(cfg, o.ProxyPorts, o.Skip); err != nil {
		return err
	}
	if err := os.MkdirAll(o.VarDir, 0o755); err != nil {
		return fmt.Errorf("var directory: %w", err)
	}
	c := &cluster{o: o, cfg: cfg, bins: bins, exits: make(chan *child, len(specs))}
	defer c.stopAll()
	for _, kind := range []Kind{Coordinator, Node, Proxy} {
		if err := c.startPhase(ctx, kind, specs); err != nil {
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
	c.printTable()
	return c.monitor(ctx)
}

// startPhase starts every spec of kind and waits until all answer.
func (c *cluster) startPhase(ctx context.Context, kind Kind, specs []Spec) error {
	var started []*child
	for _, s := range specs {
		if s.Kind != kind {
			continue
		}
		ch, err := startChild(c.bins[kind], s, c.exits)
		if err != nil {
			return err
		}
		c.children = append(c.children, ch)
		started = append(started, ch)
	}
	if len(started) == 0 {
		return nil
	}
	return c.waitUp(ctx, kind, started)
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

// monitor reports children that exit on their own until ctx ends.
func (c *cluster) monitor(ctx context.Context) error {
	alive := len(c.children)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch := <-c.exits:
			// Ctrl-C in a terminal reaches the children as well: let our
			// own signal arrive before calling their exit unexpected.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(250 * time.Millisecond):
			}
			alive--
			fmt.Fprintf(c.o.Out, "tako-cluster: %s (pid %d) exited unexpectedly: %s; %d processes still running. Last lines of %s:\n%s",
				ch.spec.Name, ch.pid(), ch.exitText(), alive, ch.spec.Log, ch.logTail(10))
			if alive == 0 {
				return ErrAllExited
			}
		}
	}
}

// stopAll sends SIGTERM to every running child, waits up to StopTimeout,
// SIGKILLs the rest and reaps them.
func (c *cluster) stopAll() {
	var running []*child
	for _, ch := range c.children {
		if !ch.exited() {
			running = append(running, ch)
		}
	}
	if len(running) == 0 {
		return
	}
	fmt.Fprintf(c.o.Out, "tako-cluster: stopping %d processes\n", len(running))
	for _, ch := range running {
		ch.signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(c.o.StopTimeout)
	for _, ch := range running {
		if !waitDone(ch, time.Until(deadline)) {
			fmt.Fprintf(c.o.Out, "tako-cluster: %s (pid %d) did not stop within %v: killing it\n",
				ch.spec.Name, ch.pid(), c.o.StopTimeout)
			ch.signal(syscall.SIGKILL)
		}
	}
	for _, ch := range running {
		if !waitDone(ch, 5*time.Second) {
			fmt.Fprintf(c.o.Out, "tako-cluster: %s (pid %d) survived SIGKILL for 5s\n", ch.spec.Name, ch.pid())
		} else if ch.err != nil && !killedBy(ch, syscall.SIGKILL) {
			fmt.Fprintf(c.o.Out, "tako-cluster: %s stopped with %s; see %s\n", ch.spec.Name, ch.exitText(), ch.spec.Log)
		}
	}
	fmt.Fprintln(c.o.Out, "tako-cluster: stopped")
}

func waitDone(ch *child, d time.Duration) bool {
	if d <= 0 {
		return ch.exited()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch.done:
		return true
	case <-t.C:
		return false
	}
}

func killedBy(ch *child, sig syscall.Signal) bool {
	ws, ok := ch.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

func (c *cluster) printTable() {
	out := c.o.Out
	fmt.Fprintf(out, "tako-cluster: %d processes running (configuration %s, version %s)\n",
		len(c.children), c.o.ConfigPath, c.cfg.Version)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tLISTENS\tLOG")
	for _, ch := range c.children {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", ch.spec.Name, ch.pid(), ch.spec.Listen, ch.spec.Log)
	}
	tw.Flush()
	if len(c.o.Skip) > 0 {
		fmt.Fprintf(out, "skipped (-s): %s\n", strings.Join(c.o.Skip, ", "))
	}
	if len(c.o.ProxyPorts) > 0 {
		p := c.o.ProxyPorts[0]
		fmt.Fprintf(out, "try: curl --data-binary @FILE http://localhost:%d/values/KEY; curl http://localhost:%d/values/KEY\n", p, p)
	}
	fmt.Fprintln(out, "Ctrl-C (or SIGTERM) stops every process.")
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

// checkPortsFree binds every address the cluster will listen on for a
// moment, so a leftover process from an earlier run is reported clearly
// instead of answering health checks in a new child's place.
func checkPortsFree(cfg *config.Config, proxyPorts []int, skip []string) error {
	var addrs, owners []string
	for _, id := range coordinatorIDs(cfg) {
		addrs, owners = append(addrs, cfg.Coordinators[id].String()), append(owners, "coordinator "+id)
	}
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	for _, n := range cfg.Nodes() {
		if !skipped[n.ID] {
			addrs = append(addrs, n.HTTPAddr(), n.PeerAddr())
			owners = append(owners, "node "+n.ID+" http", "node "+n.ID+" peer")
		}
	}
	for _, p := range proxyPorts {
		addrs, owners = append(addrs, fmt.Sprintf(":%d", p)), append(owners, fmt.Sprintf("proxy -p %d", p))
	}
	var busy []string
	inUse := false
	for i, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			busy = append(busy, fmt.Sprintf("%s (%s): %v", a, owners[i], errors.Unwrap(err)))
			inUse = inUse || errors.Is(err, syscall.EADDRINUSE)
			continue
		}
		ln.Close()
	}
	if len(busy) == 0 {
		return nil
	}
	hint := " (tako-cluster runs every process on this machine: every host must be local)"
	if inUse {
		hint = " (is another cluster running?)"
	}
	if len(busy) > 10 {
		busy = append(busy[:10], fmt.Sprintf("and %d more", len(busy)-10))
	}
	return fmt.Errorf("cannot listen where the cluster needs to%s:\n  %s", hint, strings.Join(busy, "\n  "))
}

var healthClient = &http.Client{
	Timeout:   time.Second,
	Transport: &http.Transport{DisableKeepAlives: true}, // no environment proxy
}

// httpHealth is the default Options.Health: GET url must answer 200.
func httpHealth(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := healthClient.Do(req)
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
