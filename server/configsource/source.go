package configsource

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/tlsconf"
)

// ErrNoConfiguration is wrapped by Open when no source gave a configuration.
var ErrNoConfiguration = errors.New("configsource: no configuration")

// Defaults for zero Options fields.
const (
	DefaultPoll     = time.Second
	DefaultOpenWait = 3 * time.Second
	requestTimeout  = 2 * time.Second
	retryPause      = 200 * time.Millisecond
)

// Options say where the configuration comes from; see the package doc.
type Options struct {
	File         string        // -cfg; wins over everything else
	Coordinators []string      // -c host:port, in the order to try
	CachePath    string        // e.g. VARDIR/<id>/config.json; "" disables the cache
	Poll         time.Duration // Watch period; DefaultPoll when zero
	OpenWait     time.Duration // how long Open tries coordinators; DefaultOpenWait when zero
	// Token, when set, is sent to coordinators as a bearer token (their
	// http_tokens_file; -token-file); SetToken replaces it.
	Token string
	// CAFile (-cacert), when set, makes the coordinators' address HTTPS,
	// their certificates verified against this PEM file (their tls_ca_file).
	CAFile string
	Logger *slog.Logger
}

// Source is an opened configuration source. Create it with Open.
type Source struct {
	o      Options
	log    *slog.Logger
	client *http.Client
	scheme string // of the coordinators' URLs: "https://" with Options.CAFile
	cur    atomic.Pointer[config.Config]
	token  atomic.Pointer[string] // Options.Token, or SetToken's
	origin string

	// Owned by Watch.
	preferred   int      // index of the coordinator that answered last
	unreachable bool     // every coordinator failed at the last poll (logged once)
	prevSum     [32]byte // file mode: content at the previous poll
	actedSum    [32]byte // file mode: content last used or refused
	lastBad     string   // the broken document last logged, logged once
}

// Open returns the first configuration (see the package doc for the order
// of sources) and a Source to Watch for updates.
func Open(ctx context.Context, o Options) (*Source, *config.Config, error) {
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.OpenWait <= 0 {
		o.OpenWait = DefaultOpenWait
	}
	client, scheme, err := newClient(o.CAFile)
	if err != nil {
		return nil, nil, err
	}
	s := &Source{o: o, log: o.Logger, client: client, scheme: scheme}
	s.token.Store(&o.Token)
	if s.log == nil {
		s.log = slog.Default()
	}
	var cfg *config.Config
	switch {
	case o.File != "":
		cfg, err = s.openFile()
	case len(o.Coordinators) > 0:
		cfg, err = s.openCoordinators(ctx)
	default:
		err = fmt.Errorf("%w: give a configuration file (-cfg FILE) or coordinators (-c HOST:PORT)", ErrNoConfiguration)
	}
	if err != nil {
		return nil, nil, err
	}
	s.cur.Store(cfg)
	s.log.Info("configuration loaded", "from", s.origin, "version", cfg.Version)
	return s, cfg, nil
}

// SetToken makes tok the bearer token sent from the next request on (a
// rotated -token-file). Safe from any goroutine.
func (s *Source) SetToken(tok string) { s.token.Store(&tok) }

// Current returns the configuration last delivered (or Open's).
func (s *Source) Current() *config.Config { return s.cur.Load() }

// Origin says where Open found the configuration: "file PATH",
// "coordinator HOST:PORT" or "cache PATH".
func (s *Source) Origin() string { return s.origin }

// newClient returns the client for coordinators and their URLs' scheme:
// HTTPS verified against caFile when it is set.
func newClient(caFile string) (*http.Client, string, error) {
	tr := &http.Transport{ // no environment proxy: coordinators are cluster-internal
		DialContext:         (&net.Dialer{Timeout: requestTimeout}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
	}
	scheme := "http://"
	if caFile != "" {
		pool, err := tlsconf.LoadCA("-cacert", caFile)
		if err != nil {
			return nil, "", err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		scheme = "https://"
	}
	return &http.Client{Timeout: requestTimeout, Transport: tr}, scheme, nil
}

func (s *Source) openFile() (*config.Config, error) {
	if len(s.o.Coordinators) > 0 {
		s.log.Info("configuration file given: coordinators ignored", "file", s.o.File)
	}
	data, err := os.ReadFile(s.o.File)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.o.File, err)
	}
	sum := sha256.Sum256(data)
	s.prevSum, s.actedSum = sum, sum
	s.origin = "file " + s.o.File
	return cfg, nil
}

// openCoordinators tries every coordinator in rounds until one answers or
// OpenWait passes, then falls back to the cache.
func (s *Source) openCoordinators(ctx context.Context) (*config.Config, error) {
	for _, a := range s.o.Coordinators {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("configsource: coordinator address %q: %w", a, err)
		}
	}
	deadline := time.Now().Add(s.o.OpenWait)
	failures := make([]string, len(s.o.Coordinators))
	for {
		for i, addr := range s.o.Coordinators {
			cfg, _, err := s.fetch(ctx, addr, "")
			if err == nil {
				s.preferred = i
				s.origin = "coordinator " + addr
				s.writeCache(cfg)
				return cfg, nil
			}
			failures[i] = err.Error()
		}
		if ctx.Err() != nil || time.Now().Add(retryPause).After(deadline) {
			break
		}
		sleep(ctx, retryPause)
	}
	tried := strings.Join(failures, "; ")
	if s.o.CachePath == "" {
		return nil, fmt.Errorf("%w: %s; no cache configured", ErrNoConfiguration, tried)
	}
	cfg, err := s.readCache()
	if err != nil {
		return nil, fmt.Errorf("%w: %s; cache: %v", ErrNoConfiguration, tried, err)
	}
	s.log.Warn("no coordinator answered: starting from the cached configuration",
		"cache", s.o.CachePath, "version", cfg.Version, "coordinators", tried)
	s.origin = "cache " + s.o.CachePath
	return cfg, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
