package httpproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/tako-kv/tako/eventloop"
	"github.com/valyala/fasthttp"
)

// Access is what a bearer token allows.
type Access uint8

const (
	// ReadOnly allows GET and HEAD.
	ReadOnly Access = 1
	// ReadWrite allows every method.
	ReadWrite Access = 2
)

func (a Access) String() string {
	if a == ReadWrite {
		return "read-write"
	}
	return "read-only"
}

// Token lengths accepted in a tokens file.
const (
	MinTokenLen = 16
	MaxTokenLen = 256

	maxTokensFile = 1 << 20
)

// ErrTokensFile is wrapped by the errors of ParseTokens, ReadTokensFile and
// ReadClientToken for a file that is not a usable tokens file.
var ErrTokensFile = errors.New("httpproxy: unusable tokens file")

// Tokens is a parsed tokens file (http_tokens_file): immutable, safe for
// concurrent use. It keeps only each token's SHA-256, so a request's token
// is compared in constant time whatever its length.
type Tokens struct {
	sums   [][sha256.Size]byte
	access []Access
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.sums) }

// ParseTokens reads a tokens file: one token and its access per line,
// separated by white space — `TOKEN read-only` or `TOKEN read-write`; blank
// lines and comments (from a `#` at the start of a line or after white
// space) are ignored. A token is MinTokenLen to MaxTokenLen characters of
// RFC 6750's token68 (letters, digits, -._~+/, then = padding), each token
// listed once. A file without tokens is refused: it would lock every client
// out. Errors name the line.
func ParseTokens(data []byte) (*Tokens, error) {
	t := &Tokens{}
	seen := make(map[[sha256.Size]byte]int)
	for i, line := range bytes.Split(data, []byte("\n")) {
		fields := tokenFields(line)
		if len(fields) == 0 {
			continue
		}
		n := i + 1
		if len(fields) != 2 {
			return nil, fmt.Errorf("%w: line %d: want `TOKEN read-only` or `TOKEN read-write`, got %d fields", ErrTokensFile, n, len(fields))
		}
		if err := checkToken(fields[0]); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrTokensFile, n, err)
		}
		var a Access
		switch string(fields[1]) {
		case "read-only":
			a = ReadOnly
		case "read-write":
			a = ReadWrite
		default:
			return nil, fmt.Errorf("%w: line %d: access %q: want read-only or read-write", ErrTokensFile, n, fields[1])
		}
		sum := sha256.Sum256(fields[0])
		if first, dup := seen[sum]; dup {
			return nil, fmt.Errorf("%w: line %d: the token of line %d again", ErrTokensFile, n, first)
		}
		seen[sum] = n
		t.sums, t.access = append(t.sums, sum), append(t.access, a)
	}
	if len(t.sums) == 0 {
		return nil, fmt.Errorf("%w: no tokens (each line: TOKEN read-only|read-write)", ErrTokensFile)
	}
	return t, nil
}

// tokenFields splits a line into its fields, without its comment.
func tokenFields(line []byte) [][]byte {
	fields := bytes.Fields(line)
	for i, f := range fields {
		if f[0] == '#' {
			return fields[:i]
		}
	}
	return fields
}

// checkToken checks a token's length and alphabet (RFC 6750 token68).
func checkToken(tok []byte) error {
	if len(tok) < MinTokenLen || len(tok) > MaxTokenLen {
		return fmt.Errorf("token of %d characters: want %d to %d (for example: openssl rand -hex 32)", len(tok), MinTokenLen, MaxTokenLen)
	}
	body := bytes.TrimRight(tok, "=")
	for _, c := range body {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return fmt.Errorf("token has the character %q: use letters, digits and -._~+/ (then = padding)", c)
		}
	}
	if len(body) == 0 {
		return errors.New("token is only = padding")
	}
	return nil
}

