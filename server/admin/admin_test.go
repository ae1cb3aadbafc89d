package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-kv/tako/hashring"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/coordinator"
	"github.com/tako-kv/tako/server/nodestatus"
)

// fakeNode answers GET /replica/<key> from a map of replies and POST
// /repair with repairCode; it records the request URIs it saw.
type fakeNode struct {
	srv        *httptest.Server
	mu         sync.Mutex
	seen       []string
	repairCode int
	replica    func(w http.ResponseWriter) // the GET /replica reply
}

func startNode(t *testing.T) *fakeNode {
	t.Helper()
	f := &fakeNode{repairCode: http.StatusAccepted, replica: func(w http.ResponseWriter) { w.WriteHeader(404) }}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.RequestURI)
		f.mu.Unlock()
		switch {
		case r.Method == "POST" && r.URL.Path == pathRepair:
			w.WriteHeader(f.repairCode)
		case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/replica/"):
			f.replica(w)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeNode) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// fakeCluster is a coordinator serving a configuration of three buckets of
// fake nodes (n1 n2 | n3 | n4, buckets_per_key 2) and a settable status.
type fakeCluster struct {
	cfg   *config.Config
	nodes map[string]*fakeNode
	coord *httptest.Server
	mu    sync.Mutex
	st    coordinator.Status
}

