package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/config"
)

func standaloneConfig(t *testing.T, dir string) (cfg string, httpBase string) {
	p := freePorts(t, 2)
	cfg = writeConfig(t, dir, fmt.Sprintf(`
active_deployment: standalone
deployments:
    standalone:
        read_repair: no
        background_healing: no
        hash:
            buckets_per_key: 1
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
`, p[0], p[1]))
	return cfg, fmt.Sprintf("http://127.0.0.1:%d", p[0])
}

func value(i int) []byte {
	// Every byte value appears, and each key's value differs in length and content.
	v := make([]byte, 100+i%900)
	for j := range v {
		v[j] = byte(i*7 + j)
	}
	return v
}

// TestKillNodeKeepsAcknowledgedWrites posts values from several writers,
// SIGKILLs the node mid-load, restarts it and reads back every value that
// was acknowledged with 200.
func TestKillNodeKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	cfg, base := standaloneConfig(t, dir)
	args := []string{"-id", "n1", "-cfg", cfg, "-v", dir + "/var"}
	node := start(t, "tako-node", args...)
	waitHTTP(t, base+"/health", node)

	const total, writers = 1000, 8
	var mu sync.Mutex
	acked := map[int]bool{}
	killed := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += writers {
				code, err := post(ctx, fmt.Sprintf("%s/values/k%04d", base, i), value(i))
				if err != nil {
					return // the node is gone
				}
				if code == 200 {
					mu.Lock()
					acked[i] = true
					n := len(acked)
					mu.Unlock()
					if n == total*3/4 {
						close(killed)
					}
				}
			}
		}()
	}
	select {
	case <-killed:
	case <-ctx.Done():
		t.Fatal("writes did not progress")
	}
	node.kill(syscall.SIGKILL)
	wg.Wait()
	t.Logf("%d writes acknowledged before SIGKILL", len(acked))

	node = start(t, "tako-node", args...)
	waitHTTP(t, base+"/health", node)
	for i := range acked {
		code, body, err := get(fmt.Sprintf("%s/values/k%04d", base, i))
		if err != nil || code != 200 || !bytes.Equal(body, value(i)) {
			t.Fatalf("acknowledged k%04d after restart: %d, %d bytes, %v", i, code, len(body), err)
		}
	}
	node.kill(syscall.SIGTERM)
	if code := node.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("SIGTERM exit code %d", code)
	}
}

// TestNodeStartupErrors checks the clear error and exit code 1 of each
// reason a node cannot start.
func TestNodeStartupErrors(t *testing.T) {
	dir := t.TempDir()
	cfg, base := standaloneConfig(t, dir)
	running := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", dir+"/var")
	waitHTTP(t, base+"/health", running)

	bad := writeConfig(t, t.TempDir(), "active_deployment: nope\ndeployments: {}\n")
	blocker := bad // a regular file where the var dir should be
	f := func(want string, args ...string) {
		t.Helper()
		p := start(t, "tako-node", args...)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%v did not exit", args)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 1 || !bytes.Contains(p.logs.Bytes(), []byte(want)) {
			t.Errorf("%v: exit %d, output %q; want 1 and %q", args, code, p.logs, want)
		}
	}
	f("address already in use", "-id", "n1", "-cfg", cfg, "-v", t.TempDir())
	f("not in configuration", "-id", "n7", "-cfg", cfg, "-v", t.TempDir())
	f("at least one deployment", "-id", "n1", "-cfg", bad, "-v", t.TempDir())
	f("no such file", "-id", "n1", "-cfg", dir+"/missing.yaml", "-v", t.TempDir())
	f("not a directory", "-id", "n1", "-cfg", cfg, "-v", blocker)
	// Only the peer port taken.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	peerTaken := writeConfig(t, t.TempDir(), fmt.Sprintf(`
active_deployment: d
deployments:
    d:
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
`, freePorts(t, 1)[0], hold.Addr().(*net.TCPAddr).Port))
	f("peer server: eventloop: listen on", "-id", "n1", "-cfg", peerTaken, "-v", t.TempDir())
	f("locked by another process", "-id", "n1", "-cfg", cfg, "-v", dir+"/var")
}

// TestNodeListenFlags: each port binds the configured host unless told
// otherwise, per port: -listen-http HOST:PORT moves the HTTP port, and
// -listen-peer HOST keeps the configured peer port on another host.
func TestNodeListenFlags(t *testing.T) {
	dir := t.TempDir()
	cfg, httpBase := standaloneConfig(t, dir)
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := c.FindNode("n1")
	moved := fmt.Sprintf("127.0.0.2:%d", freePorts(t, 1)[0])
	p := start(t, "tako-node", "-id", "n1", "-cfg", cfg, "-v", dir, "-listen-http", moved, "-listen-peer", "127.0.0.3")
	waitHTTP(t, "http://"+moved+"/health", p)
	peer := fmt.Sprintf("127.0.0.3:%d", n.PeerPort)
	if c, err := net.DialTimeout("tcp", peer, time.Second); err != nil {
		t.Errorf("peer port not on %s: %v", peer, err)
	} else {
		c.Close()
	}
	for _, addr := range []string{httpBase[len("http://"):], n.PeerAddr()} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on the configured %s", addr)
		}
	}
}
