package configsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tako-kv/tako/internal/logbuf"
	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/coordinator"
)

// doc returns a valid configuration; readRepair tells versions apart.
func doc(readRepair string) string {
	return fmt.Sprintf(`
coordinators:
    c1: [127.0.0.1, 4701]
active_deployment: d
deployments:
    d:
        read_repair: %s
        buckets:
            b1:
                n1: [127.0.0.1, 5711, 4711]
`, readRepair)
}

const broken = "active_deployment: d\ndeployments:\n    d:\n        read_repiar: yes\n"

func versionOf(t *testing.T, text string) string {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Version
}

// writeFile replaces path's content at once (a temporary file renamed over
// it): a watcher polling every 10ms must not see it half-written (truncated,
// then written), which under load it did, logging a refusal for the empty
// file besides the one for a broken edit.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newLogger() (*slog.Logger, *logbuf.Buffer) { return logbuf.Logger() }

// startCoordinator serves text through a real coordinator watching its file
// every 10ms; it returns the file and the host:port.
func startCoordinator(t *testing.T, text string) (file, addr string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "tako.yaml")
	writeFile(t, file, text)
	c, err := coordinator.New(coordinator.Options{ID: "c1", File: file, Poll: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return file, srv.Listener.Addr().String()
}

// deadAddr returns a 127.0.0.1 address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestOpenFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tako.yaml")
	writeFile(t, file, doc("yes"))
	cache := filepath.Join(t.TempDir(), "n1", "config.json")
	start := time.Now()
	// The file wins: the dead coordinator is not even tried.
	s, cfg, err := Open(context.Background(), Options{File: file, Coordinators: []string{deadAddr(t)}, CachePath: cache})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != versionOf(t, doc("yes")) || s.Current() != cfg || s.Origin() != "file "+file {
		t.Errorf("version %s, origin %q", cfg.Version, s.Origin())
	}
	if time.Since(start) > time.Second {
		t.Errorf("Open with a file took %v", time.Since(start))
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Errorf("file mode wrote a cache: %v", err)
	}

	writeFile(t, file, broken)
	_, _, err = Open(context.Background(), Options{File: file})
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), file) {
		t.Errorf("broken file: %v", err)
	}
}

func TestOpenFromCoordinatorWritesCache(t *testing.T) {
	_, addr := startCoordinator(t, doc("yes"))
	dir := filepath.Join(t.TempDir(), "n1")
	cache := filepath.Join(dir, "config.json")
	// The first coordinator is down; the second answers.
	s, cfg, err := Open(context.Background(), Options{Coordinators: []string{deadAddr(t), addr}, CachePath: cache})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != versionOf(t, doc("yes")) || s.Origin() != "coordinator "+addr {
		t.Errorf("version %s, origin %q", cfg.Version, s.Origin())
	}
	cached, err := config.Load(cache)
	if err != nil || cached.Version != cfg.Version {
		t.Fatalf("cache: %v, %v", cached, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("cache dir holds %d entries, want only config.json (no temp files)", len(entries))
	}
}

func TestOpenFallsBackToCache(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "config.json")
	writeFile(t, cache, doc("no"))
	log, logs := newLogger()
	start := time.Now()
	s, cfg, err := Open(context.Background(), Options{Coordinators: []string{deadAddr(t)}, CachePath: cache,
		OpenWait: 300 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != versionOf(t, doc("no")) || s.Origin() != "cache "+cache {
		t.Errorf("version %s, origin %q", cfg.Version, s.Origin())
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up on coordinators after %v, want about OpenWait", d)
	}
	if !strings.Contains(logs.String(), "starting from the cached configuration") {
		t.Errorf("fallback not logged:\n%s", logs)
	}
}

func TestOpenErrors(t *testing.T) {
	dead := deadAddr(t)
	missing := filepath.Join(t.TempDir(), "config.json")
	badCache := filepath.Join(t.TempDir(), "config.json")
	writeFile(t, badCache, broken)
	f := func(o Options, want ...string) {
		t.Helper()
		o.OpenWait = 100 * time.Millisecond
		_, _, err := Open(context.Background(), o)
		if !errors.Is(err, ErrNoConfiguration) && !strings.Contains(fmt.Sprint(err), "configsource:") {
			t.Errorf("%+v: %v", o, err)
		}
		for _, w := range want {
			if !strings.Contains(fmt.Sprint(err), w) {
				t.Errorf("%+v: error %q does not contain %q", o, err, w)
			}
		}
	}
	f(Options{}, "-cfg FILE", "-c HOST:PORT")
	f(Options{Coordinators: []string{dead}, CachePath: missing}, "coordinator "+dead, "connection refused", "cache:", missing)
	f(Options{Coordinators: []string{dead}}, "coordinator "+dead, "no cache configured")
	f(Options{Coordinators: []string{dead}, CachePath: badCache}, badCache, "read_repiar")
	f(Options{Coordinators: []string{"localhost"}}, `coordinator address "localhost"`)
}

// collect runs Watch and gathers the versions it delivers.
type collector struct {
	mu       sync.Mutex
	versions []string
}

func (c *collector) add(cfg *config.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.versions = append(c.versions, cfg.Version)
}

func (c *collector) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.versions...)
}

