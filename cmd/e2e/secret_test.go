package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/server/config"
)

// secretNode is a standalone node whose configuration sets cluster_secret_file to a
// relative path ("secret", next to the configuration file).
type secretNode struct {
	cfgPath, secretPath, httpBase, peerAddr string
	secret                                  []byte
}

func newSecretNode(t *testing.T, mode os.FileMode) secretNode {
	t.Helper()
	dir := t.TempDir()
	cfgPath, base := standaloneConfig(t, dir)
	appendFile(t, cfgPath, "cluster_secret_file: secret\n")
	sn := secretNode{cfgPath: cfgPath, secretPath: filepath.Join(dir, "secret"), httpBase: base,
		secret: []byte(strings.Repeat("5e", 32))}
	if err := os.WriteFile(sn.secretPath, append(sn.secret, '\n'), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sn.secretPath, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := cfg.FindNode("n1")
	sn.peerAddr = n.PeerAddr()
	return sn
}

// peerSet writes key=val over the peer protocol with the given secrets (none: a
// non-member's client).
func peerSet(t *testing.T, addr string, key, val string, secrets ...[]byte) error {
	t.Helper()
	c := eventloop.NewClient(eventloop.ClientConfig{Addr: addr, Conns: 1, Secrets: secrets})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Set(ctx, []byte(key), time.Now().UnixMicro(), 0, []byte(val))
	return err
}

// TestClusterSecret: with cluster_secret_file, a peer client without the secret (or with
// another one) stores nothing, a member and a proxy with the secret do, and the refusals
// are logged; without the key, the node warns that the peer protocol is unauthenticated.
func TestClusterSecret(t *testing.T) {
	sn := newSecretNode(t, 0o600)
	node := start(t, "tako-node", "-id", "n1", "-cfg", sn.cfgPath, "-v", t.TempDir())
	waitHTTP(t, sn.httpBase+"/health", node)

	if err := peerSet(t, sn.peerAddr, "outsider", "x"); err == nil {
		t.Fatal("a client without the secret wrote over the peer protocol")
	}
	if err := peerSet(t, sn.peerAddr, "outsider", "x", []byte(strings.Repeat("0f", 32))); err == nil {
		t.Fatal("a client with another secret wrote over the peer protocol")
	}
	if code, body, err := get(sn.httpBase + "/values/outsider"); err != nil || code != 404 {
		t.Fatalf("non-members' key: %d %q %v, want 404", code, body, err)
	}
	if err := peerSet(t, sn.peerAddr, "member", "v", sn.secret); err != nil {
		t.Fatalf("member: %v", err)
	}
	if code, body, err := get(sn.httpBase + "/values/member"); err != nil || code != 200 || string(body) != "v" {
		t.Fatalf("member's key: %d %q %v, want 200 v", code, body, err)
	}

	// A proxy proves the same secret to reach the node.
	port := freePorts(t, 1)[0]
	proxy := start(t, "tako-proxy", "-host", "127.0.0.1", "-p", strconv.Itoa(port), "-cfg", sn.cfgPath, "-v", t.TempDir())
	pbase := "http://127.0.0.1:" + strconv.Itoa(port)
	waitHTTP(t, pbase+"/health", proxy)
	if code, err := post(context.Background(), pbase+"/values/via-proxy", []byte("p")); err != nil || code != 200 {
		t.Fatalf("write through the proxy: %d %v", code, err)
	}
	if code, body, err := get(sn.httpBase + "/values/via-proxy"); err != nil || code != 200 || string(body) != "p" {
		t.Fatalf("proxy's key on the node: %d %q %v", code, body, err)
	}
	for _, p := range []*proc{node, proxy} {
		if bytes.Contains(p.logs.Bytes(), []byte("peer protocol unauthenticated")) {
			t.Errorf("warned of an unauthenticated peer protocol although the secret is set:\n%s", p.logs)
		}
	}
	if out := node.logs.String(); !strings.Contains(out, "cluster secret not proven") || !strings.Contains(out, "remote=127.0.0.1:") {
		t.Errorf("the node did not log the refused connections with their address:\n%s", out)
	}

	dir := t.TempDir()
	cfg, base := standaloneConfig(t, dir)
	open := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", dir+"/var")
	waitHTTP(t, base+"/health", open)
	if !bytes.Contains(open.logs.Bytes(), []byte("peer protocol unauthenticated: set cluster_secret_file")) {
		t.Errorf("no warning without cluster_secret_file:\n%s", open.logs)
	}
}

// TestClusterSecretFileRefused: a secret file others may read stops a node and a proxy at
// start with exit code 1 and a line naming the file.
func TestClusterSecretFileRefused(t *testing.T) {
	sn := newSecretNode(t, 0o644)
	f := func(name string, args ...string) {
		t.Helper()
		p := start(t, name, args...)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not exit", name)
		}
		out := p.logs.String()
		if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(out, sn.secretPath) || !strings.Contains(out, "mode 0644") {
			t.Errorf("%s: exit %d, output %q; want 1 and a line naming %s and its mode", name, code, out, sn.secretPath)
		}
	}
	f("tako-node", "-id", "n1", "-cfg", sn.cfgPath, "-v", t.TempDir())
	f("tako-proxy", "-host", "127.0.0.1", "-p", strconv.Itoa(freePorts(t, 1)[0]), "-cfg", sn.cfgPath, "-v", t.TempDir())
}
