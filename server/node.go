package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only when NodeConfig.PprofAddr is set
	"os"
	"path/filepath"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/config"
)

// NodeConfig is what tako-node's flags say.
type NodeConfig struct {
	ID         string
	ConfigPath string // -cfg
	VarDir     string // data and cached configuration live under VarDir/<ID>
	PprofAddr  string // net/http/pprof listener; empty: off
	Logger     *slog.Logger
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
	cfg, err := config.Load(nc.ConfigPath)
	if err != nil {
		return err
	}
	self, ok := cfg.FindNode(nc.ID)
	if !ok {
		return fmt.Errorf("node id %q is not in configuration %s", nc.ID, nc.ConfigPath)
	}
	dir := filepath.Join(nc.VarDir, nc.ID)
	store, err := openStore(dir, cfg.Storage, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()

	ln, err := httpproxy.Listen(self.HTTPAddr())
	if err != nil {
		return err
	}
	h := httpproxy.NewHandler(httpproxy.Config{
		Backend:       LocalBackend{Store: store},
		MaxValueBytes: int(cfg.Storage.MaxValueBytes),
		Logger:        log,
	})
	srv := h.NewServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	stopPprof := startPprof(nc.PprofAddr, log)
	defer stopPprof()

	log.Info("node serving", "id", nc.ID, "http", ln.Addr().String(), "data", dir, "config", cfg.Version)
	if nc.Ready != nil {
		nc.Ready()
	}
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("node stopping", "id", nc.ID)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.ShutdownWithContext(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	return nil
}

// openStore opens the node's store under dir, creating dir.
func openStore(dir string, st config.Storage, log *slog.Logger) (*kv.Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	mode, err := kv.ParseSyncMode(st.Sync)
	if err != nil {
		return nil, err
	}
	return kv.Open(filepath.Join(dir, "store"), kv.Options{
		Sync:          mode,
		SyncInterval:  st.SyncInterval,
		CacheBytes:    st.CacheBytes,
		MemtableBytes: st.MemtableBytes,
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
