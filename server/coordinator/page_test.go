package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/nodestatus"
)

// migrating is a configuration in the middle of a migration: n1 and n2
// move from bucket b1 of old to b1 of new (n1 also keeps b1), n3 joins;
// n4 stays in old only. HTTP ports are %d verbs.
const migrating = `
master_coordinator: c1
coordinators:
    c1: [127.0.0.1, 4701]
active_deployment: old
target_deployment: new
deployments:
    old:
        buckets:
            b1: {n1: [127.0.0.1, %d, 4711], n2: [127.0.0.1, %d, 4712]}
            b2: {n4: [127.0.0.1, %d, 4714]}
    new:
        buckets:
            b1: {n1: [127.0.0.1, %d, 4711]}
            b2: {n2: [127.0.0.1, %d, 4712], n3: [127.0.0.1, %d, 4713]}
`

func parseMigrating(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, migrating, 5711, 5712, 5714, 5711, 5712, 5713))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestByBucket(t *testing.T) {
	cfg := parseMigrating(t)
	view := func(id, bucket string, up bool) NodeView { return NodeView{ID: id, Bucket: bucket, Up: up} }
	// n3 is missing from the status; n9 is a leaver of the previous configuration.
	st := Status{Nodes: []NodeView{view("n1", "b1", true), view("n2", "b1", false), view("n4", "b2", true), view("n9", "b7", true)}}
	type row struct{ role, dep, bucket, node string }
	var got []row
	for _, g := range ByBucket(cfg, st) {
		for _, n := range g.Nodes {
			got = append(got, row{g.Role, g.Deployment, g.Bucket, n.ID})
		}
	}
	want := []row{
		{RoleActive, "old", "b1", "n1"}, {RoleActive, "old", "b1", "n2"}, {RoleActive, "old", "b2", "n4"},
		{RoleTarget, "new", "b1", "n1"}, {RoleTarget, "new", "b2", "n2"}, {RoleTarget, "new", "b2", "n3"},
		{RoleLeaving, "", "b7", "n9"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ByBucket rows\n got %v\nwant %v", got, want)
	}
	groups := ByBucket(cfg, st)
	if n3 := groups[3].Nodes[1]; n3.Up || n3.Error == "" || n3.Addr != "127.0.0.1:5713" {
		t.Errorf("n3, absent from the status, shows as %+v; want down with a reason and its address", n3)
	}
}

func TestProgress(t *testing.T) {
	f := func(copied, remaining int64, want float64) {
		t.Helper()
		if got := (MigrationStatus{Copied: copied, Remaining: remaining}).Progress(); got != want {
			t.Errorf("Progress(%d copied, %d remaining) = %v, want %v", copied, remaining, got, want)
		}
	}
	f(0, 0, 100)
	f(30, 10, 75)
	f(0, 5, 0)
}

// nodeRows finds the node rows of a rendered page (or a browser's DOM of
// it): node id -> "up" or "down".
func nodeRows(page string) map[string][]string {
	re := regexp.MustCompile(`<tr class="node (up|down)" data-node="([^"]+)"`)
	rows := map[string][]string{}
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		rows[m[2]] = append(rows[m[2]], m[1])
	}
	return rows
}

func TestRenderPage(t *testing.T) {
	cfg := parseMigrating(t)
	now := time.Now()
	rep := &nodestatus.Status{ConfigVersion: cfg.Version, LastPass: &nodestatus.Pass{Ended: now.Add(-42 * time.Second), InSync: true}}
	eta := 90.0
	st := Status{ConfigVersion: cfg.Version, Active: "old", Target: "new",
		Migration: MigrationStatus{State: StateCopying, Copied: 30, Remaining: 10, ETASeconds: &eta,
			Waiting: []string{"n2: <b>down</b>"}},
		Nodes: []NodeView{
			{ID: "n1", Bucket: "b1", Addr: "127.0.0.1:5711", Up: true, Report: rep},
			{ID: "n2", Bucket: "b1", Addr: "127.0.0.1:5712", Error: `dial: <script>alert(1)</script>`},
			{ID: "n3", Bucket: "b2", Addr: "127.0.0.1:5713", Up: true, Report: &nodestatus.Status{ConfigVersion: "0ld"}},
			{ID: "n4", Bucket: "b2", Addr: "127.0.0.1:5714", Up: true, Report: rep},
		}}
	var b bytes.Buffer
	if err := renderPage(&b, cfg, st, now); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	want := map[string][]string{"n1": {"up", "up"}, "n2": {"down", "down"}, "n3": {"up"}, "n4": {"up"}}
	if got := nodeRows(page); !mapsEqual(got, want) {
		t.Errorf("node rows %v, want %v", got, want)
	}
	for _, s := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`<progress id="migration-progress" max="100" value="75.0">`,
		"30 records copied, 10 remaining, about 1m30s left",
		"42s ago", "none yet", `class="stale"`,
		"dial: &lt;script&gt;alert(1)&lt;/script&gt;", "n2: &lt;b&gt;down&lt;/b&gt;",
	} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("page carries an unescaped <script> from a node's error")
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// pageCoordinator serves the migrating layout with n1, n2 and n4 up (fake
// nodes) and n3 down (a port nothing listens on); it returns the URL.
func pageCoordinator(t *testing.T) string {
	t.Helper()
	n1, n2, n4 := startFakeNode(t, "n1"), startFakeNode(t, "n2"), startFakeNode(t, "n4")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, _, url, _ := newCoordinator(t, fmt.Sprintf(migrating, n1.port(), n2.port(), n4.port(), n1.port(), n2.port(), down), time.Hour)
	return url
}

var wantServed = map[string][]string{"n1": {"up", "up"}, "n2": {"up", "up"}, "n3": {"down"}, "n4": {"up"}}

func TestServesPage(t *testing.T) {
	url := pageCoordinator(t)
	resp, body := request(t, "GET", url+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := nodeRows(string(body)); !mapsEqual(got, wantServed) {
		t.Errorf("node rows %v, want %v", got, wantServed)
	}
	if resp, _ := request(t, "GET", url+"/no-such-page"); resp.StatusCode != 404 {
		t.Errorf("GET /no-such-page = %d, want 404", resp.StatusCode)
	}
}

// TestPageInHeadlessBrowser loads the page in Debian's chromium, when it is
// installed, and reads the nodes from the DOM it built.
func TestPageInHeadlessBrowser(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no headless browser: neither chromium nor chromium-browser is on PATH (apt-get install chromium)")
	}
	url := pageCoordinator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// --no-sandbox: tests may run as root, where chromium refuses its sandbox.
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url+"/")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s --dump-dom: %v\n%s", browser, err, stderr.Bytes())
	}
	if got := nodeRows(string(dom)); !mapsEqual(got, wantServed) {
		t.Errorf("node rows in the DOM %v, want %v\nDOM:\n%s", got, wantServed, dom)
	}
	if !strings.Contains(string(dom), `<span id="migration-state">copying</span>`) {
		t.Errorf("DOM lacks the migration state copying:\n%s", dom)
	}
}
