package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/tlsconf"
)

// testTLSFiles writes a test CA and a certificate it signed, and loads them.
func testTLSFiles(t *testing.T) (tlstest.Files, *tlsconf.Set) {
	t.Helper()
	ca := tlstest.NewCA(t, "ca")
	f := ca.WriteFiles(t, t.TempDir(), ca.Leaf(t, "n1"))
	set, err := tlsconf.Load(config.TLSFiles(f))
	if err != nil {
		t.Fatal(err)
	}
	return f, set
}

// TestHTTPTargetTLS: the HTTP target reaches an HTTPS server with -tls-ca; without it the
// server's certificate is not trusted.
func TestHTTPTargetTLS(t *testing.T) {
	f, set := testTLSFiles(t)
	s := &memStore{m: map[string][]byte{}}
	addr := serveHTTPTLS(t, s.handle, set.HTTPServer())
	ep := Endpoint{Name: "https", Proto: ProtoHTTP, Addr: addr, TLSCAFile: f.CA}
	res, err := Run(context.Background(), shortConfig("a"), ep)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.ErrorCount != 0 {
		t.Fatalf("http run over TLS: %d ops, errors %s", res.Ops, res.ErrorSummary())
	}
	ep.TLSCAFile = ""
	tg, err := NewTarget(ep, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Set([]byte("k"), []byte("v")); err == nil {
		t.Fatal("a plaintext target wrote to an HTTPS server")
	}
}

// TestPeerTargetTLS: the peer target reaches a TLS peer port with -tls-ca, -tls-cert and
// -tls-key, and is refused a clear error without a client certificate.
func TestPeerTargetTLS(t *testing.T) {
	f, set := testTLSFiles(t)
	srv := eventloop.NewServer(eventloop.ServerConfig{Addr: "127.0.0.1:0", Handler: &memPeer{vals: map[string][]byte{}}, TLS: set.PeerServer()})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	ep := Endpoint{Name: "peer", Proto: ProtoPeer, Addr: srv.Addr().String(), TLSCAFile: f.CA, TLSCertFile: f.Cert, TLSKeyFile: f.Key}
	res, err := Run(context.Background(), shortConfig("a"), ep)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.ErrorCount != 0 {
		t.Fatalf("peer run over TLS: %d ops, errors %s", res.Ops, res.ErrorSummary())
	}
	ep.TLSCertFile, ep.TLSKeyFile = "", ""
	if _, err := NewTarget(ep, time.Second); err == nil || !strings.Contains(err.Error(), "-tls-cert") {
		t.Fatalf("peer target over TLS without a certificate: %v", err)
	}
}