func startCluster(t *testing.T) *fakeCluster {
	t.Helper()
	c := &fakeCluster{nodes: map[string]*fakeNode{}}
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		c.nodes[id] = startNode(t)
	}
	port := func(id string) string { return c.nodes[id].addr()[len("127.0.0.1:"):] }
	doc := fmt.Sprintf(`
master_coordinator: c1
coordinators: {c1: [127.0.0.1, 4701]}
active_deployment: d
deployments:
    d:
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, %s, 4711], n2: [127.0.0.1, %s, 4712]}
            b2: {n3: [127.0.0.1, %s, 4713]}
            b3: {n4: [127.0.0.1, %s, 4714]}
`, port("n1"), port("n2"), port("n3"), port("n4"))
	var err error
	if c.cfg, err = config.Parse([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	js, err := c.cfg.JSON()
	if err != nil {
		t.Fatal(err)
	}
	c.setStatus(func(st *coordinator.Status) {})
	c.coord = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case coordinator.PathConfig:
			w.Write(js)
		case coordinator.PathStatus:
			c.mu.Lock()
			defer c.mu.Unlock()
			json.NewEncoder(w).Encode(c.st)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(c.coord.Close)
	return c
}

// setStatus resets the status to every node up, in sync, no migration,
// then lets edit change it.
func (c *fakeCluster) setStatus(edit func(st *coordinator.Status)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st = coordinator.Status{ConfigVersion: c.cfg.Version, Active: "d", Migration: coordinator.MigrationStatus{State: coordinator.StateNone}}
	for _, n := range c.cfg.Nodes() {
		c.st.Nodes = append(c.st.Nodes, coordinator.NodeView{ID: n.ID, Bucket: n.Bucket, Addr: n.HTTPAddr(), Deployments: []string{"d"}, Up: true,
			Report: &nodestatus.Status{ID: n.ID, ConfigVersion: c.cfg.Version, LastPass: &nodestatus.Pass{InSync: true, Ended: time.Now().Add(-42 * time.Second)}}})
	}
	edit(&c.st)
}

func (c *fakeCluster) addr() string { return strings.TrimPrefix(c.coord.URL, "http://") }

// run runs tako-admin args and returns the exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// expect runs args and checks the exit code and that stdout and stderr
// contain the given strings: "stderr:..." in stderr, "row:A B C" as a line
// of stdout whose columns include A B C in a row, others in stdout.
func expect(t *testing.T, wantCode int, args []string, want ...string) string {
	t.Helper()
	code, out, errOut := run(t, args...)
	if code != wantCode {
		t.Errorf("tako-admin %q: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, wantCode, out, errOut)
	}
	for _, w := range want {
		in, text := "stdout", out
		if s, ok := strings.CutPrefix(w, "stderr:"); ok {
			in, text, w = "stderr", errOut, s
		}
		if s, ok := strings.CutPrefix(w, "row:"); ok {
			if !hasRow(out, strings.Fields(s)) {
				t.Errorf("tako-admin %q: no row %q in stdout:\n%s", args, s, out)
			}
			continue
		}
		if !strings.Contains(text, w) {
			t.Errorf("tako-admin %q: %s lacks %q\nstdout:\n%s\nstderr:\n%s", args, in, w, out, errOut)
		}
	}
	return out
}

func hasRow(out string, cols []string) bool {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		for i := range f {
			if i+len(cols) <= len(f) && slices.Equal(f[i:i+len(cols)], cols) {
				return true
			}
		}
	}
	return false
}

func TestStatus(t *testing.T) {
	c := startCluster(t)
	status := []string{"-c", c.addr(), "status"}
	f := func(name string, edit func(st *coordinator.Status), code int, want ...string) {
		t.Helper()
		c.setStatus(edit)
		out := expect(t, code, status, want...)
		for _, id := range []string{"n1", "n2", "n3", "n4"} {
			if !strings.Contains(out, " "+id+" ") {
				t.Errorf("%s: node %s missing from the table:\n%s", name, id, out)
			}
		}
		var rep StatusReport
		jsCode, js, _ := run(t, append(status, "-json")...)
		if err := json.Unmarshal([]byte(js), &rep); err != nil || jsCode != code || rep.Healthy != (code == ExitOK) || len(rep.Nodes) < 4 {
			t.Errorf("%s: -json: exit %d, healthy %v, %d nodes, err %v:\n%s", name, jsCode, rep.Healthy, len(rep.Nodes), err, js)
		}
	}
	f("healthy", func(st *coordinator.Status) {}, ExitOK, "migration: none", "row:(active) b1 n1", "row:up current 42s ago yes 0")
	f("node down", func(st *coordinator.Status) {
		st.Nodes[2] = coordinator.NodeView{ID: "n3", Bucket: "b2", Addr: "127.0.0.1:9", Error: "connection refused"}
	}, ExitUnhealthy, "down n3: connection refused", "row:b2 n3 127.0.0.1:9 down - - - -", "stderr:node n3 (127.0.0.1:9) is down")
	eta := 90.0
	f("copying", func(st *coordinator.Status) {
		st.Migration = coordinator.MigrationStatus{State: coordinator.StateCopying, Copied: 30, Remaining: 10, ETASeconds: &eta, Waiting: []string{"n1: 10 unconfirmed"}}
		st.Nodes[0].Report.LastPass = &nodestatus.Pass{Unconfirmed: 10}
	}, ExitUnhealthy, "copied 30  remaining 10  (75.0%)  eta 1m30s", "waiting: n1: 10 unconfirmed", "no (10 unconfirmed)", "stderr:migration copying")
	f("pass error", func(st *coordinator.Status) {
		st.Nodes[1].Report.LastPass = &nodestatus.Pass{Err: "list n3: refused", Ended: time.Now()}
	}, ExitOK, "row:b1 n2", "row:no (error below)", "n2 last pass: list n3: refused\n")
	f("ready", func(st *coordinator.Status) { st.Migration.State = coordinator.StateReady }, ExitOK, "migration: ready")
	f("held back", func(st *coordinator.Status) {
		st.Migration = coordinator.MigrationStatus{State: coordinator.StateReady, Pending: "abc"}
	}, ExitUnhealthy, "stderr:finishing configuration abc is held back")
	f("behind, no pass yet, hints", func(st *coordinator.Status) {
		st.Nodes[3].Report = &nodestatus.Status{ConfigVersion: "0ld", Hints: nodestatus.Hints{Pending: 7}}
	}, ExitOK, "row:n4", "row:up 0ld none yet - 7")
	f("leaver down", func(st *coordinator.Status) {
		st.Nodes = append(st.Nodes, coordinator.NodeView{ID: "n9", Bucket: "b9", Addr: "127.0.0.1:9", Error: "gone"})
	}, ExitOK, "row:leaving b9 n9 127.0.0.1:9 down")
}

func TestStatusCoordinatorDown(t *testing.T) {
	c := startCluster(t)
	addr := c.addr()
	c.coord.Close()
	expect(t, ExitError, []string{"-c", addr, "status"}, "stderr:"+addr+" GET /status")
}

func TestRing(t *testing.T) {
	c := startCluster(t)
	// The primary bucket as the nodes compute it: a ring of the buckets in
	// configuration order.
	ring, err := hashring.New([]string{"b1", "b2", "b3"}, hashring.DefaultPoints)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "services", "a/b c", "ключ"} {
		var p Placement
		code, out, errOut := run(t, "-c", c.addr(), "ring", key, "-json")
		if err := json.Unmarshal([]byte(out), &p); code != ExitOK || err != nil {
			t.Fatalf("ring %q: exit %d, %v\n%s%s", key, code, err, out, errOut)
		}
		d := p.Deployments[0]
		primary := ring.Bucket(ring.Lookup(nil, []byte(key), 1)[0])
		if p.Key != key || len(p.Deployments) != 1 || d.Role != coordinator.RoleActive || len(d.Buckets) != 2 ||
			d.Buckets[0].ID != primary || d.Buckets[0].ID == d.Buckets[1].ID {
			t.Errorf("ring %q = %+v; want 2 distinct buckets of d, %s first", key, p, primary)
		}
		var want []string
		for _, b := range d.Buckets {
			bucket := c.cfg.ActiveDeployment().Buckets[slices.IndexFunc(c.cfg.ActiveDeployment().Buckets, func(x config.Bucket) bool { return x.ID == b.ID })]
			for _, n := range bucket.Nodes {
				want = append(want, n.ID)
			}
		}
		slices.SortFunc(want, config.NaturalCompare)
		if !slices.Equal(p.Replicas, want) {
			t.Errorf("ring %q replicas %v, want the nodes of its buckets %v", key, p.Replicas, want)
		}
		expect(t, ExitOK, []string{"-c", c.addr(), "ring", key}, fmt.Sprintf("key %q", key), "row:d (active) 1/2 "+primary, "replicas: "+strings.Join(want, " "))
	}
}

