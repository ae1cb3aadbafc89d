package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/tako-kv/tako/server/config"
)

// Set is a process's TLS material: its certificate and the CA its peers' certificates
// must chain to. A nil *Set means TLS is off: its methods return nil.
type Set struct {
	cert  tls.Certificate
	roots *x509.CertPool
}

// Load reads and checks f's files. The zero TLSFiles (TLS off) gives nil, nil. Errors
// name the configuration key and the file.
func Load(f config.TLSFiles) (*Set, error) {
	if f.Cert == "" {
		return nil, nil
	}
	roots, err := LoadCA("tls_ca_file", f.CA)
	if err != nil {
		return nil, err
	}
	certPEM, err := readFile("tls_cert_file", f.Cert)
	if err != nil {
		return nil, err
	}
	leaf, err := firstCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_cert_file %s: %w", f.Cert, err)
	}
	keyPEM, err := readFile("tls_key_file", f.Key)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_key_file %s (the key of tls_cert_file %s): %w", f.Key, f.Cert, err)
	}
	chain := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			chain.AddCert(c)
		}
	}
	for _, use := range []struct {
		usage x509.ExtKeyUsage
		as    string
	}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
		opts := x509.VerifyOptions{Roots: roots, Intermediates: chain, KeyUsages: []x509.ExtKeyUsage{use.usage}}
		if _, err := leaf.Verify(opts); err != nil {
			return nil, fmt.Errorf("tls_cert_file %s does not verify as a %s certificate against tls_ca_file %s (peers present it both as server and as client): %w",
				f.Cert, use.as, f.CA, err)
		}
	}
	return &Set{cert: cert, roots: roots}, nil
}

// LoadCA reads a PEM file of CA certificates; key names the setting in errors (a
// configuration key or a flag).
func LoadCA(key, path string) (*x509.CertPool, error) {
	b, err := readFile(key, path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", key, path)
	}
	return pool, nil
}

// readFile reads path, naming key in the error.
func readFile(key, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return b, nil
}

// firstCert parses the first certificate of a PEM file.
func firstCert(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("no PEM certificate in it")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

// HTTPServer is the configuration of the HTTP API's listener.
func (s *Set) HTTPServer() *tls.Config {
	if s == nil {
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}
}

// PeerServer is the configuration of the peer port: mutual TLS against the CA.
func (s *Set) PeerServer() *tls.Config {
	if s == nil {
		return nil
	}
	c := s.HTTPServer()
	c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, s.roots
	return c
}

// PeerClient is the configuration of the peer clients: the server verified against the
// CA, this process's certificate presented.
func (s *Set) PeerClient() *tls.Config {
	if s == nil {
		return nil
	}
	c := s.HTTPClient()
	c.Certificates = []tls.Certificate{s.cert}
	return c
}

// HTTPClient is the configuration of clients of the HTTP API: servers verified against
// the CA.
func (s *Set) HTTPClient() *tls.Config {
	if s == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12}
}