func watch(t *testing.T, s *Source) *collector {
	t.Helper()
	col := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Watch(ctx, col.add) }()
	t.Cleanup(func() { cancel(); <-done })
	return col
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchCoordinator(t *testing.T) {
	file, addr := startCoordinator(t, doc("yes"))
	cache := filepath.Join(t.TempDir(), "config.json")
	log, logs := newLogger()
	s, _, err := Open(context.Background(), Options{Coordinators: []string{addr}, CachePath: cache,
		Poll: 10 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	col := watch(t, s)
	time.Sleep(50 * time.Millisecond) // several 304 polls
	if v := col.get(); len(v) != 0 {
		t.Fatalf("delivered %v without a change", v)
	}

	writeFile(t, file, broken) // the coordinator refuses it
	time.Sleep(100 * time.Millisecond)
	v2 := versionOf(t, doc("no"))
	writeFile(t, file, doc("no"))
	waitFor(t, "the edited version", func() bool { return len(col.get()) > 0 })
	if v := col.get(); len(v) != 1 || v[0] != v2 || s.Current().Version != v2 {
		t.Fatalf("delivered %v, want [%s]", v, v2)
	}
	if cached, err := config.Load(cache); err != nil || cached.Version != v2 {
		t.Errorf("cache not updated: %v", err)
	}
	if !strings.Contains(logs.String(), "configuration updated") {
		t.Errorf("update not logged:\n%s", logs)
	}
}

// TestWatchIgnoresBrokenDocument serves a valid version, then a broken
// document, then a newer valid one, and counts conditional requests.
func TestWatchIgnoresBrokenDocument(t *testing.T) {
	var stage, notModified atomic.Int32
	v1 := versionOf(t, doc("yes"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := map[int32]string{0: doc("yes"), 1: broken, 2: doc("no")}[stage.Load()]
		if stage.Load() == 0 && r.Header.Get("If-None-Match") == `"`+v1+`"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte(body))
	}))
	defer srv.Close()
	log, logs := newLogger()
	s, _, err := Open(context.Background(), Options{Coordinators: []string{srv.Listener.Addr().String()},
		Poll: 5 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	col := watch(t, s)
	waitFor(t, "conditional polls", func() bool { return notModified.Load() >= 3 })
	stage.Store(1)
	waitFor(t, "the broken document to be logged", func() bool { return strings.Contains(logs.String(), "broken") })
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logs.String(), "broken configuration"); n != 1 {
		t.Errorf("broken document logged %d times, want once:\n%s", n, logs)
	}
	if len(col.get()) != 0 || s.Current().Version != v1 {
		t.Fatalf("broken document delivered: %v", col.get())
	}
	stage.Store(2)
	waitFor(t, "the valid version", func() bool { return len(col.get()) == 1 })
	if got := col.get()[0]; got != versionOf(t, doc("no")) {
		t.Errorf("delivered %s", got)
	}
}

// TestWatchFailsOver stops the coordinator that answered; the other one,
// serving a different version, takes over.
func TestWatchFailsOver(t *testing.T) {
	_, addrB := startCoordinator(t, doc("no"))
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(doc("yes")))
	}))
	defer a.Close()
	s, cfg, err := Open(context.Background(), Options{Coordinators: []string{a.Listener.Addr().String(), addrB},
		Poll: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil || cfg.Version != versionOf(t, doc("yes")) {
		t.Fatalf("%v, %v", cfg, err)
	}
	col := watch(t, s)
	time.Sleep(50 * time.Millisecond)
	if len(col.get()) != 0 {
		t.Fatal("flapped to the second coordinator while the first answered")
	}
	a.CloseClientConnections()
	a.Close()
	waitFor(t, "failover", func() bool { return len(col.get()) == 1 })
	if got := col.get()[0]; got != versionOf(t, doc("no")) {
		t.Errorf("delivered %s", got)
	}
}

func TestWatchFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tako.yaml")
	writeFile(t, file, doc("yes"))
	log, logs := newLogger()
	s, _, err := Open(context.Background(), Options{File: file, Poll: 10 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	col := watch(t, s)
	writeFile(t, file, broken)
	waitFor(t, "the broken edit to be logged", func() bool { return strings.Contains(logs.String(), "refused") })
	if len(col.get()) != 0 {
		t.Fatal("broken edit delivered")
	}
	writeFile(t, file, doc("no"))
	waitFor(t, "the valid edit", func() bool { return len(col.get()) == 1 })
	if got := col.get()[0]; got != versionOf(t, doc("no")) {
		t.Errorf("delivered %s", got)
	}
	if n := strings.Count(logs.String(), "refused"); n != 1 {
		t.Errorf("broken edit logged %d times", n)
	}
}

// A coordinator with http_tokens_file answers only a process that sends one
// of its tokens; without one, Open says to pass -token-file; SetToken
// replaces the token sent (a rotated -token-file).
func TestCoordinatorTokens(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("old-0123456789abcdef read-only\nnew-0123456789abcdef read-only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, addr := startCoordinator(t, doc("yes")+"http_tokens_file: "+tokens+"\n")
	o := Options{Coordinators: []string{addr}, OpenWait: 100 * time.Millisecond}
	if _, _, err := Open(context.Background(), o); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "pass -token-file") {
		t.Fatalf("Open without a token: %v", err)
	}
	o.Token = "old-0123456789abcdef"
	s, cfg, err := Open(context.Background(), o)
	if err != nil || cfg.HTTPTokensFile != tokens {
		t.Fatalf("Open with a token: %v %v", cfg, err)
	}
	s.SetToken("unknown-0123456789abcdef")
	if _, _, err := s.fetch(context.Background(), addr, ""); err == nil || !strings.Contains(err.Error(), "unknown token") {
		t.Fatalf("fetch with an unknown token: %v", err)
	}
	s.SetToken("new-0123456789abcdef")
	if _, _, err := s.fetch(context.Background(), addr, ""); err != nil {
		t.Fatalf("fetch with the new token: %v", err)
	}
}

// TestCoordinatorTLS: a coordinator whose configuration sets TLS serves it
// over HTTPS only; a node or proxy fetches it with -cacert (Options.CAFile),
// is told to pass it when it does not, and refuses a coordinator its CA did
// not sign.
func TestCoordinatorTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	files := ca.WriteFiles(t, dir, ca.Leaf(t, "c1"))
	other := tlstest.NewCA(t, "other")
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(otherCA, other.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "tako.yaml")
	writeFile(t, file, doc("yes")+files.ConfigKeys())
	c, err := coordinator.New(coordinator.Options{ID: "c1", File: file, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := c.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- c.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })
	addr := ln.Addr().String()

	o := Options{Coordinators: []string{addr}, OpenWait: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if _, _, err := Open(context.Background(), o); err == nil || !strings.Contains(err.Error(), "pass -cacert") {
		t.Fatalf("Open over plain HTTP from a TLS coordinator: %v", err)
	}
	o.CAFile = otherCA
	if _, _, err := Open(context.Background(), o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Open trusting another CA: %v", err)
	}
	o.CAFile = files.CA
	s, cfg, err := Open(context.Background(), o)
	if err != nil || cfg.TLSCertFile != files.Cert {
		t.Fatalf("Open with -cacert: %v %v", cfg, err)
	}
	if got := s.Origin(); got != "coordinator "+addr {
		t.Fatalf("origin %q", got)
	}
	o.CAFile = filepath.Join(dir, "missing.pem")
	if _, _, err := Open(context.Background(), o); err == nil || !strings.Contains(err.Error(), "-cacert") {
		t.Fatalf("Open with a missing -cacert file: %v", err)
	}
}