func TestGet(t *testing.T) {
	c := startCluster(t)
	n1 := c.nodes["n1"]
	f := func(name string, reply func(w http.ResponseWriter), code int, want ...string) {
		t.Helper()
		n1.replica = reply
		expect(t, code, []string{"-c", c.addr(), "get", "a/b c", "--replica", "n1"}, want...)
	}
	ts := func(w http.ResponseWriter, v string) { w.Header().Set("X-Timestamp", v) }
	f("value", func(w http.ResponseWriter) { ts(w, "1700000000000001"); w.Write([]byte("hello")) },
		ExitOK, `n1 (`+n1.addr()+`): key "a/b c" value of 5 bytes, timestamp 1700000000000001 (2023-11-14T22:13:20.000001Z)`)
	f("tombstone", func(w http.ResponseWriter) {
		ts(w, "1700000000000002")
		w.Header().Set("X-Tombstone", "yes")
		w.WriteHeader(404)
	},
		ExitOK, "tombstone, timestamp 1700000000000002")
	f("absent", func(w http.ResponseWriter) { w.WriteHeader(404) }, ExitOK, `key "a/b c" absent`)
	f("error", func(w http.ResponseWriter) { http.Error(w, "disk on fire", 500) }, ExitError, "stderr:500 Internal Server Error: disk on fire")
	f("bad timestamp", func(w http.ResponseWriter) { ts(w, "soon") }, ExitError, `stderr:X-Timestamp "soon"`)
	if got := n1.requests(); got[0] != "GET /replica/a%2Fb%20c" {
		t.Errorf("the node was asked %q, want the key percent-encoded", got[0])
	}

	n1.replica = func(w http.ResponseWriter) { ts(w, "5"); w.Write([]byte("xy")) }
	var rec ReplicaRecord
	_, out, _ := run(t, "-node", n1.addr(), "-json", "get", "k")
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.State != StateValue || rec.Size != 2 || rec.Timestamp != 5 || rec.HTTP != n1.addr() {
		t.Errorf("get -node -json = %+v, %v:\n%s", rec, err, out)
	}
	expect(t, ExitOK, []string{"get", "k", "--replica", n1.addr()}, "value of 2 bytes")
	expect(t, ExitError, []string{"-c", c.addr(), "get", "k", "--replica", "n7"}, `stderr:node "n7": not in configuration`)
	expect(t, ExitUsage, []string{"get", "k", "--replica", "n1"}, "stderr:needs a coordinator")
	expect(t, ExitUsage, []string{"get", "k"}, "stderr:name a node")
}

