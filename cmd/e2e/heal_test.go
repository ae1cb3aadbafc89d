package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/server/config"
)

func fastHealing(s string) string {
	return strings.Replace(s, "background_healing_interval: '1d 0:00:00'", "background_healing_interval: 2s", 1)
}

// peerHas reports whether node id holds key with value val, asked directly
// over the peer protocol.
func (c *cluster) peerHas(cl *eventloop.Client, key, val []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.Get(ctx, key)
	if err != nil {
		return false
	}
	defer resp.Release()
	return resp.Status == codec.StatusOK && bytes.Equal(resp.Value, val)
}

func (c *cluster) peerClient(id string) *eventloop.Client {
	n, ok := c.cfg.FindNode(id)
	if !ok {
		c.t.Fatalf("no node %s", id)
	}
	cl := eventloop.NewClient(eventloop.ClientConfig{Addr: n.PeerAddr()})
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHealingCatchesUpRestartedNode: a node that was down while writes went
// on gets every one of them from its peers by background healing alone — no
// client reads the keys.
func TestHealingCatchesUpRestartedNode(t *testing.T) {
	c := startClusterEdited(t, fastHealing)
	c.nodes["n1"].kill(syscall.SIGKILL)
	val := func(i int) []byte { return fmt.Appendf(nil, "heal-value-%d", i) }
	var mine [][]byte
	for i := range 300 {
		key := fmt.Appendf(nil, "heal-%03d", i)
		if code, err := post(context.Background(), keyURL(c.proxyURL, key), val(i)); err != nil || code != 200 {
			t.Fatalf("POST %s with n1 down: %d %v", key, code, err)
		}
		for _, id := range c.replicas(key) {
			if id == "n1" {
				mine = append(mine, key)
			}
		}
	}
	if len(mine) == 0 {
		t.Fatal("n1 replicates none of the keys")
	}
	c.startNode("n1")
	cl := c.peerClient("n1")
	eventually(t, 30*time.Second, "n1 caught up by healing", func() bool {
		for _, key := range mine {
			i, _ := strconv.Atoi(strings.TrimPrefix(string(key), "heal-"))
			if !c.peerHas(cl, key, val(i)) {
				return false
			}
		}
		return true
	})
	t.Logf("n1 received all %d of its keys by healing", len(mine))
}

// TestLiveMigration grows the cluster from 5 to 6 buckets while serving:
// a target deployment is added, healing copies keys to their new owners,
// the target becomes active, and the old owners drop what they no longer
// own. Every acknowledged write stays readable throughout.
func TestLiveMigration(t *testing.T) {
	c := startClusterEdited(t, fastHealing)
	var mu sync.Mutex
	written := map[string][]byte{}
	write := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			key := fmt.Sprintf("%s-%03d", prefix, i)
			val := fmt.Appendf(nil, "%s value %d", key, i)
			if code, err := post(context.Background(), keyURL(c.proxyURL, []byte(key)), val); err != nil || code != 200 {
				t.Fatalf("POST %s: %d %v", key, code, err)
			}
			mu.Lock()
			written[key] = val
			mu.Unlock()
		}
	}
	readAll := func(phase string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for key, val := range written {
			code, got, err := get(keyURL(c.proxyURL, []byte(key)))
			if err != nil || code != 200 || !bytes.Equal(got, val) {
				t.Fatalf("%s: GET %s: %d %q %v", phase, key, code, got, err)
			}
		}
	}
	write("before", 200)

	// Add deployment "grown": the same ten nodes plus a sixth bucket.
	text, err := os.ReadFile(c.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 4)
	b6 := fmt.Sprintf("            b6:\n                n11: [127.0.0.1, %d, %d]\n                n12: [127.0.0.1, %d, %d]\n",
		ports[0], ports[1], ports[2], ports[3])
	cluster := string(text)[strings.Index(string(text), "    cluster:"):]
	grown := strings.Replace(cluster, "    cluster:", "    grown:", 1) + b6
	migrating := strings.Replace(string(text), "active_deployment: cluster", "active_deployment: cluster\ntarget_deployment: grown", 1) + grown
	c.setConfig(migrating)
	for _, id := range []string{"n11", "n12"} {
		c.startNode(id)
		n, _ := c.cfg.FindNode(id)
		waitHTTP(t, "http://"+n.HTTPAddr()+"/health", c.nodes[id])
	}
	c.waitVersion()
	write("during", 200)
	readAll("migrating")

	// Wait until healing has given n11 and n12 every key they will own.
	c.cfg = mustParse(t, strings.Replace(migrating, "active_deployment: cluster\ntarget_deployment: grown", "active_deployment: grown", 1))
	newOwner := map[string]*eventloop.Client{"n11": c.peerClient("n11"), "n12": c.peerClient("n12")}
	eventually(t, 40*time.Second, "new bucket b6 filled by healing", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for key, val := range written {
			for _, id := range c.replicas([]byte(key)) {
				if cl, ok := newOwner[id]; ok && !c.peerHas(cl, []byte(key), val) {
					return false
				}
			}
		}
		return true
	})

	// Finish: grown becomes the only deployment.
	final := strings.Replace(migrating, "active_deployment: cluster\ntarget_deployment: grown", "active_deployment: grown", 1)
	c.setConfig(final)
	c.waitVersion()
	write("after", 100)
	readAll("after migration")

	// Old owners drop the keys that moved to b6.
	var moved []string
	for key := range written {
		reps := c.replicas([]byte(key))
		if reps[0] == "n11" || len(reps) > 2 && reps[2] == "n11" {
			moved = append(moved, key)
		}
	}
	if len(moved) == 0 {
		t.Fatal("no key moved to the new bucket")
	}
	eventually(t, 40*time.Second, "old owners dropped moved keys", func() bool {
		for _, key := range moved {
			owners := map[string]bool{}
			for _, id := range c.replicas([]byte(key)) {
				owners[id] = true
			}
			for _, n := range c.cfg.Nodes() {
				if owners[n.ID] {
					continue
				}
				if c.peerHas(c.clientFor(n.ID), []byte(key), written[key]) {
					return false
				}
			}
		}
		return true
	})
	readAll("after drop")
	t.Logf("%d keys, %d moved to the new bucket and dropped by their old owners", len(written), len(moved))
}

