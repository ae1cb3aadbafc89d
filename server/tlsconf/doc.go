// Package tlsconf reads the TLS files a configuration names (tls_cert_file, tls_key_file,
// tls_ca_file; server/config.TLSFiles) and derives the tls.Configs every Tako process uses
// from them:
//   - HTTPServer: the HTTP API of nodes and proxies; clients are not asked for a
//     certificate (curl --cacert works; access control on HTTP is not TLS's job).
//   - PeerServer and PeerClient: the peer protocol, mutual TLS: each side presents its
//     certificate and verifies the other's against tls_ca_file only (never the system
//     roots), so only holders of a certificate that CA signed can speak it.
//   - HTTPClient: tools and processes that call the HTTP API of nodes and proxies
//     (tako-admin, the launcher's health checks, the coordinator's status polls).
//
// Load checks the files at start so that a mistake is a clear error naming the key, not
// failed handshakes later: a missing or unreadable file, a file without PEM data, a key
// that does not match the certificate, a certificate tls_ca_file did not sign or that
// cannot serve both as server and as client certificate (extended key usage). TLS 1.2 is
// the minimum version.
//
// A *Set is immutable after Load and safe for concurrent use; the tls.Configs it returns
// are fresh clones the caller may change.
package tlsconf
