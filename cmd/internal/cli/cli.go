// Package cli holds what every tako binary does the same way: logging
// set-up, running until SIGINT/SIGTERM, reporting a failure with exit
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
func Logger(path string, debug bool) (*slog.Logger, io.Closer, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if debug {
		opts.Level = slog.LevelDebug
	}
	if path == "" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), io.NopCloser(nil), nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	return slog.New(slog.NewJSONHandler(f, opts)), f, nil
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
