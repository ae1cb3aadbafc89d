package coordinator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/metrics"
	"github.com/tako-kv/tako/server/nodestatus"
	"github.com/tako-kv/tako/server/tlsconf"
)

// PathStatus serves the cluster's Status; PathForceFinish applies a
// finishing configuration the coordinator refused because the migration was
// not ready.
const (
	PathStatus      = "/status"
	PathForceFinish = "/force-finish"
)

// Migration states.
const (
	StateNone     = "none"     // no target deployment, nothing left to drop
	StateCopying  = "copying"  // target deployment; not every key is on its target owners yet
	StateReady    = "ready"    // every key of the active deployment is on all its target owners
	StateDropping = "dropping" // finished; some node still holds keys it no longer owns
)

// Status is the cluster as the coordinator sees it (GET /status).
type Status struct {
	ConfigVersion string          `json:"config_version"`
	Active        string          `json:"active_deployment"`
	Target        string          `json:"target_deployment,omitempty"`
	Migration     MigrationStatus `json:"migration"`
	Nodes         []NodeView      `json:"nodes"`
}

// MigrationStatus is a migration's state and progress, from the nodes'
// own reports.
type MigrationStatus struct {
	State string `json:"state"`
	// Copied counts the records the nodes pushed since the coordinator first
	// saw this configuration; Remaining the records their last passes could
	// not confirm on every owner (a lower bound while Waiting is not empty).
	Copied    int64 `json:"copied"`
	Remaining int64 `json:"remaining"`
	// ETASeconds estimates the time left from the copy rate; absent when
	// there is no rate yet.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// Waiting names the nodes that keep the state from moving on, and why.
	Waiting []string `json:"waiting,omitempty"`
	// Pending is set while a finishing configuration waits for ready.
	Pending string `json:"pending_version,omitempty"`
}

// NodeView is one node and its report (nil when it did not answer).
type NodeView struct {
	ID          string             `json:"id"`
	Deployments []string           `json:"deployments"`
	Bucket      string             `json:"bucket"`
	Addr        string             `json:"http"`
	Up          bool               `json:"up"`
	Report      *nodestatus.Status `json:"report,omitempty"`
	Error       string             `json:"error,omitempty"`
}

// tracker remembers what progress needs between two looks at the nodes.
type tracker struct {
	mu       sync.Mutex
	version  string
	baseline map[string]int64 // node -> PushedTotal when first seen under version
	lastAt   time.Time
	lastCopy int64
	rate     float64 // records per second
	// previous holds the nodes of the configuration before the last one,
	// which may still hold keys to hand off (dropping).
	previous []config.Node
}

// nodeClient asks nodes for their reports: over HTTPS, verified against tls_ca_file,
// when the configuration the coordinator started with sets tls_cert_file (read at start).
type nodeClient struct {
	c      *http.Client
	scheme string
}

func newNodeClient(cfg *config.Config, base string) (nodeClient, error) {
	nc := nodeClient{c: &http.Client{Timeout: 2 * time.Second}, scheme: "http://"}
	if cfg.TLSCertFile == "" {
		return nc, nil
	}
	pool, err := tlsconf.LoadCA("tls_ca_file", cfg.TLSFiles(base).CA)
	if err != nil {
		return nodeClient{}, err
	}
	nc.c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	nc.scheme = "https://"
	return nc, nil
}

// status asks every node of cfg (and of the previous configuration, while
// they may still hold keys) for its report and derives the migration state.
func (c *Coordinator) status(ctx context.Context, cfg *config.Config) Status {
	st := Status{ConfigVersion: cfg.Version, Active: cfg.Active, Target: cfg.Target}
	nodes := cfg.Nodes()
	c.track.mu.Lock()
	for _, n := range c.track.previous {
		if !slices.ContainsFunc(nodes, func(m config.Node) bool { return m.ID == n.ID }) {
			nodes = append(nodes, n)
		}
	}
	c.track.mu.Unlock()
	st.Nodes = make([]NodeView, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		st.Nodes[i] = NodeView{ID: n.ID, Bucket: n.Bucket, Addr: n.HTTPAddr(), Deployments: deploymentsOf(cfg, n.ID)}
		wg.Add(1)
		go func() { defer wg.Done(); c.fetchReport(ctx, &st.Nodes[i]) }()
	}
	wg.Wait()
	st.Migration = c.migration(cfg, st.Nodes)
	return st
}

func deploymentsOf(cfg *config.Config, id string) []string {
	var out []string
	for _, d := range []*config.Deployment{cfg.ActiveDeployment(), cfg.TargetDeployment()} {
		if _, ok := d.FindNode(id); ok {
			out = append(out, d.Name)
		}
	}
	return out
}

func (c *Coordinator) fetchReport(ctx context.Context, v *NodeView) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.nodes.scheme+v.Addr+nodestatus.Path, nil)
	if err == nil {
		c.authorize(req)
		var resp *http.Response
		if resp, err = c.nodes.c.Do(req); err == nil {
			defer resp.Body.Close()
			var rep nodestatus.Status
			switch {
			case resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("status %d", resp.StatusCode)
			default:
				if err = json.NewDecoder(resp.Body).Decode(&rep); err == nil {
					v.Up, v.Report = true, &rep
				}
			}
		}
	}
	if err != nil {
		v.Error = err.Error()
	}
}

