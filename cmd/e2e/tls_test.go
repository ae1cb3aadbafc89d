package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
)

// tlsKeys returns the configuration lines of files f.
// httpsClient trusts only ca.
func httpsClient(ca *tlstest.CA) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}}
}

// curl runs curl with args and returns its exit code and output.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestTLSNodeAndProxy: a node and a proxy with tls_cert_file serve HTTPS (curl --cacert
// round trips through both); a plaintext request to the TLS port is not served and
// stores nothing; on the peer port a plaintext client, a TLS client without a
// certificate and one with a certificate of another CA store nothing, while the proxy
// (mutual TLS) and a member's client do.
func TestTLSNodeAndProxy(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "tako e2e CA")
	files := ca.WriteFiles(t, dir, ca.Leaf(t, "n1"))
	cfgPath, base := standaloneConfig(t, dir)
	appendFile(t, cfgPath, files.ConfigKeys())
	base = strings.Replace(base, "http://", "https://", 1)
	hc := httpsClient(ca)
	node := start(t, "tako-node", "-id", "n1", "-cfg", cfgPath, "-v", dir+"/var")
	waitHTTPWith(t, hc, base+"/health", node)

	value := filepath.Join(dir, "value")
	if err := os.WriteFile(value, bytes.Repeat([]byte("tls "), 50000), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := curl(t, "--cacert", files.CA, "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@"+value, base+"/values/k"); code != 0 || out != "200" {
		t.Fatalf("curl --cacert POST: exit %d, %q", code, out)
	}
	got := filepath.Join(dir, "got")
	if code, out := curl(t, "--cacert", files.CA, "-o", got, "-w", "%{http_code}", base+"/values/k"); code != 0 || out != "200" {
		t.Fatalf("curl --cacert GET: exit %d, %q", code, out)
	}
	if a, b := mustRead(t, value), mustRead(t, got); !bytes.Equal(a, b) {
		t.Fatalf("read back %d bytes, wrote %d", len(b), len(a))
	}
	// Without the CA, curl refuses the server; in plaintext, the server serves nothing.
	if code, out := curl(t, base+"/health"); code == 0 {
		t.Fatalf("curl without --cacert trusted the test CA: %q", out)
	}
	plain := strings.Replace(base, "https://", "http://", 1)
	if code, out := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "x", plain+"/values/plain"); code == 0 && out != "000" {
		t.Fatalf("plaintext POST to the TLS port answered %q", out)
	}
	if code, _, err := getWith(hc, base+"/values/plain"); err != nil || code != 404 {
		t.Fatalf("after the plaintext POST: %d %v, want 404", code, err)
	}

	// The peer port: strangers are refused at the TLS handshake.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := cfg.FindNode("n1")
	other := tlstest.NewCA(t, "other CA")
	member := ca.Leaf(t, "member").TLS(t)
	for _, c := range []struct {
		name string
		tls  *tls.Config
		ok   bool
	}{
		{"plaintext", nil, false},
		{"no client certificate", &tls.Config{RootCAs: ca.Pool()}, false},
		{"certificate of another CA", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{other.Leaf(t, "x").TLS(t)}}, false},
		{"member", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{member}}, true},
	} {
		key := "peer-" + strings.ReplaceAll(c.name, " ", "-")
		if err := peerSetTLS(n1.PeerAddr(), key, c.tls); (err == nil) != c.ok {
			t.Fatalf("%s: peer set: %v", c.name, err)
		}
		want := map[bool]int{true: 200, false: 404}[c.ok]
		if code, _, err := getWith(hc, base+"/values/"+key); err != nil || code != want {
			t.Fatalf("%s: key stored? %d %v, want %d", c.name, code, err, want)
		}
	}
	if out := node.logs.String(); !strings.Contains(out, "TLS handshake failed") || !strings.Contains(out, "remote=127.0.0.1:") {
		t.Errorf("the node did not log the refused handshakes with their address:\n%s", out)
	}

	// A proxy reaches the node over mutual TLS and serves HTTPS itself.
	port := strconv.Itoa(freePorts(t, 1)[0])
	proxy := start(t, "tako-proxy", "-host", "127.0.0.1", "-p", port, "-cfg", cfgPath, "-v", dir+"/pvar")
	pbase := "https://127.0.0.1:" + port
	waitHTTPWith(t, hc, pbase+"/health", proxy)
	if code, out := curl(t, "--cacert", files.CA, "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "via proxy", pbase+"/values/p"); code != 0 || out != "200" {
		t.Fatalf("curl --cacert POST via the proxy: exit %d, %q", code, out)
	}
	if code, body, err := getWith(hc, base+"/replica/p"); err != nil || code != 200 || string(body) != "via proxy" {
		t.Fatalf("the proxy's write on the node: %d %q %v", code, body, err)
	}
	if code, out := curl(t, "--cacert", files.CA, pbase+"/values/k"); code != 0 || out != string(mustRead(t, value)) {
		t.Fatalf("curl --cacert GET via the proxy: exit %d, %d bytes", code, len(out))
	}
}

