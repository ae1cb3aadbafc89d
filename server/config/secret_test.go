package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// cluster_secret_file and cluster_secret_previous_file parse, survive the canonical JSON
// form and count in the version; absent, they leave an older configuration's version as
// it was.
func TestClusterSecretFile(t *testing.T) {
	const doc = "active_deployment: a\ndeployments: {a: {buckets: {b1: {n1: [h, 1, 2]}}}}\n"
	parse := func(extra string) (*Config, error) { return Parse([]byte(doc + extra)) }
	must := func(extra string) *Config {
		t.Helper()
		c, err := parse(extra)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	plain := must("")
	if js, _ := plain.JSON(); strings.Contains(string(js), "secret") {
		t.Fatalf("canonical form of a configuration without a secret mentions it: %s", js)
	}
	if plain.SecretFiles("/etc/tako") != nil {
		t.Fatalf("secret files without the key: %q", plain.SecretFiles("/etc/tako"))
	}
	if v := must("cluster_secret_file: ~\n").Version; v != plain.Version {
		t.Fatalf("a null key changed the version: %s vs %s", v, plain.Version)
	}

	c := must("cluster_secret_file: secret\ncluster_secret_previous_file: /abs/old\n")
	if c.Version == plain.Version {
		t.Fatal("the secret keys do not count in the version")
	}
	if got, want := c.SecretFiles("/etc/tako"), []string{"/etc/tako/secret", "/abs/old"}; !slices.Equal(got, want) {
		t.Fatalf("SecretFiles = %q, want %q", got, want)
	}
	if got, want := c.SecretFiles(""), []string{"secret", "/abs/old"}; !slices.Equal(got, want) {
		t.Fatalf("SecretFiles without base = %q, want %q", got, want)
	}
	back := reparse(t, c)
	if back.ClusterSecretFile != "secret" || back.ClusterSecretPreviousFile != "/abs/old" || back.Version != c.Version {
		t.Fatalf("after JSON: %q %q version %s want %s", back.ClusterSecretFile, back.ClusterSecretPreviousFile, back.Version, c.Version)
	}

	refused := func(extra, want string) {
		t.Helper()
		_, err := parse(extra)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", extra, err, want)
		}
	}
	refused("cluster_secret_previous_file: old\n", "without cluster_secret_file")
	refused("cluster_secret_file: s\ncluster_secret_previous_file: s\n", "cluster_secret_previous_file is cluster_secret_file")
	refused("cluster_secret_file: [a, b]\n", "must be a single value")
	refused("cluster_secret_file: \" s\"\n", "not a usable path")
	refused("cluster_secret: s\n", "cluster_secret")
}

// http_tokens_file parses, survives the canonical form, counts in the version (absent,
// it leaves the version as it was) and resolves like the secret files.
func TestHTTPTokensFile(t *testing.T) {
	const doc = "active_deployment: a\ndeployments: {a: {buckets: {b1: {n1: [h, 1, 2]}}}}\n"
	plain, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if js, _ := plain.JSON(); strings.Contains(string(js), "tokens") || plain.TokensFile("/etc") != "" {
		t.Fatalf("a configuration without tokens mentions them: %s", js)
	}
	c, err := Parse([]byte(doc + "http_tokens_file: tokens\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version == plain.Version || c.TokensFile("/etc/tako") != "/etc/tako/tokens" || c.TokensFile("") != "tokens" {
		t.Fatalf("version %s (plain %s), TokensFile %q", c.Version, plain.Version, c.TokensFile("/etc/tako"))
	}
	if back := reparse(t, c); back.HTTPTokensFile != "tokens" || back.Version != c.Version {
		t.Fatalf("after JSON: %+v", back)
	}
	for extra, want := range map[string]string{
		"http_tokens_file: [a]\n":    "must be a single value",
		"http_tokens_file: \"a \"\n": "http_tokens_file \"a \": not a usable path",
		"http_token_file: a\n":       "http_token_file",
	} {
		if _, err := Parse([]byte(doc + extra)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", extra, err, want)
		}
	}
}

// tls_cert_file, tls_key_file and tls_ca_file parse, survive the canonical JSON form and
// count in the version; TLSFiles resolves them; incomplete sets are refused naming the
// key.
func TestTLSFiles(t *testing.T) {
	const doc = "active_deployment: a\ndeployments: {a: {buckets: {b1: {n1: [h, 1, 2]}}}}\n"
	parse := func(extra string) (*Config, error) { return Parse([]byte(doc + extra)) }
	plain, err := parse("")
	if err != nil {
		t.Fatal(err)
	}
	if js, _ := plain.JSON(); strings.Contains(string(js), "tls") {
		t.Fatalf("canonical form of a configuration without TLS mentions it: %s", js)
	}
	if f := plain.TLSFiles("/etc/tako"); f != (TLSFiles{}) {
		t.Fatalf("TLS files without the keys: %+v", f)
	}
	c, err := parse("tls_cert_file: node.pem\ntls_key_file: /keys/node.key\ntls_ca_file: ca.pem\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Version == plain.Version {
		t.Fatal("the TLS keys do not count in the version")
	}
	if got, want := c.TLSFiles("/etc/tako"), (TLSFiles{"/etc/tako/node.pem", "/keys/node.key", "/etc/tako/ca.pem"}); got != want {
		t.Fatalf("TLSFiles = %+v, want %+v", got, want)
	}
	back := reparse(t, c)
	if back.TLSFiles("") != c.TLSFiles("") || back.Version != c.Version {
		t.Fatalf("after JSON: %+v version %s, want %+v %s", back.TLSFiles(""), back.Version, c.TLSFiles(""), c.Version)
	}
	for _, tc := range []struct{ extra, want string }{
		{"tls_key_file: k\n", "tls_key_file is set without tls_cert_file"},
		{"tls_cert_file: c\ntls_ca_file: ca\n", "tls_cert_file is set without tls_key_file"},
		{"tls_cert_file: c\ntls_key_file: k\n", "tls_cert_file is set without tls_ca_file"},
		{"tls_ca_file: ca\n", "tls_ca_file is set without tls_cert_file"},
		{"tls_cert_file: c\ntls_key_file: \"k \"\ntls_ca_file: ca\n", `tls_key_file "k ": not a usable path`},
		{"tls_cert_file: [c]\n", "must be a single value"},
		{"tls_cert: c\n", "tls_cert"},
	} {
		if _, err := parse(tc.extra); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.extra, err, tc.want)
		}
	}
}

// reparse parses c's canonical JSON form back.
func reparse(t *testing.T, c *Config) *Config {
	t.Helper()
	js, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	return back
}
