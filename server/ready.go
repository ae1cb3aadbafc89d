package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/valyala/fasthttp"
)

// Readiness. GET /health says the process is alive; GET /ready says whether
// it can take writes: 503, naming the buckets, while some key's buckets have
// too few nodes that answer to meet write_acks; 200 otherwise. Each node of
// the configuration in use is pinged (this node's own store always
// answers); the verdict is kept readyCacheFor, so that frequent probes cost
// one round of pings a second.

// PathReady is where nodes and proxies answer readiness.
const PathReady = "/ready"

const (
	readyPingTimeout = time.Second
	readyCacheFor    = time.Second
)

// readiness serves PathReady for a cluster.
type readiness struct {
	cluster *Cluster
	mu      sync.Mutex // held through a check: concurrent probes share it
	at      time.Time  // when verdict was reached
	verdict string     // "" when ready, else why not
}

// serve answers GET /ready.
func (r *readiness) serve(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		ctx.Error("method not allowed; allowed: GET, HEAD\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	ctx.SetContentType("text/plain; charset=utf-8")
	if why := r.check(); why != "" {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("not ready: " + why + "\n")
		return
	}
	ctx.SetBodyString("ready\n")
}

// check returns why writes cannot be taken now, or "".
func (r *readiness) check() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < readyCacheFor {
		return r.verdict
	}
	t := r.cluster.topo.Load()
	ctx, cancel := context.WithTimeout(context.Background(), readyPingTimeout)
	defer cancel()
	up := t.ping(ctx)
	r.verdict, r.at = "", time.Now()
	if buckets := t.unready(up); len(buckets) > 0 {
		var down []string
		for i, ok := range up {
			if !ok {
				down = append(down, t.nodes[i].ID)
			}
		}
		r.verdict = fmt.Sprintf("buckets %s have too few reachable nodes for write_acks %s (unreachable: %s)",
			strings.Join(buckets, ", "), t.acks, strings.Join(down, ", "))
	}
	return r.verdict
}

// ping pings every node at once and reports, by index into t.nodes, those
// that answered.
func (t *topology) ping(ctx context.Context) []bool {
	up := make([]bool, len(t.nodes))
	var wg sync.WaitGroup
	for i, r := range t.replicas {
		wg.Add(1)
		go func() { defer wg.Done(); up[i] = r.Ping(ctx) == nil }()
	}
	wg.Wait()
	return up
}

// unready returns the IDs of the buckets whose keys cannot be written at
// the deployment's write_acks with only the nodes marked in up (indexes
// into t.nodes), by the rules of route.acked: all needs every replica of
// every live deployment; quorum a majority of a key's buckets in the active
// deployment, each with a node up; one any replica. A bucket is named when
// it is one a failing key's write lacks.
func (t *topology) unready(up []bool) []string {
	var out []string
	add := func(l layout, b int) {
		if id := l.ring.Bucket(b); !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if t.acks == httpproxy.AcksAll {
		for _, l := range t.layouts {
			for b, members := range l.buckets {
				if slices.ContainsFunc(members, func(n int) bool { return !up[n] }) {
					add(l, b)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	l := t.layouts[0]
	down := make([]bool, len(l.buckets))
	for b, members := range l.buckets {
		down[b] = !slices.ContainsFunc(members, func(n int) bool { return up[n] })
	}
	for _, g := range t.keyGroups() {
		alive := 0
		for _, b := range g {
			if !down[b] {
				alive++
			}
		}
		need := len(g)/2 + 1
		if t.acks == httpproxy.AcksOne {
			need = 1
		}
		if alive >= need {
			continue
		}
		for _, b := range g {
			if down[b] {
				add(l, b)
			}
		}
	}
	slices.Sort(out)
	return out
}

// keyGroups returns the bucket lists keys map to in the active deployment,
// computed once.
func (t *topology) keyGroups() [][]int {
	t.groupsOnce.Do(func() { t.groups = t.layouts[0].ring.Groups(t.layouts[0].perKey) })
	return t.groups
}
