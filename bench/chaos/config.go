package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tako-kv/tako/hashring"
	"github.com/tako-kv/tako/server/config"
)

// Phase is where a cluster is in its migration (Layout.Grow > 0); a cluster without one stays
// in PhaseInitial.
type Phase int

const (
	PhaseInitial   Phase = iota // deployment "chaos" active
	PhaseMigrating              // target_deployment "grown": Grow more buckets
	PhaseGrown                  // "grown" active
)

func (p Phase) String() string {
	return [...]string{"initial", "migrating to grown", "grown"}[p]
}

// configYAML renders the configuration of phase p, every node on the same two ports.
func (l Layout) configYAML(p Phase, h hostPlan, httpPort, peerPort int) string {
	var b strings.Builder
	if l.Grow > 0 {
		fmt.Fprintf(&b, "coordinators: {c1: [%s, %d]}\n", h.coordHost(), httpPort)
	}
	switch p {
	case PhaseInitial:
		b.WriteString("active_deployment: chaos\n")
	case PhaseMigrating:
		b.WriteString("active_deployment: chaos\ntarget_deployment: grown\n")
	case PhaseGrown:
		b.WriteString("active_deployment: grown\n")
	}
	fmt.Fprintf(&b, "storage: {sync: always, memtable_bytes: 4MiB, cache_bytes: 8MiB, min_free_bytes: %s}\n", l.minFree())
	b.WriteString("deployments:\n")
	l.deploymentYAML(&b, h, "chaos", l.Buckets, httpPort, peerPort)
	if p != PhaseInitial {
		l.deploymentYAML(&b, h, "grown", l.Buckets+l.Grow, httpPort, peerPort)
	}
	return b.String()
}

func (l Layout) minFree() string {
	if l.MinFreeBytes == "" {
		return "12MiB"
	}
	return l.MinFreeBytes
}

// deploymentYAML renders one deployment of buckets b1..bN; node i is always in bucket
// ceil(i/Mirrors), so a grown deployment adds nodes without moving any.
func (l Layout) deploymentYAML(b *strings.Builder, h hostPlan, name string, buckets, httpPort, peerPort int) {
	fmt.Fprintf(b, "  %s:\n    read_repair: yes\n    background_healing: yes\n", name)
	fmt.Fprintf(b, "    background_healing_interval: %s\n", l.HealEvery)
	if l.TombstoneGrace > 0 {
		fmt.Fprintf(b, "    tombstone_grace: %s\n", l.TombstoneGrace)
	}
	fmt.Fprintf(b, "    write_acks: %s\n    hash: {buckets_per_key: %d}\n    buckets:\n", l.WriteAcks, l.PerKey)
	i := 0
	for bk := 1; bk <= buckets; bk++ {
		fmt.Fprintf(b, "      b%d:\n", bk)
		for range l.Mirrors {
			i++
			fmt.Fprintf(b, "        n%d: [%s, %d, %d]\n", i, h.nodeHost(i), httpPort, peerPort)
		}
	}
}

// placement is one live deployment compiled for Replicas.
type placement struct {
	ring    *hashring.Ring
	perKey  int
	buckets [][]string // node ids per bucket index
}

// writeConfig writes phase p's configuration and loads it back: the harness reads it
// exactly as the processes do.
func (c *Cluster) writeConfig(p Phase) error {
	if err := os.WriteFile(c.CfgPath, []byte(c.layout.configYAML(p, c.hosts, c.httpPort, c.peerPort)+c.sec.yaml()), 0o644); err != nil {
		return fmt.Errorf("chaos: write config: %w", err)
	}
	cfg, err := config.Load(c.CfgPath)
	if err != nil {
		return fmt.Errorf("chaos: generated config: %w", err)
	}
	var live []placement
	for _, d := range []*config.Deployment{cfg.ActiveDeployment(), cfg.TargetDeployment()} {
		if d == nil {
			continue
		}
		pl := placement{perKey: d.BucketsPerKey}
		var ids []string
		for _, bk := range d.Buckets {
			ids = append(ids, bk.ID)
			var nodes []string
			for _, n := range bk.Nodes {
				nodes = append(nodes, n.ID)
			}
			pl.buckets = append(pl.buckets, nodes)
		}
		if pl.ring, err = hashring.New(ids, d.RingPoints); err != nil {
			return fmt.Errorf("chaos: ring of %s: %w", d.Name, err)
		}
		live = append(live, pl)
	}
	c.mu.Lock()
	c.Cfg, c.live, c.phase = cfg, live, p
	c.mu.Unlock()
	return nil
}

// Replicas returns the nodes holding key under the current configuration: every node of
// each bucket the ring looks up, in the active and the target deployment, as the servers
// route it.
func (c *Cluster) Replicas(key string) []*Node {
	c.mu.Lock()
	live := c.live
	c.mu.Unlock()
	var out []*Node
	for _, pl := range live {
		for _, b := range pl.ring.Lookup(nil, []byte(key), pl.perKey) {
			for _, id := range pl.buckets[b] {
				if nd := c.Node(id); !slices.Contains(out, nd) {
					out = append(out, nd)
				}
			}
		}
	}
	return out
}

// Members returns the nodes of the current configuration (a grown bucket's nodes join with
// the migration).
func (c *Cluster) Members() []*Node {
	c.mu.Lock()
	cfg := c.Cfg
	c.mu.Unlock()
	var out []*Node
	for _, nd := range c.Nodes {
		if _, ok := cfg.FindNode(nd.ID); ok {
			out = append(out, nd)
		}
	}
	return out
}

// versionWait bounds how long every process may take to pick up a new configuration.
const versionWait = 20 * time.Second

// SetPhase moves the migration to phase p: it publishes the configuration through the
// coordinator, starts nodes that join, and waits until every process serves it.
func (c *Cluster) SetPhase(ctx context.Context, p Phase) error {
	if c.coord == nil {
		return fmt.Errorf("chaos: phase %v: the layout has no migration", p)
	}
	if err := c.writeConfig(p); err != nil {
		return err
	}
	if err := c.waitVersion(ctx, c.coordAddr()); err != nil {
		return err
	}
	if err := c.StartAll(ctx); err != nil {
		return err
	}
	for _, nd := range c.Members() {
		if err := c.waitVersion(ctx, nd.RealHTTP); err != nil {
			return err
		}
	}
	for _, px := range c.Proxies {
		if err := c.waitVersion(ctx, px.Addr); err != nil {
			return err
		}
	}
	return nil
}

// waitVersion polls addr's /health until its X-Config-Version is the current configuration's.
func (c *Cluster) waitVersion(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, versionWait)
	defer cancel()
	hc := c.sec.httpClient(nil, time.Second)
	got := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.sec.url(addr, "/health"), nil)
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got = resp.Header.Get("X-Config-Version"); got == c.Cfg.Version {
				return nil
			}
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("chaos: %s serves configuration %q, not %q, after %v", addr, got, c.Cfg.Version, versionWait)
		}
	}
}