func mustParse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// setConfig rewrites the coordinator's file and waits until the
// coordinator serves it; c.cfg follows it.
func (c *cluster) setConfig(text string) {
	c.t.Helper()
	c.cfg = mustParse(c.t, text)
	if err := os.WriteFile(c.cfgPath, []byte(text), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.waitURLVersion(c.coordURL)
}

func (c *cluster) waitURLVersion(u string) {
	c.t.Helper()
	eventually(c.t, 15*time.Second, u+" at configuration "+c.cfg.Version, func() bool {
		resp, err := http.Get(u + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("X-Config-Version") == c.cfg.Version
	})
}

// waitVersion waits until the proxy and every running node report c.cfg's
// version.
func (c *cluster) waitVersion() {
	c.t.Helper()
	urls := []string{c.proxyURL}
	for _, n := range c.cfg.Nodes() {
		if _, ok := c.nodes[n.ID]; ok {
			urls = append(urls, "http://"+n.HTTPAddr())
		}
	}
	for _, u := range urls {
		c.waitURLVersion(u)
	}
}

var clientsMu sync.Mutex

// clientFor returns a cached peer client for node id.
func (c *cluster) clientFor(id string) *eventloop.Client {
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c.clients == nil {
		c.clients = map[string]*eventloop.Client{}
	}
	if cl, ok := c.clients[id]; ok {
		return cl
	}
	cl := c.peerClient(id)
	c.clients[id] = cl
	return cl
}

// TestHintedHandOffCatchesUpMirror: on the seed's one-day healing interval,
// a mirror that was down during 1,000 writes holds every one of them soon
// after its return — handed off by the proxy that kept them as hints, with
// no client reading the keys and no healing pass due.
func TestHintedHandOffCatchesUpMirror(t *testing.T) {
	c := startCluster(t)
	c.nodes["n1"].kill(syscall.SIGKILL)
	val := func(i int) []byte { return fmt.Appendf(nil, "hinted-value-%d", i) }
	keys := make([][]byte, 1000)
	parallel(len(keys), 8, func(i int) {
		keys[i] = fmt.Appendf(nil, "hinted-%04d", i)
		if code, err := post(context.Background(), keyURL(c.proxyURL, keys[i]), val(i)); err != nil || code != 200 {
			t.Errorf("POST %s with n1 down: %d %v", keys[i], code, err)
		}
	})
	var mine []int
	for i, key := range keys {
		if slices.Contains(c.replicas(key), "n1") {
			mine = append(mine, i)
		}
	}
	if len(mine) == 0 {
		t.Fatal("n1 replicates none of the keys")
	}
	back := time.Now()
	c.startNode("n1")
	cl := c.peerClient("n1")
	eventually(t, 120*time.Second, "n1 holds every write it missed", func() bool {
		for _, i := range mine {
			if !c.peerHas(cl, keys[i], val(i)) {
				return false
			}
		}
		return true
	})
	t.Logf("n1 holds all %d of its writes %v after its return", len(mine), time.Since(back).Round(100*time.Millisecond))
}

// TestLeftNodeHandsOff: a node that leaves the configuration while down,
// holding records no other node has, starts again with its coordinator (it
// is no longer named), hands those records to their current owners, drops
// them and says it is empty.
func TestLeftNodeHandsOff(t *testing.T) {
	c := startCluster(t)
	n1 := c.clientFor("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var only [][]byte // on n1 alone: written to its peer port directly
	for i := 0; len(only) < 100 && i < 10000; i++ {
		key := fmt.Appendf(nil, "stranded-%04d", i)
		if !slices.Contains(c.replicas(key), "n1") {
			continue
		}
		if _, err := n1.Set(ctx, key, time.Now().UnixMicro(), 0, key); err != nil {
			t.Fatal(err)
		}
		only = append(only, key)
	}
	c.nodes["n1"].kill(syscall.SIGKILL)
	seed, err := os.ReadFile(c.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	without := regexp.MustCompile(`(?m)^\s*n1: \[.*\]\n`).ReplaceAllString(string(seed), "")
	c.setConfig(without)
	c.startNode("n1")
	eventually(t, 60*time.Second, "n1 empty after handing off", func() bool {
		return bytes.Contains(c.nodes["n1"].logs.Bytes(), []byte("this node holds nothing now"))
	})
	for _, key := range only {
		for _, id := range c.replicas(key) {
			if !c.peerHas(c.clientFor(id), key, key) {
				t.Fatalf("%s lacks %s, handed off by n1", id, key)
			}
		}
	}
	t.Logf("n1 handed off %d records it alone held", len(only))
}

// TestWipedNodeRefills: a node whose data directory was wiped gets every key
// it replicates back by anti-entropy alone — no reads, no hints (the writes
// were made while it was up) — on the seed's one-day interval: its own first
// pass pulls them.
func TestWipedNodeRefills(t *testing.T) {
	c := startCluster(t)
	val := func(i int) []byte { return fmt.Appendf(nil, "wiped-value-%d", i) }
	keys := make([][]byte, 500)
	parallel(len(keys), 8, func(i int) {
		keys[i] = fmt.Appendf(nil, "wiped-%04d", i)
		if code, err := post(context.Background(), keyURL(c.proxyURL, keys[i]), val(i)); err != nil || code != 200 {
			t.Errorf("POST %s: %d %v", keys[i], code, err)
		}
	})
	c.nodes["n1"].kill(syscall.SIGKILL)
	if err := os.RemoveAll(filepath.Join(c.dir, "var", "n1", "store")); err != nil {
		t.Fatal(err)
	}
	c.startNode("n1")
	cl := c.peerClient("n1")
	mine := 0
	eventually(t, 60*time.Second, "n1 refilled", func() bool {
		mine = 0
		for i, key := range keys {
			if !slices.Contains(c.replicas(key), "n1") {
				continue
			}
			mine++
			if !c.peerHas(cl, key, val(i)) {
				return false
			}
		}
		return true
	})
	t.Logf("n1 got all %d of its keys back", mine)
}
