package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/configsource"
	"github.com/tako-kv/tako/server/metrics"
)

// ProxyConfig is what tako-proxy's flags say.
type ProxyConfig struct {
	Addr         string   // HTTP listen address, e.g. ":8080"
	ConfigPath   string   // -cfg
	Coordinators []string // -c
	VarDir       string   // the cached configuration goes under VarDir/proxy-<port>
	PprofAddr    string
	// ClockOffset is added to this process's clock: a testing aid to inject
	// clock skew (tako-proxy -clock-offset). Zero in production.
	ClockOffset time.Duration
	TokenFile   string // -token-file, as NodeConfig.TokenFile
	CAFile      string // -cacert, as NodeConfig.CAFile
	Logger      *slog.Logger
	Ready       func()
}

// RunProxy serves the HTTP API over the cluster until ctx is cancelled. A
// proxy holds no data: every request goes to the key's replicas over the
// peer protocol.
func RunProxy(ctx context.Context, pc ProxyConfig) error {
	log := pc.Logger
	if log == nil {
		log = slog.Default()
	}
	_, port, err := net.SplitHostPort(pc.Addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", pc.Addr, err)
	}
	token, err := readClientToken(pc.TokenFile)
	if err != nil {
		return err
	}
	src, cfg, err := configsource.Open(ctx, configsource.Options{
		File: pc.ConfigPath, Coordinators: pc.Coordinators,
		CachePath: filepath.Join(pc.VarDir, "proxy-"+port, "config.json"), Token: token, CAFile: pc.CAFile, Logger: log,
	})
	if err != nil {
		return err
	}
	auth, err := loadPeerAuth(cfg, pc.ConfigPath, log)
	if err != nil {
		return err
	}
	tokens, err := loadHTTPTokens(cfg, pc.ConfigPath, log)
	if err != nil {
		return err
	}
	hs, err := openHints(filepath.Join(pc.VarDir, "proxy-"+port, "hints"), log)
	if err != nil {
		return err
	}
	sd := newShutdown(log)
	defer sd.finish("proxy")
	defer sd.step("hints close", func() { hs.Close() })
	peers := newPeerPool("", maxFrame(cfg.Storage), log).authenticate(auth)
	defer sd.step("peer clients close", peers.close)
	reg := metrics.NewRegistry()
	cluster, err := NewCluster(cfg, ClusterConfig{Logger: log, Hints: hs, Metrics: metrics.NewCluster(reg),
		Replica: func(n config.Node) Replica { return peers.replica(n) }})
	if err != nil {
		return err
	}
	processMetrics(reg, cluster, hs, peers, nil)
	defer sd.step("replication stop", cluster.Close)
	ln, err := httpproxy.Listen(pc.Addr)
	if err != nil {
		return err
	}
	defer sd.step("hint replay stop", runBackground(ctx, func(ctx context.Context) { replayHints(ctx, hs, cluster, log, nil) }))
	return serveHTTP(ctx, httpService{
		ln: ln, tls: auth.tls.HTTPServer(), backend: cluster, keys: cluster, clock: newClock(cfg, pc.ClockOffset), storage: cfg.Storage, pprof: pc.PprofAddr, log: log, shutdown: sd,
		src: src, cluster: cluster, ready: pc.Ready, name: "proxy", started: cfg, onUpdate: peers.retain, metrics: reg,
		tokens: tokens, tokenFile: pc.TokenFile,
	})
}
