package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/config"
)

// Cluster coordinates requests across each key's replicas; it is the HTTP
// Backend of proxies and of nodes in a multi-node deployment.
//
// Writes go to every replica at once and return after the requested number
// of durable acknowledgements. Reads with read repair ask every replica for
// its timestamp while fetching the value from one (this node's own store
// when it is a replica), return the newest record and push it to replicas
// found older or missing it. Values cross the network once per replica.
type Cluster struct {
	topo    atomic.Pointer[topology]
	self    string
	replica func(config.Node) Replica
	timeout time.Duration
	log     *slog.Logger
	scratch sync.Pool // *routeScratch
}

// ClusterConfig configures a Cluster.
type ClusterConfig struct {
	// Self is this node's ID; empty in a proxy.
	Self string
	// Replica returns the Replica for a node; it is called for every node of
	// each new configuration and should reuse connections by address.
	Replica func(config.Node) Replica
	// Timeout bounds one request to the replicas; default 5s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// NewCluster returns a Cluster routing by cfg.
func NewCluster(cfg *config.Config, cc ClusterConfig) (*Cluster, error) {
	if cc.Timeout <= 0 {
		cc.Timeout = 5 * time.Second
	}
	if cc.Logger == nil {
		cc.Logger = slog.Default()
	}
	c := &Cluster{self: cc.Self, replica: cc.Replica, timeout: cc.Timeout, log: cc.Logger}
	c.scratch.New = func() any { return new(route) }
	return c, c.Update(cfg)
}

// Update switches to a new configuration; requests in flight finish on the
// one they started with.
func (c *Cluster) Update(cfg *config.Config) error {
	t, err := newTopology(cfg, c.self, c.replica)
	if err != nil {
		return fmt.Errorf("cluster: configuration %s: %w", cfg.Version, err)
	}
	c.topo.Store(t)
	return nil
}

// Config returns the configuration in use.
func (c *Cluster) Config() *config.Config { return c.topo.Load().cfg }

// route returns the topology and key's route; release returns the route's
// scratch when the caller is done with it.
func (c *Cluster) route(key []byte) (t *topology, r *route, release func()) {
	t = c.topo.Load()
	r = c.scratch.Get().(*route)
	t.fill(r, key)
	return t, r, func() { c.scratch.Put(r) }
}

// Apply implements httpproxy.Backend.
func (c *Cluster) Apply(key []byte, rec kv.Record, acks httpproxy.Acks) (kv.Result, error) {
	t, rt, release := c.route(key)
	defer release()
	reps := rt.reps
	if t.localOnly(reps) {
		return t.replicas[t.self].Apply(context.Background(), key, rec)
	}
	if acks == httpproxy.AcksDefault {
		acks = t.acks
	}
	// Replicas may still be writing after we answer: give them their own
	// copy rather than the caller's request buffers.
	own := make([]byte, len(key)+len(rec.Value))
	kn := copy(own, key)
	copy(own[kn:], rec.Value)
	key, rec.Value = own[:kn], own[kn:]
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	type reply struct {
		pos int
		res kv.Result
		err error
	}
	n := len(reps)
	replies := make(chan reply, n)
	for pos, i := range reps {
		r := t.replicas[i]
		go func() {
			res, err := r.Apply(ctx, key, rec)
			replies <- reply{pos, res, err}
		}()
	}
	// Every ack reports a timestamp >= rec.TS: rec.TS when applied, the
	// stored one when a newer record beat it.
	res := kv.Result{TS: rec.TS}
	ok := make([]bool, n)
	count, answered := 0, 0
	var lastErr error
	for answered < n && !rt.acked(acks, ok, count) {
		r := <-replies
		answered++
		if r.err != nil {
			lastErr = r.err
			continue
		}
		ok[r.pos] = true
		count++
		res.TS = max(res.TS, r.res.TS)
	}
	res.Applied = res.TS == rec.TS
	go func() { // stragglers keep the context until they finish
		for range n - answered {
			<-replies
		}
		cancel()
	}()
	if !rt.acked(acks, ok, count) {
		return kv.Result{}, fmt.Errorf("%w: %d of %d replicas acknowledged the write, not enough for write_acks %s (%v)",
			httpproxy.ErrUnavailable, count, n, acks, lastErr)
	}
	return res, nil
}

// Stat implements httpproxy.Backend: the newest metadata any replica holds.
func (c *Cluster) Stat(key []byte) (kv.Meta, error) {
	t, rt, release := c.route(key)
	defer release()
	reps := rt.reps
	if t.localOnly(reps) {
		return t.replicas[t.self].Stat(context.Background(), key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	metas := c.statAll(ctx, t, reps, -1, key)
	best := newestMeta(metas)
	if best < 0 {
		return kv.Meta{}, noneFound(metas)
	}
	return metas[best].meta, nil
}

// Get implements httpproxy.Backend.
func (c *Cluster) Get(key, dst []byte) (kv.Record, error) {
	t, rt, release := c.route(key)
	defer release()
	reps := rt.reps
	if t.localOnly(reps) {
		return t.replicas[t.self].Get(context.Background(), key, dst)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	first := t.preferred(reps)
	if !t.readRepair {
		return c.getAny(ctx, t, reps, first, key, dst)
	}
	// Fetch the value from one replica while the others report their
	// timestamps; the value crosses the network a second time only when
	// another replica turns out to be newer.
	type got struct {
		rec kv.Record
		err error
	}
	done := make(chan got, 1)
	go func() {
		rec, err := t.replicas[reps[first]].Get(ctx, key, dst)
		done <- got{rec, err}
	}()
	metas := c.statAll(ctx, t, reps, first, key)
	g := <-done
	metas[first] = statReply{meta: g.rec.Meta(), err: g.err}
	best := newestMeta(metas)
	if best < 0 {
		return kv.Record{}, noneFound(metas)
	}
	rec := g.rec
	if metas[first].err != nil || metas[first].meta != metas[best].meta {
		var err error
		if rec, err = t.replicas[reps[best]].Get(ctx, key, dst); err != nil {
			return kv.Record{}, fmt.Errorf("%w: newest replica failed: %v", httpproxy.ErrUnavailable, err)
		}
	}
	c.repair(t, reps, metas, key, rec)
	return rec, nil
}

// getAny reads from the preferred replica, then the others in order, and
// returns the first answer.
func (c *Cluster) getAny(ctx context.Context, t *topology, reps []int, first int, key, dst []byte) (kv.Record, error) {
	var lastErr error
	for k := range reps {
		i := reps[(first+k)%len(reps)]
		rec, err := t.replicas[i].Get(ctx, key, dst)
		if err == nil || errors.Is(err, kv.ErrNotFound) {
			return rec, err
		}
		lastErr = err
	}
	return kv.Record{}, fmt.Errorf("%w: no replica answered (%v)", httpproxy.ErrUnavailable, lastErr)
}

type statReply struct {
	meta kv.Meta
	err  error
}

// statAll asks every replica but skip for its metadata, in parallel.
func (c *Cluster) statAll(ctx context.Context, t *topology, reps []int, skip int, key []byte) []statReply {
	out := make([]statReply, len(reps))
	var wg sync.WaitGroup
	for k, i := range reps {
		if k == skip {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := t.replicas[i].Stat(ctx, key)
			out[k] = statReply{m, err}
		}()
	}
	wg.Wait()
	return out
}

// newestMeta returns the index of the newest record found, or -1.
func newestMeta(metas []statReply) int {
	best := -1
	for k, m := range metas {
		if m.err != nil {
			continue
		}
		if best < 0 || newerMeta(m.meta, metas[best].meta) {
			best = k
		}
	}
	return best
}

// newerMeta is kv.Newer without values: equal timestamps and kinds count as
// the same record (values tie-break only in background healing).
func newerMeta(a, b kv.Meta) bool {
	return kv.Newer(kv.Record{TS: a.TS, Tombstone: a.Tombstone}, kv.Record{TS: b.TS, Tombstone: b.Tombstone})
}

// noneFound is the error when no replica holds a record: not found if at
// least one replica said so, unavailable if none answered.
func noneFound(metas []statReply) error {
	var lastErr error
	for _, m := range metas {
		if errors.Is(m.err, kv.ErrNotFound) {
			return kv.ErrNotFound
		}
		lastErr = m.err
	}
	return fmt.Errorf("%w: no replica answered (%v)", httpproxy.ErrUnavailable, lastErr)
}

// repair pushes rec to the replicas that answered with an older record or
// none, in the background.
func (c *Cluster) repair(t *topology, reps []int, metas []statReply, key []byte, rec kv.Record) {
	var stale []Replica
	for k, m := range metas {
		if errors.Is(m.err, kv.ErrNotFound) || m.err == nil && newerMeta(rec.Meta(), m.meta) {
			stale = append(stale, t.replicas[reps[k]])
		}
	}
	if len(stale) == 0 {
		return
	}
	own := make([]byte, len(key)+len(rec.Value))
	kn := copy(own, key)
	copy(own[kn:], rec.Value)
	key, rec.Value = own[:kn], own[kn:]
	for _, r := range stale {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			if _, err := r.Apply(ctx, key, rec); err != nil {
				c.log.Warn("read repair failed", "key", fmt.Sprintf("%q", key), "err", err)
			}
		}()
	}
}
