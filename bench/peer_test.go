package bench

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/tlsconf"
)

// memPeer is a minimal peer-protocol server: an in-memory map behind a real
// eventloop.Server.
type memPeer struct {
	mu   sync.Mutex
	vals map[string][]byte
}

func (m *memPeer) Handle(req *codec.Request, rw *eventloop.ReplyWriter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch req.Op {
	case codec.OpSet:
		m.vals[string(req.Key)] = append([]byte(nil), req.Value...)
		rw.Set(codec.StatusApplied, req.TS)
	case codec.OpGet:
		v, ok := m.vals[string(req.Key)]
		if !ok {
			rw.Get(codec.StatusNotFound, 0, 0, nil)
			return
		}
		rw.Get(codec.StatusOK, 1, 0, v)
	default:
		rw.Error(codec.StatusUnsupported, "not here")
	}
}

func TestPeerTarget(t *testing.T) {
	srv := eventloop.NewServer(eventloop.ServerConfig{Addr: "127.0.0.1:0", Handler: &memPeer{vals: map[string][]byte{}}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	cfg := shortConfig("a")
	cfg.Conns = 4
	res, err := Run(context.Background(), cfg, Endpoint{Name: "peer", Proto: ProtoPeer, Addr: srv.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.ErrorCount != 0 || res.Reads == 0 || res.Writes == 0 {
		t.Fatalf("peer run: %d ops (%d reads, %d writes), errors %s", res.Ops, res.Reads, res.Writes, res.ErrorSummary())
	}
}

// TestPeerTargetTLS: the peer target reaches a TLS peer port with -tls-ca, -tls-cert and
// -tls-key, and is refused a clear error without a client certificate.
func TestPeerTargetTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	f := ca.WriteFiles(t, t.TempDir(), ca.Leaf(t, "n1"))
	set, err := tlsconf.Load(config.TLSFiles(f))
	if err != nil {
		t.Fatal(err)
	}
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
