package coordinator

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/nodestatus"
)

// fakeNode serves a settable nodestatus report.
type fakeNode struct {
	mu  sync.Mutex
	rep nodestatus.Status
	srv *httptest.Server
}

func startFakeNode(t *testing.T, id string) *fakeNode {
	f := &fakeNode{rep: nodestatus.Status{ID: id}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(f.rep)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) port() int {
	_, p, _ := net.SplitHostPort(f.srv.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// report sets the node's last pass as run under version.
func (f *fakeNode) report(version string, inSync bool, unconfirmed, notOwned int, pushed int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rep.ConfigVersion = version
	f.rep.PushedTotal = pushed
	f.rep.LastPass = &nodestatus.Pass{ConfigVersion: version, InSync: inSync, Unconfirmed: unconfirmed, NotOwned: notOwned, Ended: time.Now()}
}

// twoLayouts is a configuration of n1 in deployment old and, with target,
// n2 in deployment new; %s is the active deployment.
func twoLayouts(n1, n2 *fakeNode, target bool) string {
	s := fmt.Sprintf(`
master_coordinator: c1
coordinators:
    c1: [127.0.0.1, 4701]
active_deployment: %%s
deployments:
    old:
        buckets:
            b1: {n1: [127.0.0.1, %d, 4711]}
`, n1.port())
	if target {
		s += fmt.Sprintf(`    new:
        buckets:
            b1: {n2: [127.0.0.1, %d, 4712]}
`, n2.port())
	}
	return s
}

// TestMigrationStatus drives the state machine from the nodes' reports:
// copying until every node of the active deployment reports a pass in sync
// under the migration's configuration, ready then; a finishing edit is held
// back until ready (or forced); dropping until the old node has let go.
func TestMigrationStatus(t *testing.T) {
	n1, n2 := startFakeNode(t, "n1"), startFakeNode(t, "n2")
	layout := func(target bool) string { return twoLayouts(n1, n2, target) }
	c, path, _, _ := newCoordinator(t, fmt.Sprintf(layout(false), "old"), time.Hour)
	check := func(want string) Status {
		t.Helper()
		st := c.status(t.Context(), c.Config())
		if st.Migration.State != want {
			t.Fatalf("state %s, want %s: %+v", st.Migration.State, want, st.Migration)
		}
		return st
	}
	n1.report(c.Config().Version, true, 0, 0, 0)
	check(StateNone)

	migrating := fmt.Sprintf(layout(true), "old") + "target_deployment: new\n"
	writeFile(t, path, migrating)
	c.check()
	c.check()
	v := c.Config().Version
	if c.Config().Target != "new" {
		t.Fatalf("migration not served: %+v", c.Config())
	}
	check(StateCopying) // n1's pass predates the migration
	n1.report(v, false, 40, 0, 10)
	if st := check(StateCopying); st.Migration.Remaining != 40 || len(st.Migration.Waiting) != 1 {
		t.Fatalf("progress: %+v", st.Migration)
	}
	n1.report(v, false, 5, 0, 45)
	if st := check(StateCopying); st.Migration.Copied != 45 || st.Migration.ETASeconds == nil {
		t.Fatalf("progress: %+v", st.Migration)
	}

	// Finishing now is held back.
	finished := fmt.Sprintf(layout(true), "new")
	writeFile(t, path, finished)
	c.check()
	c.check()
	if c.Config().Version != v || c.pendingVersion() == "" {
		t.Fatalf("finish before ready applied: serving %s, pending %q", c.Config().Version, c.pendingVersion())
	}
	c.retryPending()
	if c.Config().Version != v {
		t.Fatal("finish applied while still copying")
	}
	n1.report(v, true, 0, 0, 50)
	check(StateReady)
	c.retryPending()
	if c.Config().Active != "new" || c.pendingVersion() != "" {
		t.Fatalf("finish not applied once ready: %+v pending %q", c.Config().Active, c.pendingVersion())
	}
	// n1 is no longer named and still holds keys: dropping until it reports none.
	n1.report(c.Config().Version, true, 0, 12, 50)
	n2.report(c.Config().Version, true, 0, 0, 0)
	check(StateDropping)
	n1.report(c.Config().Version, true, 0, 0, 50)
	check(StateNone)
}

// A finish held back applies at once when forced.
func TestForceFinish(t *testing.T) {
	n1, n2 := startFakeNode(t, "n1"), startFakeNode(t, "n2")
	c, path, url, _ := newCoordinator(t, fmt.Sprintf(twoLayouts(n1, n2, true), "old")+"target_deployment: new\n", time.Hour)
	force := func() int {
		t.Helper()
		resp, err := http.Post(url+PathForceFinish, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := force(); code != http.StatusConflict {
		t.Fatalf("force with nothing pending: %d", code)
	}
	writeFile(t, path, fmt.Sprintf(twoLayouts(n1, n2, true), "new"))
	c.check()
	c.check()
	if c.Config().Active != "old" || c.pendingVersion() == "" {
		t.Fatalf("finish of a migration with no reports applied")
	}
	if code := force(); code != http.StatusOK || c.Config().Active != "new" {
		t.Fatalf("forced finish: %d, active %s", code, c.Config().Active)
	}
}

// TestStatusOverTLS: with tls_cert_file set, the coordinator asks nodes for their reports
// over HTTPS, verified against tls_ca_file; a node whose certificate another CA signed is
// down.
func TestStatusOverTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	for _, c := range []struct {
		signer *tlstest.CA
		up     bool
	}{{ca, true}, {other, false}} {
		n1 := &fakeNode{rep: nodestatus.Status{ID: "n1"}}
		n1.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			json.NewEncoder(w).Encode(n1.rep)
		}))
		n1.srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.signer.Leaf(t, "n1").TLS(t)}}
		n1.srv.StartTLS()
		t.Cleanup(n1.srv.Close)
		dir := t.TempDir()
		f := ca.WriteFiles(t, dir, ca.Leaf(t, "c1"))
		text := fmt.Sprintf(twoLayouts(n1, n1, false), "old") +
			f.ConfigKeys()
		coord, _, _, _ := newCoordinator(t, text, time.Hour)
		st := coord.status(t.Context(), coord.Config())
		if v := st.Nodes[0]; v.Up != c.up || (!c.up && !strings.Contains(v.Error, "certificate")) {
			t.Fatalf("node signed by %s: up %v (%s), want %v", c.signer.Cert.Subject.CommonName, v.Up, v.Error, c.up)
		}
	}
}

