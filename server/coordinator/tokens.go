package coordinator

import (
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
)

// loadTokens makes the coordinator require the bearer tokens of cfg's
// http_tokens_file (relative to its file's directory) and picks the token it
// sends to nodes: Options.TokenFile's, else the first of that file. At start
// (why "start") an unusable file is an error; later the tokens in use stay
// and the error is logged.
func (c *Coordinator) loadTokens(cfg *config.Config, why string) error {
	path := cfg.TokensFile(filepath.Dir(c.file))
	err := c.tokens.Load(path, why, c.log)
	if err == nil {
		from := c.tokenFile
		if from == "" {
			from = path
		}
		tok := ""
		if from != "" {
			tok, err = httpproxy.ReadClientToken(from)
		}
		if err == nil {
			c.token.Store(&tok)
		}
	}
	if err != nil && why == "start" {
		return fmt.Errorf("%s: %w", c.file, err)
	}
	if err != nil {
		c.log.Error("http tokens not reloaded; keeping those in use", "why", why, "err", err)
	}
	return nil
}

// authorize adds the coordinator's bearer token to a request to a node.
func (c *Coordinator) authorize(req *http.Request) {
	if tok := c.token.Load(); tok != nil && *tok != "" {
		req.Header.Set("Authorization", httpproxy.BearerHeader(*tok))
	}
}