// ReadTokensFile reads and parses a tokens file, which must be private like
// the cluster secret (eventloop.ReadPrivateFile). Errors name the file.
func ReadTokensFile(path string) (*Tokens, error) {
	data, err := eventloop.ReadPrivateFile(path, maxTokensFile)
	if err != nil {
		return nil, fmt.Errorf("http tokens: %w", err)
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ReadClientToken returns the token a client sends: the first token of a
// private file in the tokens file format (its access, if written, is not
// checked: the server decides), or of a file holding only the token. So a
// process may be given the servers' tokens file itself.
func ReadClientToken(path string) (string, error) {
	data, err := eventloop.ReadPrivateFile(path, maxTokensFile)
	if err != nil {
		return "", fmt.Errorf("http token: %w", err)
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if fields := tokenFields(line); len(fields) > 0 {
			if err := checkToken(fields[0]); err != nil {
				return "", fmt.Errorf("%w %s: %w", ErrTokensFile, path, err)
			}
			return string(fields[0]), nil
		}
	}
	return "", fmt.Errorf("%w %s: holds no token", ErrTokensFile, path)
}

// BearerHeader is the Authorization header value that sends token.
func BearerHeader(token string) string { return "Bearer " + token }

// Reasons a request is refused, and their statuses.
const (
	reasonNoToken   = "authorization required: send Authorization: Bearer <token>"
	reasonNotBearer = "authorization required: the Authorization header is not a Bearer token"
	reasonUnknown   = "unknown token"
	reasonReadOnly  = "read-only token: this request needs a read-write token"
)

var bearerScheme = []byte("bearer ")

// check decides a request: status 0 admits it, else the status (401, 403)
// and a one-line reason. authz is the Authorization header's value; write
// says the request changes something. It does not allocate, and compares
// the token with every known one in constant time.
func (t *Tokens) check(authz []byte, write bool) (status int, reason string) {
	if len(authz) == 0 {
		return http.StatusUnauthorized, reasonNoToken
	}
	if len(authz) < len(bearerScheme) || !bytes.EqualFold(authz[:len(bearerScheme)], bearerScheme) {
		return http.StatusUnauthorized, reasonNotBearer
	}
	sum := sha256.Sum256(bytes.TrimSpace(authz[len(bearerScheme):]))
	access := 0
	for i := range t.sums {
		match := subtle.ConstantTimeCompare(sum[:], t.sums[i][:])
		access = subtle.ConstantTimeSelect(match, int(t.access[i]), access)
	}
	switch {
	case access == 0:
		return http.StatusUnauthorized, reasonUnknown
	case write && Access(access) != ReadWrite:
		return http.StatusForbidden, reasonReadOnly
	}
	return 0, ""
}

// wwwAuthenticate is the challenge sent with a refusal (RFC 6750).
func wwwAuthenticate(status int) string {
	if status == http.StatusForbidden {
		return `Bearer realm="tako", error="insufficient_scope"`
	}
	return `Bearer realm="tako"`
}

// TokenGuard holds the tokens a server checks, swapped whole when the file is
// read again (Set): requests in flight see the old set or the new one. The
// zero value, or a guard holding nil, lets every request through. Safe for
// concurrent use.
type TokenGuard struct {
	cur atomic.Pointer[Tokens]
}

// Set makes t the tokens checked; nil turns checking off.
func (g *TokenGuard) Set(t *Tokens) { g.cur.Store(t) }

// Load makes the tokens of the file at path those checked ("": none, HTTP is
// open) and logs what it did; why says what prompted it (start, SIGHUP, a
// configuration). On an error, which names the file, the tokens in use stay.
func (g *TokenGuard) Load(path, why string, log *slog.Logger) error {
	if path == "" {
		if g.Enabled() {
			log.Warn("http_tokens_file no longer set: HTTP requests need no token now", "why", why)
		}
		g.Set(nil)
		return nil
	}
	t, err := ReadTokensFile(path)
	if err != nil {
		return fmt.Errorf("http_tokens_file: %w", err)
	}
	g.Set(t)
	log.Info("HTTP requires bearer tokens", "http_tokens_file", path, "tokens", t.Len(), "why", why)
	return nil
}

// OnHangup calls fn on every SIGHUP until ctx ends: nodes, proxies and
// coordinators read their tokens file again then. (SIGHUP no longer stops
// the process.)
func OnHangup(ctx context.Context, fn func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				fn()
			}
		}
	}()
}

// Enabled reports whether requests need a token.
func (g *TokenGuard) Enabled() bool { return g != nil && g.cur.Load() != nil }

// check is Tokens.check with the current tokens; status 0 admits.
func (g *TokenGuard) check(authz []byte, write bool) (int, string) {
	if g == nil {
		return 0, ""
	}
	t := g.cur.Load()
	if t == nil {
		return 0, ""
	}
	return t.check(authz, write)
}

var hdrAuthorization = []byte("Authorization")

// authorize admits a fasthttp request or answers it 401/403 (with
// WWW-Authenticate) and reports false. GET and HEAD read; every other method
// writes.
func (g *TokenGuard) authorize(ctx *fasthttp.RequestCtx) bool {
	status, reason := g.check(ctx.Request.Header.PeekBytes(hdrAuthorization), !ctx.IsGet() && !ctx.IsHead())
	if status == 0 {
		return true
	}
	textError(ctx, status, reason)
	ctx.Response.Header.Set("WWW-Authenticate", wwwAuthenticate(status))
	return false
}

// RequireTokens wraps a net/http handler (the coordinator's) with the same
// check: every path but those listed as open needs a token, GET and HEAD a
// read-only one, other methods a read-write one.
func RequireTokens(g *TokenGuard, next http.Handler, open ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range open {
			if r.URL.Path == p {
				next.ServeHTTP(w, r)
				return
			}
		}
		write := r.Method != http.MethodGet && r.Method != http.MethodHead
		if status, reason := g.check([]byte(r.Header.Get("Authorization")), write); status != 0 {
			w.Header().Set("WWW-Authenticate", wwwAuthenticate(status))
			http.Error(w, reason, status)
			return
		}
		next.ServeHTTP(w, r)
	})
}