// migration derives the state from the reports. A node's report counts only
// for a pass run under the configuration being served.
func (c *Coordinator) migration(cfg *config.Config, nodes []NodeView) MigrationStatus {
	var m MigrationStatus
	t := &c.track
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.version != cfg.Version {
		t.version, t.baseline, t.lastAt, t.lastCopy, t.rate = cfg.Version, map[string]int64{}, time.Time{}, 0, 0
	}
	active := cfg.ActiveDeployment()
	for _, v := range nodes {
		_, inActive := active.FindNode(v.ID)
		_, named := cfg.FindNode(v.ID)
		rep := v.Report
		if rep != nil {
			if _, ok := t.baseline[v.ID]; !ok {
				t.baseline[v.ID] = rep.PushedTotal
			}
			m.Copied += rep.PushedTotal - t.baseline[v.ID]
		}
		var pass *nodestatus.Pass
		if rep != nil && rep.LastPass != nil && rep.LastPass.ConfigVersion == cfg.Version {
			pass = rep.LastPass
		}
		switch {
		case cfg.Target != "" && !inActive:
			// A target node receives; it has nothing to copy.
		case cfg.Target != "" && pass == nil:
			m.Waiting = append(m.Waiting, v.ID+": no anti-entropy pass under this configuration yet"+reason(v))
		case cfg.Target != "":
			m.Remaining += int64(pass.Unconfirmed)
			if !pass.InSync || rep.Hints.Pending > 0 {
				m.Waiting = append(m.Waiting, fmt.Sprintf("%s: %d records unconfirmed, %d hints pending %s",
					v.ID, pass.Unconfirmed, rep.Hints.Pending, pass.Err))
			}
		case pass == nil && (v.Up || named):
			m.Waiting = append(m.Waiting, v.ID+": no anti-entropy pass under this configuration yet"+reason(v))
		case pass != nil && pass.NotOwned > 0:
			m.Remaining += int64(pass.NotOwned)
			m.Waiting = append(m.Waiting, fmt.Sprintf("%s: holds %d records it no longer owns", v.ID, pass.NotOwned))
		}
	}
	switch {
	case cfg.Target != "" && len(m.Waiting) == 0:
		m.State = StateReady
	case cfg.Target != "":
		m.State = StateCopying
	case len(m.Waiting) > 0 && len(t.previous) > 0:
		m.State = StateDropping
	default:
		m.State = StateNone
		t.previous = nil // nothing left to hand off
	}
	now := time.Now()
	if !t.lastAt.IsZero() && now.Sub(t.lastAt) > 0 && m.Copied > t.lastCopy {
		t.rate = float64(m.Copied-t.lastCopy) / now.Sub(t.lastAt).Seconds()
	}
	t.lastAt, t.lastCopy = now, m.Copied
	if t.rate > 0 && m.Remaining > 0 {
		eta := float64(m.Remaining) / t.rate
		m.ETASeconds = &eta
	}
	m.Pending = c.pendingVersion()
	return m
}

func reason(v NodeView) string {
	if v.Error != "" {
		return " (" + v.Error + ")"
	}
	return ""
}

func (c *Coordinator) serveStatus(w http.ResponseWriter, r *http.Request) {
	st := c.status(r.Context(), c.Config())
	w.Header().Set(HeaderVersion, st.ConfigVersion)
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}

// finishing reports whether next ends the migration old runs: reads move
// off its active deployment, to its target (the finish; next may name a new
// target in the same edit) or elsewhere.
func finishing(old, next *config.Config) bool {
	return old.Target != "" && next.Active != old.Active
}

// pendingVersion is the version of a finishing configuration held back, or "".
func (c *Coordinator) pendingVersion() string {
	if p := c.pending.Load(); p != nil {
		return p.Version
	}
	return ""
}

// serveForceFinish applies the held-back finishing configuration now.
func (c *Coordinator) serveForceFinish(w http.ResponseWriter, r *http.Request) {
	p := c.pending.Swap(nil)
	if p == nil {
		http.Error(w, "no finishing configuration is waiting", http.StatusConflict)
		return
	}
	c.log.Warn("finishing the migration before it is ready, as asked", "version", p.Version)
	if err := c.serve(p); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "serving %s\n", p.Version)
}

// view is the cluster for the coordinator's metrics: the status of now.
func (c *Coordinator) view() metrics.ClusterView {
	ctx, cancel := context.WithTimeout(context.Background(), c.nodes.c.Timeout)
	defer cancel()
	st := c.status(ctx, c.Config())
	v := metrics.ClusterView{ConfigVersion: st.ConfigVersion, Changes: c.changes.Load(), Refused: c.refused.Load(),
		Migration: st.Migration.State, Copied: st.Migration.Copied, Remaining: st.Migration.Remaining,
		ETASeconds: st.Migration.ETASeconds, FinishPending: st.Migration.Pending != ""}
	for _, n := range st.Nodes {
		v.Nodes = append(v.Nodes, metrics.NodeUp{ID: n.ID, Bucket: n.Bucket, Up: n.Up})
	}
	return v
}
