package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotReady reports a server that did not come up in time or exited while starting.
var ErrNotReady = errors.New("bench: server not ready")

// Server is a process the harness started: its own process group, a temp dir holding its data
// and log, and the endpoint it serves.
type Server struct {
	Endpoint
	Dir  string // temp dir, removed by Stop
	Log  string // combined stdout+stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	err  error         // Wait's result, valid after done
	once sync.Once
	// members are the other processes of a replicated store (etcd members, a Redis replica),
	// each with its own dir, stopped after this one.
	members []*Server
}

// serverSpec describes how to start and probe one server.
type serverSpec struct {
	ep    Endpoint // Pid is filled in
	bin   string
	args  []string
	env   []string                        // added to the harness's environment
	dir   string                          // already created; owned by the Server from now on
	ready func(ctx context.Context) error // nil error once the server answers
	wait  time.Duration                   // startup bound
}

// startServer runs spec and waits until it is ready. On failure everything is cleaned up and
// the error carries the tail of the server's log.
func startServer(ctx context.Context, spec serverSpec) (*Server, error) {
	return startGroup(ctx, []serverSpec{spec})
}

// startGroup starts every process of a replicated store, then waits for each in turn to be
// ready: members that answer only once a quorum runs must all be started first. It returns
// the first, whose Pids list the others' and whose Stop stops them too. On failure everything
// is stopped and every spec's dir removed; the error carries the failing process's log tail.
func startGroup(ctx context.Context, specs []serverSpec) (*Server, error) {
	var started []*Server
	fail := func(err error) (*Server, error) {
		for _, s := range started {
			_ = s.Stop()
		}
		for _, spec := range specs[len(started):] {
			_ = os.RemoveAll(spec.dir)
		}
		return nil, err
	}
	for _, spec := range specs {
		s, err := launch(spec)
		if err != nil {
			return fail(err)
		}
		started = append(started, s)
	}
	for i, s := range started {
		if err := s.waitReady(ctx, specs[i].ready, specs[i].wait); err != nil {
			tail := s.LogTail(15)
			return fail(fmt.Errorf("%w: %s: %w\n--- %s log tail ---\n%s", ErrNotReady, s.Name, err, s.Name, tail))
		}
	}
	first := started[0]
	first.members = started[1:]
	for _, m := range first.members {
		first.Pids = append(first.Pids, m.Pid)
	}
	return first, nil
}

// launch starts spec's process without waiting for it; on error spec.dir is removed.
func launch(spec serverSpec) (*Server, error) {
	s := &Server{Endpoint: spec.ep, Dir: spec.dir, Log: filepath.Join(spec.dir, "server.log"), done: make(chan struct{})}
	logf, err := os.Create(s.Log)
	if err != nil {
		_ = os.RemoveAll(spec.dir)
		return nil, fmt.Errorf("bench: start %s: %w", spec.ep.Name, err)
	}
	defer logf.Close()
	s.cmd = exec.Command(spec.bin, spec.args...)
	s.cmd.Dir = spec.dir
	s.cmd.Env = append(os.Environ(), spec.env...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		_ = os.RemoveAll(spec.dir)
		return nil, fmt.Errorf("bench: start %s: %w", spec.ep.Name, err)
	}
	s.Pid = s.cmd.Process.Pid
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, ready func(context.Context) error, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		last = ready(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("exited during startup (%v)", s.err)
		case <-ctx.Done():
			return fmt.Errorf("no answer within %v: %w", bound, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop terminates the server (SIGTERM, then SIGKILL to its process group after 10 s), reaps it
// and removes its temp dir, then does the same for its members. Safe to call more than once.
func (s *Server) Stop() error {
	err := s.stopOne()
	for _, m := range s.members {
		err = errors.Join(err, m.Stop())
	}
	return err
}

func (s *Server) stopOne() error {
	var err error
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("bench: %s ignored SIGTERM for 10s, killed", s.Name)
		}
		// Kill what is left of the group we created (the process itself, or children of a
		// cluster launcher that outlived it).
		_ = syscall.Kill(-s.Pid, syscall.SIGKILL)
		<-s.done
		if rerr := os.RemoveAll(s.Dir); rerr != nil && err == nil {
			err = fmt.Errorf("bench: remove %s: %w", s.Dir, rerr)
		}
	})
	return err
}

// where says where the server and its members listen, with their pids, for the log.
func (s *Server) where() string {
	w := fmt.Sprintf("%s (pid %d)", s.Addr, s.Pid)
	for _, m := range s.members {
		w += fmt.Sprintf(", %s on %s (pid %d)", m.Name, m.Addr, m.Pid)
	}
	return w
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// FreePorts reserves n distinct free TCP ports on 127.0.0.1. They are released before return,
// so another process could take one in between; the servers' readiness check catches that.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// SharedPorts returns n distinct ports free on 127.0.0.1 and on every host: candidates come
// from 127.0.0.1:0 and are kept only if every other host can bind them too.
func SharedPorts(hosts []string, n int) ([]int, error) {
	var out []int
	for tries := 0; len(out) < n && tries < 50; tries++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := bindsEverywhere(hosts, port)
		ln.Close()
		if ok && !slices.Contains(out, port) {
			out = append(out, port)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("bench: no %d ports free on all of %v", n, hosts)
	}
	return out, nil
}

func bindsEverywhere(hosts []string, port int) bool {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, h := range hosts {
		if h == "127.0.0.1" {
			continue // the candidate's own listener holds it
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		lns = append(lns, ln)
	}
	return true
}

// probeHTTP succeeds once GET path on addr answers with a status in ok and a body containing
// want (if set).
func probeHTTP(addr, path, want string, ok ...int) func(context.Context) error {
	return func(ctx context.Context) error {
		t := NewHTTPTarget(addr, time.Second)
		defer t.Close()
		t.get.SetRequestURI(path)
		if err := t.c.Do(t.get, t.resp); err != nil {
			return err
		}
		code := t.resp.StatusCode()
		for _, c := range ok {
			if code == c && bytes.Contains(t.resp.Body(), []byte(want)) {
				return nil
			}
		}
		return fmt.Errorf("GET %s: %d %q", path, code, truncate(t.resp.Body(), 80))
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// probeRESP succeeds once a GET round trip works.
func probeRESP(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := DialRESP(addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Get([]byte("tako-bench-probe"), nil)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
}

// probeRESPWait succeeds once a write to a Redis primary is acknowledged by one replica.
func probeRESPWait(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := DialRESPWait(addr, time.Second, 1)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Set([]byte("tako-bench-probe"), nil)
	}
}

// writeFile writes s to dir/name and returns the path.
func writeFile(dir, name, s string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(s), 0o644)
}
