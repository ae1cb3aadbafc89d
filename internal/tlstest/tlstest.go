// Package tlstest makes certificates for tests and benchmarks: a self-signed CA generated
// on the spot (crypto/x509, ECDSA P-256) and leaf certificates it signs, for 127.0.0.1, ::1
// and localhost, usable both as server and as client certificates (mutual TLS). Nothing
// here touches the network. Tests call the testing.TB forms (NewCA, Leaf, WriteFiles),
// which fail the test on error; the load harness (bench) calls Generate.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a throwaway certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte // the CA certificate, PEM-encoded
}

// Leaf is a certificate the CA signed for the loopback names, for server and client
// authentication, PEM-encoded with its key.
type Leaf struct {
	CertPEM, KeyPEM []byte
}

// Files are PEM files written by WriteFiles.
type Files struct{ Cert, Key, CA string }

// ConfigKeys is the configuration's tls_cert_file, tls_key_file and tls_ca_file naming f,
// as YAML lines.
func (f Files) ConfigKeys() string {
	return fmt.Sprintf("tls_cert_file: %s\ntls_key_file: %s\ntls_ca_file: %s\n", f.Cert, f.Key, f.CA)
}

// NewCA returns a fresh self-signed CA named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := newCA(name)
	check(t, err)
	return ca
}

// Leaf signs a new leaf certificate named name.
func (ca *CA) Leaf(t testing.TB, name string) Leaf {
	t.Helper()
	l, err := ca.sign(name)
	check(t, err)
	return l
}

// WriteFiles writes the leaf, its key and the CA certificate into dir (mode 0600).
func (ca *CA) WriteFiles(t testing.TB, dir string, l Leaf) Files {
	t.Helper()
	f, err := ca.write(dir, l)
	check(t, err)
	return f
}

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// TLS is the leaf as a tls.Certificate.
func (l Leaf) TLS(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	check(t, err)
	return c
}

// Generate writes a fresh CA and one leaf it signed, named name, into dir; the leaf is
// valid for the loopback names and for ips besides.
func Generate(dir, name string, ips ...net.IP) (Files, error) {
	ca, err := newCA(name + " CA")
	if err != nil {
		return Files{}, err
	}
	l, err := ca.sign(name, ips...)
	if err != nil {
		return Files{}, err
	}
	return ca.write(dir, l)
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlstest: key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := sign(tmpl, tmpl, key, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlstest: CA: %w", err)
	}
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func (ca *CA) sign(name string, ips ...net.IP) (Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Leaf{}, fmt.Errorf("tlstest: key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
	}
	der, err := sign(tmpl, ca.Cert, key, ca.key)
	if err != nil {
		return Leaf{}, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Leaf{}, fmt.Errorf("tlstest: leaf key: %w", err)
	}
	return Leaf{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

func (ca *CA) write(dir string, l Leaf) (Files, error) {
	f := Files{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}
	for _, w := range []struct {
		path string
		b    []byte
	}{{f.Cert, l.CertPEM}, {f.Key, l.KeyPEM}, {f.CA, ca.PEM}} {
		if err := os.WriteFile(w.path, w.b, 0o600); err != nil {
			return Files{}, fmt.Errorf("tlstest: %w", err)
		}
	}
	return f, nil
}

// sign makes the certificate tmpl, valid from an hour ago for a day, for key's public key,
// signed by parent's key.
func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("tlstest: serial: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("tlstest: certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	return der, nil
}
