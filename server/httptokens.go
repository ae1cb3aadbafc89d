package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
)

// httpTokens is the http_tokens_file a node or proxy checks its HTTP
// requests against. The file is read at start (an unusable one stops the
// process), then again on SIGHUP and whenever a configuration arrives, so a
// rotated file, or a configuration naming another one, takes effect without
// a restart; a file that has become unusable is logged and the tokens in use
// are kept.
type httpTokens struct {
	guard httpproxy.TokenGuard
	base  string // relative paths resolve against it (the -cfg file's directory)
	log   *slog.Logger
}

// loadHTTPTokens reads cfg's http_tokens_file; cfgPath as in loadPeerAuth.
func loadHTTPTokens(cfg *config.Config, cfgPath string, log *slog.Logger) (*httpTokens, error) {
	t := &httpTokens{log: log}
	if cfgPath != "" {
		t.base = filepath.Dir(cfgPath)
	}
	path := cfg.TokensFile(t.base)
	if err := t.guard.Load(path, "start", log); err != nil {
		if errors.Is(err, fs.ErrNotExist) && !filepath.IsAbs(path) && cfgPath == "" {
			err = fmt.Errorf("%w (from a coordinator, a relative path is relative to the working directory: use an absolute one)", err)
		}
		return nil, err
	}
	return t, nil
}

// reload reads the tokens file cfg names again.
func (t *httpTokens) reload(cfg *config.Config, why string) {
	if err := t.guard.Load(cfg.TokensFile(t.base), why, t.log); err != nil {
		t.log.Error("http tokens not reloaded; keeping those in use", "why", why, "err", err)
	}
}

// rereadClientToken reads -token-file again (SIGHUP) for the configuration
// source; an unusable file is logged and the token in use kept.
func (s *httpService) rereadClientToken() {
	if s.tokenFile == "" {
		return
	}
	tok, err := readClientToken(s.tokenFile)
	if err != nil {
		s.log.Error("token not reread; keeping the one in use", "err", err)
		return
	}
	s.src.SetToken(tok)
}

// readClientToken reads the token of -token-file ("" without one): what a
// process sends when it fetches the configuration from a coordinator.
func readClientToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	tok, err := httpproxy.ReadClientToken(path)
	if err != nil {
		return "", fmt.Errorf("-token-file: %w", err)
	}
	return tok, nil
}
