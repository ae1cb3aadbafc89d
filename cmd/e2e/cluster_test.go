package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/hashring"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
)

// cluster is examples/local_cluster.yaml running as separate processes: a
// coordinator, ten nodes and a proxy, all on free 127.0.0.1 ports.
type cluster struct {
	t        *testing.T
	dir      string
	cfgPath  string
	cfg      *config.Config
	coordURL string
	proxyURL string
	coord    *proc
	proxy    *proc
	nodes    map[string]*proc
	clients  map[string]*eventloop.Client
}

var portRE = regexp.MustCompile(`\[localhost((?:, *\d+)+)\]`)

// remapPorts rewrites every [localhost, port...] entry of a seed file to
// 127.0.0.1 and free ports.
func remapPorts(t *testing.T, text string) string {
	n := 0
	for _, m := range portRE.FindAllStringSubmatch(text, -1) {
		n += strings.Count(m[1], ",")
	}
	ports := freePorts(t, n)
	return portRE.ReplaceAllStringFunc(text, func(entry string) string {
		parts := strings.Split(strings.Trim(entry, "[]"), ",")
		out := []string{"127.0.0.1"}
		for range parts[1:] {
			out = append(out, strconv.Itoa(ports[0]))
			ports = ports[1:]
		}
		return "[" + strings.Join(out, ", ") + "]"
	})
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	return startClusterEdited(t, func(s string) string { return s })
}

// startClusterEdited starts the local cluster from the seed file as edit
// rewrites it.
func startClusterEdited(t *testing.T, edit func(string) string) *cluster {
	t.Helper()
	seed, err := os.ReadFile("../../examples/local_cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: t.TempDir(), nodes: map[string]*proc{}}
	c.cfgPath = writeConfig(t, c.dir, remapPorts(t, edit(string(seed))))
	if c.cfg, err = config.Load(c.cfgPath); err != nil {
		t.Fatal(err)
	}
	coord := c.cfg.Coordinators["c1"]
	c.coordURL = "http://" + coord.String()
	c.coord = start(t, "tako-coordinator", "-id", "c1", "-cfg", c.cfgPath, "-v", c.dir+"/var", "-poll", "100ms")
	waitHTTP(t, c.coordURL+"/health", c.coord)
	for _, n := range c.cfg.Nodes() {
		c.startNode(n.ID)
	}
	for _, n := range c.cfg.Nodes() {
		waitHTTP(t, "http://"+n.HTTPAddr()+"/health", c.nodes[n.ID])
	}
	port := freePorts(t, 1)[0]
	c.proxyURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	c.proxy = start(t, "tako-proxy", "-host", "127.0.0.1", "-p", strconv.Itoa(port), "-c", coord.String(), "-v", c.dir+"/var")
	waitHTTP(t, c.proxyURL+"/health", c.proxy)
	return c
}

func (c *cluster) startNode(id string) {
	c.nodes[id] = start(c.t, "tako-node", "-id", id, "-c", c.cfg.Coordinators["c1"].String(), "-v", c.dir+"/var")
}

// replicas returns the IDs of key's replicas under the active deployment.
func (c *cluster) replicas(key []byte) []string {
	d := c.cfg.ActiveDeployment()
	var ids []string
	for _, b := range d.Buckets {
		ids = append(ids, b.ID)
	}
	ring, err := hashring.New(ids, d.RingPoints)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, b := range ring.Lookup(nil, key, d.BucketsPerKey) {
		for _, n := range d.Buckets[b].Nodes {
			out = append(out, n.ID)
		}
	}
	return out
}

func keyURL(base string, key []byte) string {
	return base + "/values/" + string(httpproxy.AppendEscapedKey(nil, key))
}

// testFiles returns real binary files from the Go installation: the 24
// largest regular files up to 4 MiB under $GOROOT/src/**/testdata, and
// others spread evenly over the tree so sizes and kinds mix; n in all.
func testFiles(t *testing.T, n int) []string {
	root := goroot(t)
	type file struct {
		path string
		size int64
	}
	var files []file
	filepath.WalkDir(filepath.Join(root, "src"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.Contains(path, "/testdata/") {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Size() > 0 && info.Size() <= 4<<20 {
			files = append(files, file{path, info.Size()})
		}
		return nil
	})
	if len(files) < n {
		t.Fatalf("only %d test files under %s, want %d", len(files), root, n)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].size > files[j].size })
	const large = 24
	picked := []string{}
	for _, f := range files[:large] {
		picked = append(picked, f.path)
	}
	rest := files[large:]
	sort.Slice(rest, func(i, j int) bool { return rest[i].path < rest[j].path })
	step := float64(len(rest)) / float64(n-large)
	for i := range n - large {
		picked = append(picked, rest[int(float64(i)*step)].path)
	}
	return picked
}

// goroot is the Go installation the tests run with.
func goroot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// parallel runs fn(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestSeedTestRun is the seed README's Test Run, scaled down: real binary
// files posted through the proxy of the local cluster, fetched back and
// compared byte for byte.
func TestSeedTestRun(t *testing.T) {
	c := startCluster(t)
	files := testFiles(t, 320)
	var total int64
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	root := goroot(t)
	keyOf := func(path string) []byte { rel, _ := filepath.Rel(root, path); return []byte(rel) }
	parallel(len(files), 8, func(i int) {
		data, err := os.ReadFile(files[i])
		if err != nil {
			fail("read %s: %v", files[i], err)
			return
		}
		mu.Lock()
		total += int64(len(data))
		mu.Unlock()
		if code, err := post(context.Background(), keyURL(c.proxyURL, keyOf(files[i])), data); err != nil || code != 200 {
			fail("POST %s: %d %v", files[i], code, err)
		}
	})
	parallel(len(files), 8, func(i int) {
		data, _ := os.ReadFile(files[i])
		code, got, err := get(keyURL(c.proxyURL, keyOf(files[i])))
		if err != nil || code != 200 || !bytes.Equal(got, data) {
			fail("GET %s: %d, %d bytes (want %d), %v", files[i], code, len(got), len(data), err)
		}
	})
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	t.Logf("%d files, %.1f MB round-tripped through the proxy", len(files), float64(total)/1e6)
}