func TestRepair(t *testing.T) {
	c := startCluster(t)
	c.nodes["n3"].repairCode = http.StatusMethodNotAllowed
	out := expect(t, ExitError, []string{"-c", c.addr(), "repair"}, "stderr:repair: 1 of 4 nodes did not start a pass",
		"n3 ("+c.nodes["n3"].addr()+"): failed: ", "405 Method Not Allowed")
	if n := strings.Count(out, "anti-entropy pass started"); n != 3 {
		t.Errorf("repair started %d passes, want 3:\n%s", n, out)
	}
	for id, n := range c.nodes {
		if got := n.requests(); !slices.Equal(got, []string{"POST /repair"}) {
			t.Errorf("%s was asked %q, want one POST /repair", id, got)
		}
	}
	expect(t, ExitOK, []string{"-c", c.addr(), "repair", "n1", "-json"}, `"node": "n1"`, `"started": true`)
	expect(t, ExitOK, []string{"-node", c.nodes["n2"].addr(), "repair"}, c.nodes["n2"].addr()+": anti-entropy pass started")
	if got := len(c.nodes["n1"].requests()) + len(c.nodes["n2"].requests()); got != 4 {
		t.Errorf("n1 and n2 were asked %d times in all, want 4", got)
	}
}

func TestUsage(t *testing.T) {
	f := func(args string, code int, want string) {
		t.Helper()
		expect(t, code, strings.Fields(args), want)
	}
	f("", ExitUsage, "stderr:usage: tako-admin")
	f("-h", ExitOK, "stderr:usage: tako-admin")
	f("ring -h", ExitOK, "stderr:usage: tako-admin")
	f("-bogus status", ExitUsage, "stderr:flag provided but not defined")
	f("frobnicate", ExitUsage, `stderr:unknown command "frobnicate"`)
	f("status extra", ExitUsage, "stderr:status: takes 0 arguments")
	f("ring", ExitUsage, "stderr:ring: takes one argument")
	f("ring a b", ExitUsage, "stderr:ring: takes one argument")
	f("repair n1 n2", ExitUsage, "stderr:repair: takes 0 to 1 arguments")
	f("get k --bogus", ExitUsage, "stderr:get: flag provided but not defined: -bogus")
	f("status", ExitUsage, "stderr:needs a coordinator: -c HOST:PORT")
	f("ring -- -k", ExitUsage, "stderr:needs a coordinator") // -k is the key, not a flag
}

// TestCACert: with -cacert, nodes are reached over HTTPS and verified against the file;
// without it, or with a file that is not PEM, a TLS node is an error.
func TestCACert(t *testing.T) {
	node := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Timestamp", "7")
		w.Write([]byte("tls"))
	}))
	t.Cleanup(node.Close)
	addr := strings.TrimPrefix(node.URL, "https://")
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: node.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, ExitOK, []string{"-node", addr, "-cacert", ca, "get", "k"}, "value of 3 bytes, timestamp 7")
	expect(t, ExitError, []string{"-node", addr, "get", "k"}, "stderr:"+addr)
	expect(t, ExitError, []string{"-node", addr, "-cacert", junk, "get", "k"}, "stderr:-cacert "+junk+": no PEM certificate")
}
