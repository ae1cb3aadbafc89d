package configsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
)

// maxDocument bounds a served document (a configuration is kilobytes).
const maxDocument = 16 << 20

// Paths and headers of the coordinator protocol (server/coordinator).
const (
	pathConfig    = "/configuration"
	headerVersion = "X-Config-Version"
)

// errBadDocument marks a document that was fetched but does not parse: it
// is logged and ignored, unlike an unreachable coordinator.
var errBadDocument = errors.New("configsource: broken document")

// fetch asks one coordinator for its configuration. With version set it
// sends If-None-Match and reports notModified on 304.
func (s *Source) fetch(ctx context.Context, addr, version string) (cfg *config.Config, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.scheme+addr+pathConfig, nil)
	if err != nil {
		return nil, false, fmt.Errorf("coordinator %s: %w", addr, err)
	}
	if version != "" {
		req.Header.Set("If-None-Match", `"`+version+`"`)
	}
	token := *s.token.Load()
	if token != "" {
		req.Header.Set("Authorization", httpproxy.BearerHeader(token))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("coordinator %s: %w", addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, true, nil
	case http.StatusOK:
	default:
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		hint := ""
		switch {
		case resp.StatusCode == http.StatusUnauthorized && token == "":
			hint = " (the coordinator requires a bearer token: pass -token-file)"
		case resp.StatusCode == http.StatusBadRequest && s.scheme == "http://" && strings.Contains(string(snippet), "HTTPS"):
			hint = " (the coordinator speaks TLS: pass -cacert with its tls_ca_file)"
		}
		return nil, false, fmt.Errorf("coordinator %s: HTTP %s: %s%s", addr, resp.Status, strings.TrimSpace(string(snippet)), hint)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, false, fmt.Errorf("coordinator %s: reading body: %w", addr, err)
	}
	if len(body) > maxDocument {
		return nil, false, fmt.Errorf("%w from coordinator %s: larger than %d bytes", errBadDocument, addr, maxDocument)
	}
	cfg, err = config.Parse(body)
	if err != nil {
		return nil, false, fmt.Errorf("%w from coordinator %s (version header %q): %w",
			errBadDocument, addr, resp.Header.Get(headerVersion), err)
	}
	return cfg, false, nil
}

// unwrapURLError drops *url.Error's `Get "http://…/configuration":` prefix;
// the caller names the coordinator already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// writeCache stores cfg at CachePath atomically: a temporary file in the
// same directory, fsynced, renamed over the old cache. Failure is logged,
// not fatal: the process runs, it just cannot restart without a coordinator.
func (s *Source) writeCache(cfg *config.Config) {
	if s.o.CachePath == "" {
		return
	}
	if err := writeAtomic(s.o.CachePath, cfg); err != nil {
		s.log.Warn("cannot cache the configuration", "cache", s.o.CachePath, "err", err)
	}
}

func writeAtomic(path string, cfg *config.Config) error {
	js, err := cfg.JSON()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	_, err = f.Write(append(js, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		syncDir(dir)
	}
	return err
}

// syncDir makes a rename durable; best effort (not every OS allows it).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func (s *Source) readCache() (*config.Config, error) {
	data, err := os.ReadFile(s.o.CachePath)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.o.CachePath, err)
	}
	return cfg, nil
}
