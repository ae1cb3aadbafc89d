package chaos

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/tlsconf"
)

// security is what a Secure layout's cluster runs with — TLS on every HTTP and peer port
// (one certificate for every host the harness uses), a cluster secret, and a read-write
// bearer token every HTTP request of the harness carries — and the clients that use them.
// A nil *security is a plaintext cluster without secret or tokens.
type security struct {
	files      tlstest.Files
	secretFile string
	tokensFile string
	token      string
	tls        *tlsconf.Set
	secret     []byte
}

// newSecurity writes the TLS files, the secret and the tokens into dir; the certificate
// names every address in hosts.
func newSecurity(dir string, hosts []string) (*security, error) {
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		}
	}
	files, err := tlstest.Generate(dir, "tako-chaos", ips...)
	if err != nil {
		return nil, fmt.Errorf("chaos: certificates: %w", err)
	}
	set, err := tlsconf.Load(config.TLSFiles{Cert: files.Cert, Key: files.Key, CA: files.CA})
	if err != nil {
		return nil, fmt.Errorf("chaos: certificates: %w", err)
	}
	s := &security{files: files, tls: set,
		secretFile: filepath.Join(dir, "cluster.secret"), tokensFile: filepath.Join(dir, "tokens")}
	s.secret = []byte(randHex(64))
	s.token = randHex(64)
	for _, f := range []struct {
		path string
		body string
	}{{s.secretFile, string(s.secret) + "\n"}, {s.tokensFile, s.token + " read-write\n"}} {
		if err := os.WriteFile(f.path, []byte(f.body), 0o600); err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
	}
	return s, nil
}

// yaml is the configuration's top-level keys for s.
func (s *security) yaml() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("cluster_secret_file: %s\nhttp_tokens_file: %s\n", s.secretFile, s.tokensFile) + s.files.ConfigKeys()
}

// url is the harness's URL of path on addr.
func (s *security) url(addr, path string) string {
	if s == nil {
		return "http://" + addr + path
	}
	return "https://" + addr + path
}

// httpClient returns a client for the cluster's HTTP ports, trusting its CA and sending
// its token, on tr (nil: a fresh transport).
func (s *security) httpClient(tr *http.Transport, timeout time.Duration) *http.Client {
	if tr == nil {
		tr = &http.Transport{}
	}
	if s == nil {
		return &http.Client{Transport: tr, Timeout: timeout}
	}
	tr.TLSClientConfig = s.tls.HTTPClient()
	return &http.Client{Transport: bearer{s.token, tr}, Timeout: timeout}
}

// peer completes cfg for the cluster's peer ports.
func (s *security) peer(cfg eventloop.ClientConfig) eventloop.ClientConfig {
	if s != nil {
		cfg.TLS, cfg.Secrets = s.tls.PeerClient(), [][]byte{s.secret}
	}
	return cfg
}

// bearer sends a token with every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", httpproxy.BearerHeader(b.token))
	return b.next.RoundTrip(r)
}