// TestTLSCluster: four nodes in two mirrored buckets and a proxy, TLS on for HTTP and the
// peer protocol (with the cluster secret on top), run by tako-cluster (which health-checks
// them over HTTPS): writes through the proxy replicate to every replica and read back,
// through the proxy and from each replica.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "tako e2e CA")
	files := ca.WriteFiles(t, dir, ca.Leaf(t, "member"))
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 9)
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`
coordinators:
    c1: [127.0.0.1, %d]
active_deployment: d
cluster_secret_file: %s
%s
deployments:
    d:
        read_repair: yes
        background_healing: no
        write_acks: all
        hash:
            buckets_per_key: 2
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
                n2: [127.0.0.1, %d, %d]
            b2:
                n3: [127.0.0.1, %d, %d]
                n4: [127.0.0.1, %d, %d]
`, p[8], secret, files.ConfigKeys(), p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	hc := httpsClient(ca)
	nodes := cfg.Nodes()
	// tako-cluster starts them and waits until each answers its HTTPS health check;
	// the nodes and the proxy fetch the configuration from the coordinator over HTTPS
	// (-cacert).
	port := strconv.Itoa(freePorts(t, 1)[0])
	l := startLauncher(t, cfgPath, "-p", port, "-v", filepath.Join(dir, "var"))
	if pids := l.waitRunning(60 * time.Second); len(pids) != len(nodes)+2 {
		t.Fatalf("process table %v, want a coordinator, %d nodes and a proxy", pids, len(nodes))
	}
	coord := fmt.Sprintf("127.0.0.1:%d", p[8])
	if code, _, err := getWith(hc, "https://"+coord+"/configuration"); err != nil || code != 200 {
		t.Fatalf("GET /configuration over HTTPS: %d %v", code, err)
	}
	if code, _, err := getWith(http.DefaultClient, "http://"+coord+"/configuration"); err == nil && code == 200 {
		t.Fatal("the coordinator of a TLS cluster serves its configuration over plain HTTP")
	}
	pbase := "https://127.0.0.1:" + port
	const keys = 20
	for i := range keys {
		k := fmt.Sprintf("key-%d", i)
		body := bytes.Repeat([]byte(k), 1+i*997) // up to ~150 KiB: many TLS records
		code, err := postWith(context.Background(), hc, pbase+"/values/"+k, body)
		if err != nil || code != 200 {
			t.Fatalf("POST %s via the proxy: %d %v", k, code, err)
		}
		if code, got, err := getWith(hc, pbase+"/values/"+k); err != nil || code != 200 || !bytes.Equal(got, body) {
			t.Fatalf("GET %s via the proxy: %d %v (%d bytes of %d)", k, code, err, len(got), len(body))
		}
		// write_acks: all with every bucket holding every key: each node has it.
		for _, n := range nodes {
			if code, got, err := getWith(hc, "https://"+n.HTTPAddr()+"/replica/"+k); err != nil || code != 200 || !bytes.Equal(got, body) {
				t.Fatalf("%s on replica %s: %d %v (%d bytes of %d)", k, n.ID, code, err, len(got), len(body))
			}
		}
	}
}

// TestTLSBadFiles: unusable TLS files stop a node and a proxy at start with exit code 1
// and a line naming the key.
func TestTLSBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	good := ca.WriteFiles(t, dir, ca.Leaf(t, "n1"))
	strangerDir := t.TempDir()
	stranger := tlstest.NewCA(t, "other").WriteFiles(t, strangerDir, ca.Leaf(t, "x"))
	for _, c := range []struct {
		name  string
		files tlstest.Files
		want  string
	}{
		{"missing cert", tlstest.Files{Cert: dir + "/none.pem", Key: good.Key, CA: good.CA}, "tls_cert_file: open " + dir + "/none.pem"},
		{"key of another certificate", tlstest.Files{Cert: good.Cert, Key: stranger.Key, CA: good.CA}, "tls_key_file " + stranger.Key},
		{"cert of another CA", tlstest.Files{Cert: good.Cert, Key: good.Key, CA: stranger.CA}, "tls_cert_file " + good.Cert + " does not verify"},
	} {
		cfgPath, _ := standaloneConfig(t, t.TempDir())
		appendFile(t, cfgPath, c.files.ConfigKeys())
		for _, args := range [][]string{
			{"tako-node", "-id", "n1", "-cfg", cfgPath, "-v", t.TempDir()},
			{"tako-proxy", "-host", "127.0.0.1", "-p", strconv.Itoa(freePorts(t, 1)[0]), "-cfg", cfgPath, "-v", t.TempDir()},
		} {
			p := start(t, args[0], args[1:]...)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s: %s did not exit", c.name, args[0])
			}
			if code, out := p.cmd.ProcessState.ExitCode(), p.logs.String(); code != 1 || !strings.Contains(out, c.want) {
				t.Errorf("%s: %s exit %d, output %q; want 1 and %q", c.name, args[0], code, out, c.want)
			}
		}
	}
	// An incomplete set is a configuration error naming the key.
	cfgPath, _ := standaloneConfig(t, t.TempDir())
	appendFile(t, cfgPath, "tls_cert_file: "+good.Cert+"\ntls_key_file: "+good.Key+"\n")
	p := start(t, "tako-node", "-id", "n1", "-cfg", cfgPath, "-v", t.TempDir())
	<-p.done
	if out := p.logs.String(); p.cmd.ProcessState.ExitCode() != 1 || !strings.Contains(out, "tls_cert_file is set without tls_ca_file") {
		t.Errorf("cert without CA: exit %d, output %q", p.cmd.ProcessState.ExitCode(), out)
	}
}

// peerSetTLS writes key over the peer protocol with TLS configuration c (nil: plaintext).
func peerSetTLS(addr, key string, c *tls.Config) error {
	cl := eventloop.NewClient(eventloop.ClientConfig{Addr: addr, Conns: 1, TLS: c})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := cl.Set(ctx, []byte(key), time.Now().UnixMicro(), 0, []byte("v"))
	return err
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}
