package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/server/config"
)

// A configuration change used to close the clients of dropped peers at once,
// under requests that had loaded the previous topology: 503 "client closed"
// with every replica up. A retired client stays usable for retireDelay.
func TestRetainKeepsRetiredClientsOpen(t *testing.T) {
	both, err := config.Parse([]byte(`
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 1, 9], n2: [127.0.0.2, 1, 9]}
`))
	if err != nil {
		t.Fatal(err)
	}
	one, err := config.Parse([]byte(`
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 1, 9]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := newPeerPool("n1", 1<<20, slog.Default())
	defer p.close()
	n2, _ := both.FindNode("n2")
	r := p.replica(n2)
	p.retain(one)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Nothing listens on port 9: the call fails, but by dialling, not
	// because the pool closed the client under it.
	if _, err := r.Stat(ctx, []byte("k")); errors.Is(err, eventloop.ErrClosed) {
		t.Fatalf("request on a just-retired client: %v", err)
	}
	if len(p.retired) != 1 || len(p.clients) != 0 {
		t.Fatalf("%d retired, %d live", len(p.retired), len(p.clients))
	}
	p.close()
	if _, err := r.Stat(ctx, []byte("k")); !errors.Is(err, eventloop.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// A configuration naming other TLS files than those in use is logged: they are read at
// start only.
func TestTLSFilesChangeLogged(t *testing.T) {
	const doc = "active_deployment: a\ndeployments: {a: {buckets: {b1: {n1: [h, 1, 2]}}}}\n"
	parse := func(extra string) *config.Config {
		c, err := config.Parse([]byte(doc + extra))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a := peerAuth{tlsKeys: parse("tls_cert_file: c\ntls_key_file: k\ntls_ca_file: ca\n").TLSFiles("")}
	a.noteChange(parse("tls_cert_file: c\ntls_key_file: k\ntls_ca_file: ca\n"), log)
	if logs.Len() != 0 {
		t.Fatalf("unchanged files logged: %s", logs.String())
	}
	a.noteChange(parse("tls_cert_file: c2\ntls_key_file: k\ntls_ca_file: ca\n"), log)
	if !strings.Contains(logs.String(), "the TLS files changed") || !strings.Contains(logs.String(), "tls_cert_file=c2") {
		t.Fatalf("changed files not logged: %s", logs.String())
	}
}
