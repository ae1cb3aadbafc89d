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
	if err := s.waitReady(ctx, spec.ready, spec.wait); err != nil {
		tail := s.LogTail(15)
		_ = s.Stop()
		return nil, fmt.Errorf("%w: %s: %w\n--- %s log tail ---\n%s", ErrNotReady, spec.ep.Name, err, spec.ep.Name, tail)
	}
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
// and removes its temp dir. Safe to call more than once.
func (s *Server) Stop() error {
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

// writeFile writes s to dir/name and returns the path.
func writeFile(dir, name, s string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(s), 0o644)
}
