package tlsconf

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
)

// Good files load, and the peer configurations complete a mutual handshake with each
// other; a certificate-less client is refused by PeerServer but served by HTTPServer.
func TestLoadAndHandshake(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	f := ca.WriteFiles(t, t.TempDir(), ca.Leaf(t, "n1"))
	set, err := Load(config.TLSFiles(f))
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(set.PeerServer(), set.PeerClient()); err != nil {
		t.Fatalf("mutual: %v", err)
	}
	if err := handshake(set.HTTPServer(), set.HTTPClient()); err != nil {
		t.Fatalf("http: %v", err)
	}
	if err := handshake(set.PeerServer(), set.HTTPClient()); err == nil {
		t.Fatal("peer server accepted a client without a certificate")
	}
	var off *Set
	if s, err := Load(config.TLSFiles{}); s != nil || err != nil || off.PeerServer() != nil || off.HTTPClient() != nil {
		t.Fatalf("TLS off: %v %v", s, err)
	}
}

// handshake runs a TLS handshake between the two configurations over loopback TCP, and
// one byte of data (with TLS 1.3 the client is done before the server has checked its
// certificate).
func handshake(srv, cli *tls.Config) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer b.Close()
	a, err := ln.Accept()
	if err != nil {
		return err
	}
	defer a.Close()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	cli = cli.Clone()
	cli.ServerName = "localhost"
	errc := make(chan error, 1)
	go func() {
		s := tls.Server(a, srv)
		_, err := s.Read(make([]byte, 1)) // runs the handshake
		a.Close()
		errc <- err
	}()
	c := tls.Client(b, cli)
	err = c.Handshake()
	if err == nil {
		_, err = c.Write([]byte("x"))
	}
	b.Close()
	if serr := <-errc; err == nil {
		err = serr
	}
	return err
}

// Every bad file is an error naming its key.
func TestLoadErrors(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	dir := t.TempDir()
	good := ca.WriteFiles(t, dir, ca.Leaf(t, "n1"))
	foreign := other.WriteFiles(t, t.TempDir(), other.Leaf(t, "x"))
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	junk := write("junk.pem", "not pem\n")
	with := func(mod func(*tlstest.Files)) config.TLSFiles {
		f := good
		mod(&f)
		return config.TLSFiles(f)
	}
	for _, tc := range []struct {
		name  string
		files config.TLSFiles
		want  []string
	}{
		{"missing cert", with(func(f *tlstest.Files) { f.Cert = filepath.Join(dir, "none.pem") }), []string{"tls_cert_file", "none.pem", "no such file"}},
		{"unreadable cert", with(func(f *tlstest.Files) { f.Cert = dir }), []string{"tls_cert_file", "is a directory"}},
		{"cert not PEM", with(func(f *tlstest.Files) { f.Cert = junk }), []string{"tls_cert_file", "junk.pem", "no PEM certificate"}},
		{"missing key", with(func(f *tlstest.Files) { f.Key = filepath.Join(dir, "none.key") }), []string{"tls_key_file", "none.key"}},
		{"key not PEM", with(func(f *tlstest.Files) { f.Key = junk }), []string{"tls_key_file", "junk.pem"}},
		{"key of another certificate", with(func(f *tlstest.Files) { f.Key = foreign.Key }), []string{"tls_key_file", "does not match"}},
		{"missing CA", with(func(f *tlstest.Files) { f.CA = filepath.Join(dir, "none-ca.pem") }), []string{"tls_ca_file", "none-ca.pem"}},
		{"CA not PEM", with(func(f *tlstest.Files) { f.CA = junk }), []string{"tls_ca_file", "no PEM certificate"}},
		{"cert of another CA", with(func(f *tlstest.Files) { f.Cert, f.Key = foreign.Cert, foreign.Key }), []string{"tls_cert_file", "tls_ca_file", "unknown authority"}},
	} {
		_, err := Load(tc.files)
		if err == nil {
			t.Errorf("%s: loaded", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to mention %q", tc.name, err, w)
			}
		}
	}
}
