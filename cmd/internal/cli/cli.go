// Package cli holds what every tako binary does the same way: logging
// set-up (SIGHUP reopens the log file), running until SIGINT/SIGTERM, reporting a failure with exit
// code 1, and answering -version (version.go). Only package main and this
// package call os.Exit.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// Env is what Main hands the program: a context cancelled on SIGINT or
// SIGTERM and the logger.
type Env struct {
	Ctx    context.Context
	Logger *slog.Logger
}

// Main sets up logging (JSON lines to logFile, or text on stderr), runs run
// until it returns, and exits 1 with "name: error" on stderr if it fails.
func Main(name, logFile string, debug bool, run func(*Env) error) {
	log, closer, err := Logger(logFile, debug)
	if err != nil {
		Fatal(name, err)
	}
	ctx, stop := SignalContext()
	err = run(&Env{Ctx: ctx, Logger: log})
	stop()
	if err != nil {
		if logFile != "" {
			log.Error(name+" failed", "err", err)
		}
		closer.Close()
		Fatal(name, err)
	}
	closer.Close()
}

// Logger returns a structured logger writing to path (JSON lines, appended)
// or to stderr (text) when path is empty; debug selects debug level.
//
// Durations are written as such ("took":"1.2s"), not as nanoseconds.
//
// Until the closer is closed, SIGHUP reopens path — logrotate renames the
// file, then signals, and logging goes on in a new file at path — and, with
// no file, is logged and otherwise ignored: it never ends the process.
func Logger(path string, debug bool) (*slog.Logger, io.Closer, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: readableDuration}
	if debug {
		opts.Level = slog.LevelDebug
	}
	if path == "" {
		log := slog.New(slog.NewTextHandler(os.Stderr, opts))
		return log, onHangup(log, nil), nil
	}
	f, err := openLog(path)
	if err != nil {
		return nil, nil, err
	}
	lf := &logFile{path: path, f: f}
	log := slog.New(slog.NewJSONHandler(lf, opts))
	return log, onHangup(log, lf), nil
}

// readableDuration logs a time.Duration as its String ("1.5s"): slog's
// JSON handler would write integer nanoseconds.
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// logFile is a log file that can be reopened under its path while loggers
// write to it.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// reopen switches to a file opened anew at the path; on failure the old
// one stays in use.
func (l *logFile) reopen() error {
	f, err := openLog(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// hangup handles SIGHUP for a logger until closed; then it closes the log
// file, if any.
type hangup struct {
	sigs   chan os.Signal
	done   chan struct{}
	file   *logFile // nil: logging to stderr
	closed sync.Once
}

func onHangup(log *slog.Logger, file *logFile) io.Closer {
	h := &hangup{sigs: make(chan os.Signal, 1), done: make(chan struct{}), file: file}
	signal.Notify(h.sigs, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-h.done:
				return
			case <-h.sigs:
				h.reopen(log)
			}
		}
	}()
	return h
}

func (h *hangup) reopen(log *slog.Logger) {
	if h.file == nil {
		log.Info("SIGHUP: logging to stderr, no log file to reopen")
		return
	}
	if err := h.file.reopen(); err != nil {
		log.Error("SIGHUP: could not reopen the log file; logging goes on in the old one", "path", h.file.path, "err", err)
		return
	}
	log.Info("log file reopened on SIGHUP", "path", h.file.path)
}

func (h *hangup) Close() error {
	var err error
	h.closed.Do(func() {
		signal.Stop(h.sigs)
		close(h.done)
		if h.file != nil {
			err = h.file.Close()
		}
	})
	return err
}

// Fatal prints err as "name: err" and exits 1.
func Fatal(name string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}

// Strings is a repeatable string flag.
type Strings []string

func (s *Strings) String() string     { return strings.Join(*s, ",") }
func (s *Strings) Set(v string) error { *s = append(*s, v); return nil }

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