// TestHeldBackEdits: what a migration's hold-back does with edits beyond a plain finish.
// Going back to the configuration served cancels a held-back finish (the file no longer
// asks for it); a finish that names the next target in the same edit is held back like
// any finish and applies once ready; making active a deployment the migration does not
// copy into is held back for good (only a forced finish serves it). Before, the revert
// left the finish to apply later, and the other two were served at once, before any copy.
func TestHeldBackEdits(t *testing.T) {
	n1, n2 := startFakeNode(t, "n1"), startFakeNode(t, "n2")
	third := fmt.Sprintf("    third:\n        buckets:\n            b1: {n1: [127.0.0.1, %d, 4711]}\n", n1.port())
	doc := func(active, target string) string {
		s := fmt.Sprintf(twoLayouts(n1, n2, true), active) + third
		if target != "" {
			s += "target_deployment: " + target + "\n"
		}
		return s
	}
	for _, tc := range []struct {
		name       string
		edit       string
		revert     bool   // then write the migrating configuration back
		wantActive string // served once the migration is ready
	}{
		{"reverted finish", doc("new", ""), true, "old"},
		{"finish naming the next target", doc("new", "third"), false, "new"},
		{"another deployment made active", doc("third", ""), false, "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			migrating := doc("old", "new")
			c, path, _, _ := newCoordinator(t, migrating, time.Hour)
			v := c.Config().Version
			n1.report(v, false, 5, 0, 0) // still copying
			writeFile(t, path, tc.edit)
			c.check()
			c.check()
			if c.Config().Version != v || c.pendingVersion() == "" {
				t.Fatalf("edit served while copying: active %s target %q, pending %q", c.Config().Active, c.Config().Target, c.pendingVersion())
			}
			if tc.revert {
				writeFile(t, path, migrating)
				c.check()
				c.check()
				if c.pendingVersion() != "" {
					t.Fatalf("the file went back to the configuration served, and a finish is still pending")
				}
			}
			n1.report(v, true, 0, 0, 5) // ready
			c.retryPending()
			if c.Config().Active != tc.wantActive {
				t.Fatalf("once ready: serving active %s, want %s", c.Config().Active, tc.wantActive)
			}
		})
	}
}