// TestKillNodeOfEachBucket SIGKILLs one node of every bucket in the middle
// of a write load through the proxy: every write that got a 200 must be
// readable afterwards, and once the nodes are back, reads bring their copies
// up to date (checked by asking the restarted nodes over the peer protocol).
func TestKillNodeOfEachBucket(t *testing.T) {
	c := startCluster(t)
	victims := []string{"n1", "n3", "n5", "n7", "n9"}
	const total = 600
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xff, 0}, 64+i%200) }
	key := func(i int) []byte { return fmt.Appendf(nil, "kill-%04d", i) }

	var mu sync.Mutex
	acked := map[int]bool{}
	var once sync.Once
	parallel(total, 8, func(i int) {
		if i == total/3 {
			once.Do(func() {
				for _, id := range victims {
					c.nodes[id].kill(syscall.SIGKILL)
				}
			})
		}
		code, err := post(context.Background(), keyURL(c.proxyURL, key(i)), val(i))
		if err == nil && code == 200 {
			mu.Lock()
			acked[i] = true
			mu.Unlock()
		}
	})
	t.Logf("%d of %d writes acknowledged with a node of each bucket killed a third of the way in", len(acked), total)
	if len(acked) < total*9/10 {
		t.Fatalf("only %d of %d writes acknowledged with one node per bucket down", len(acked), total)
	}
	for i := range acked {
		code, got, err := get(keyURL(c.proxyURL, key(i)))
		if err != nil || code != 200 || !bytes.Equal(got, val(i)) {
			t.Fatalf("acknowledged %s while nodes down: %d %v", key(i), code, err)
		}
	}

	for _, id := range victims {
		c.startNode(id)
	}
	for _, id := range victims {
		n, _ := c.cfg.FindNode(id)
		waitHTTP(t, "http://"+n.HTTPAddr()+"/health", c.nodes[id])
	}
	// Reading a key through the proxy repairs its restarted replicas; a
	// read that comes before the proxy has reconnected to one is repeated.
	clients := map[string]*eventloop.Client{}
	for _, id := range victims {
		n, _ := c.cfg.FindNode(id)
		clients[id] = eventloop.NewClient(eventloop.ClientConfig{Addr: n.PeerAddr()})
		defer clients[id].Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := range acked {
		for _, id := range c.replicas(key(i)) {
			cl, ok := clients[id]
			if !ok {
				continue
			}
			for {
				if code, got, err := get(keyURL(c.proxyURL, key(i))); err != nil || code != 200 || !bytes.Equal(got, val(i)) {
					t.Fatalf("after restart %s: %d %v", key(i), code, err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := cl.Get(ctx, key(i))
				cancel()
				if err == nil && resp.Status == codec.StatusOK && bytes.Equal(resp.Value, val(i)) {
					resp.Release()
					break
				}
				status := "error"
				if err == nil {
					status = resp.Status.String()
					resp.Release()
				}
				if time.Now().After(deadline) {
					t.Fatalf("restarted %s never got %s: %s %v", id, key(i), status, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// TestConfigurationChange edits the coordinator's file and checks that every
// node and the proxy take the new version without restarting, and that a
// broken edit changes nothing.
func TestConfigurationChange(t *testing.T) {
	c := startCluster(t)
	text, err := os.ReadFile(c.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	old := c.cfg.Version
	edited := strings.Replace(string(text), "read_repair: yes", "read_repair: no", 1)
	c.setConfig(edited)
	if c.cfg.Version == old || c.cfg.ActiveDeployment().ReadRepair {
		t.Fatalf("edit did not change the configuration")
	}
	c.waitVersion()
	// A broken edit is refused: everyone keeps the last good version.
	if err := os.WriteFile(c.cfgPath, []byte(edited+"\n  bogus_key: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	c.waitURLVersion(c.coordURL)
	c.waitVersion()
	if code, err := post(context.Background(), c.proxyURL+"/values/after-edit", []byte("x")); err != nil || code != 200 {
		t.Fatalf("write after edits: %d %v", code, err)
	}
}

// TestStartsFromCachedConfiguration: with the coordinator gone, a node
// restarted from its var directory starts from the configuration it cached
// and serves; when the coordinator comes back with an edit, the node takes it.
func TestStartsFromCachedConfiguration(t *testing.T) {
	c := startCluster(t)
	c.coord.kill(syscall.SIGKILL)
	c.nodes["n1"].kill(syscall.SIGKILL)
	c.startNode("n1")
	n1, _ := c.cfg.FindNode("n1")
	waitHTTP(t, "http://"+n1.HTTPAddr()+"/health", c.nodes["n1"])
	c.waitURLVersion("http://" + n1.HTTPAddr())
	if code, err := post(context.Background(), keyURL(c.proxyURL, []byte("cached")), []byte("v")); err != nil || code != 200 {
		t.Fatalf("write with the coordinator down: %d %v", code, err)
	}

	text, err := os.ReadFile(c.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	c.coord = start(t, "tako-coordinator", "-id", "c1", "-cfg", c.cfgPath, "-v", c.dir+"/var", "-poll", "100ms")
	waitHTTP(t, c.coordURL+"/health", c.coord)
	c.setConfig(strings.Replace(string(text), "read_repair: yes", "read_repair: no", 1))
	c.waitURLVersion("http://" + n1.HTTPAddr())
}
