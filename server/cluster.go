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
	"github.com/tako-kv/tako/server/hints"
	"github.com/tako-kv/tako/server/metrics"
)

// Cluster coordinates requests across each key's replicas; it is the HTTP
// Backend of proxies and of nodes in a multi-node deployment.
//
// Writes go to every replica at once and return after the requested number
// of durable acknowledgements. Reads with read repair ask a read quorum of
// replicas — the fewest that can form one — for their timestamps while
// fetching the value from one of them (this node's own store when it is a
// replica), return the newest record and push it to the replicas asked
// that were found older or missing it. The other replicas are asked only
// when one of the quorum fails or is slow; what they miss is hinted
// hand-off's and anti-entropy's to mend. Values cross the network once per
// replica.
type Cluster struct {
	topo    atomic.Pointer[topology]
	prev    atomic.Pointer[topology] // the one before topo, for mayStore
	self    string
	replica func(config.Node) Replica
	timeout time.Duration
	log     *slog.Logger
	scratch sync.Pool // *route
	workers *workers
	hints   *hints.Store  // nil: no hinted hand-off
	hedge   time.Duration // readHedge; tests that count replicas asked raise it
	// switchReads, set before the first Update; tests shorten it.
	switchReads time.Duration
	listLog     httpproxy.LogLimiter // key listings without a node
	metrics     *metrics.Cluster
}

// ClusterConfig configures a Cluster.
type ClusterConfig struct {
	// Self is this node's ID; empty in a proxy.
	Self string
	// Replica returns the Replica for a node; it is called for every node of
	// each new configuration and should reuse connections by address.
	Replica func(config.Node) Replica
	// Timeout bounds background calls to replicas (repairs, healing); the
	// peer clients' RequestTimeout bounds calls on the request path.
	// Default 5s.
	Timeout time.Duration
	// Hints, when set, keeps the writes a replica failed to take, for
	// replayHints to hand off once it answers again.
	Hints  *hints.Store
	Logger *slog.Logger
	// Metrics counts replica errors, write outcomes and read repairs.
	// Default: metrics registered nowhere.
	Metrics *metrics.Cluster
}

// NewCluster returns a Cluster routing by cfg.
func NewCluster(cfg *config.Config, cc ClusterConfig) (*Cluster, error) {
	if cc.Timeout <= 0 {
		cc.Timeout = 5 * time.Second
	}
	if cc.Logger == nil {
		cc.Logger = slog.Default()
	}
	if cc.Metrics == nil {
		cc.Metrics = metrics.NewCluster(nil)
	}
	c := &Cluster{self: cc.Self, replica: cc.Replica, timeout: cc.Timeout, log: cc.Logger, hints: cc.Hints, hedge: readHedge, switchReads: switchReads, metrics: cc.Metrics}
	c.scratch.New = func() any { return &route{done: make(chan *task, 16)} }
	if err := c.Update(cfg); err != nil {
		return nil, err
	}
	c.workers = startWorkers()
	return c, nil
}

// Close stops the Cluster's workers. Requests still in flight (a shutdown
// that timed out) complete on goroutines of their own.
func (c *Cluster) Close() { c.workers.stop() }

// Update switches to a new configuration; requests in flight finish on the
// one they started with. One goroutine calls it at a time (the
// configuration watcher).
func (c *Cluster) Update(cfg *config.Config) error {
	t, err := newTopology(cfg, c.self, c.replica)
	if err != nil {
		return fmt.Errorf("cluster: configuration %s: %w", cfg.Version, err)
	}
	// prev first: mayStore never sees neither the old nor the new one.
	old := c.topo.Load()
	if old != nil && old.cfg.Version != t.cfg.Version {
		c.prev.Store(old)
	}
	t.askAllUntil = askAllAfter(old, cfg, time.Now(), c.switchReads)
	c.topo.Store(t)
	return nil
}

// switchReads is how long reads ask every replica after the active
// deployment changed (a migration finished). Writes acknowledged just before
// counted their quorum in the previous deployment; the new one's replicas
// got them too, but some may only be on their way (a hint, replayed within
// about a second; a straggler, within the peer request timeout) or left to
// anti-entropy, which runs at once after a change. Until then a read quorum
// of the new deployment alone could miss the newest record, so reads ask
// them all.
const switchReads = 30 * time.Second

// askAllAfter is when reads under cfg go back to asking a read quorum: d
// after now when cfg's active deployment differs from old's, old's own
// deadline when it still runs, zero (never asked all) otherwise.
func askAllAfter(old *topology, cfg *config.Config, now time.Time, d time.Duration) time.Time {
	switch {
	case old == nil:
		return time.Time{}
	case old.cfg.Active != cfg.Active:
		return now.Add(d)
	case now.Before(old.askAllUntil):
		return old.askAllUntil
	}
	return time.Time{} // past: reads need not look at the clock
}

// replicaOf returns the node with id in the configuration in use.
func (c *Cluster) replicaOf(id string) (Replica, bool) {
	t := c.topo.Load()
	for i, n := range t.nodes {
		if n.ID == id {
			return t.replicas[i], true
		}
	}
	return nil, false
}

// replicates reports whether the node with id is one of key's replicas in a
// live deployment of the configuration in use, and that configuration's
// version.
func (c *Cluster) replicates(id string, key []byte) (bool, string) {
	t := c.topo.Load()
	return c.replicatesIn(t, id, key), t.cfg.Version
}

// mayStore is replicates, also true when the configuration before the one in
// use made the node a replica of key: processes take a new configuration
// within a poll of each other, and one still on the previous configuration
// writes to the replicas it names (when a migration finishes, the quorum of
// such a writer is the old active deployment's, which may no longer hold the
// key: refusing it would fail the write). What a node stores this way and no
// longer owns, anti-entropy hands to the owners and drops.
func (c *Cluster) mayStore(id string, key []byte) (bool, string) {
	t := c.topo.Load()
	if c.replicatesIn(t, id, key) {
		return true, t.cfg.Version
	}
	prev := c.prev.Load()
	return prev != nil && c.replicatesIn(prev, id, key), t.cfg.Version
}

func (c *Cluster) replicatesIn(t *topology, id string, key []byte) bool {
	r := c.scratch.Get().(*route)
	defer c.release(r)
	t.fill(r, key)
	for _, i := range r.reps {
		if t.nodes[i].ID == id {
			return true
		}
	}
	return false
}

// Config returns the configuration in use.
func (c *Cluster) Config() *config.Config { return c.topo.Load().cfg }

// route returns the topology and key's route; the caller hands the route
// back with release when done with it and every task it submitted.
func (c *Cluster) route(key []byte) (*topology, *route) {
	t := c.topo.Load()
	r := c.scratch.Get().(*route)
	r.refs.Store(1) // the request's
	t.fill(r, key)
	return t, r
}

func (c *Cluster) release(r *route) {
	clear(r.tasks) // drop references to keys, values and replicas
	if cap(r.vbuf) > 1<<20 {
		r.vbuf = nil // do not pin a large value in the pool
	}
	c.scratch.Put(r)
}

// submit runs op against the replica at position pos of the route.
func (c *Cluster) submit(t *topology, r *route, pos int, op taskOp, key []byte, rec kv.Record, dst []byte) {
	tk := &r.tasks[pos]
	i := r.reps[pos]
	*tk = task{op: op, r: t.replicas[i], node: t.nodes[i].ID, self: i == t.self, pos: pos, key: key, rec: rec, dst: dst, done: r.done, rt: r, c: c}
	r.refs.Add(1)
	// A call to a peer is sent from here and answered on the connection's
	// reader goroutine: no worker waits for it (two goroutine switches
	// fewer per call); a large value, or a peer not connected, takes a worker.
	if pr, ok := tk.r.(peerReplica); ok && pr.start(tk) {
		return
	}
	c.workers.submit(tk)
}

// Apply implements httpproxy.Backend.
func (c *Cluster) Apply(key []byte, rec kv.Record, acks httpproxy.Acks) (kv.Result, error) {
	t, rt := c.route(key)
	if t.localOnly(rt.reps) {
		defer c.release(rt)
		return t.replicas[t.self].Apply(context.Background(), key, rec)
	}
	if acks == httpproxy.AcksDefault {
		acks = t.acks
	}
	// Replicas may still be writing after we answer: give them their own
	// copy rather than the caller's request buffers.
	key, rec = ownCopy(key, rec)
	n := len(rt.reps)
	rt.prepare(n)
	for pos := range n {
		c.submit(t, rt, pos, taskApply, key, rec, nil)
	}
	// Every ack reports a timestamp >= rec.TS: rec.TS when applied, the
	// stored one when a newer record beat it.
	count, applied, answered, full := 0, 0, 0, 0
	newest := -1 // position of the ack that named the newest record
	var lastErr error
	for answered < n && !rt.acked(acks, rt.ok, count) {
		tk := <-rt.done
		answered++
		if tk.err != nil {
			lastErr = tk.err
			if diskFull(tk.err) {
				full++
			}
			c.hint(tk)
			continue
		}
		rt.ok[tk.pos] = true
		count++
		switch {
		case tk.res.Applied:
			rt.applied[tk.pos] = true
			applied++
		case newest < 0 || tk.res.TS > rt.tasks[newest].res.TS:
			newest = tk.pos
		}
	}
	ok := rt.acked(acks, rt.ok, count)
	// The write is applied when the replicas that took it form the quorum
	// by themselves; a newer record some others hold is a concurrent write
	// that has not won yet.
	won := rt.acked(acks, rt.applied, applied)
	var winner Replica
	var winnerNode string
	if ok && !won {
		winner, winnerNode = t.replicas[rt.reps[newest]], t.nodes[rt.reps[newest]].ID
	}
	c.finish(rt) // stragglers own the route until they finish
	switch {
	case !ok && full > 0 && full == answered-count:
		// Every replica that refused is out of space: say so (507), not
		// that replicas could not be reached (503).
		c.metrics.Write(acks.String(), metrics.WriteUnavailable)
		return kv.Result{}, fmt.Errorf("%w: %d of %d replicas acknowledged the write, not enough for write_acks %s; the others' disks are nearly full (%v)",
			kv.ErrDiskFull, count, n, acks, lastErr)
	case !ok:
		c.metrics.Write(acks.String(), metrics.WriteUnavailable)
		return kv.Result{}, fmt.Errorf("%w: %d of %d replicas acknowledged the write, not enough for write_acks %s (%v)",
			httpproxy.ErrUnavailable, count, n, acks, lastErr)
	case won:
		c.metrics.Write(acks.String(), metrics.WriteApplied)
		return kv.Result{TS: rec.TS, Applied: true}, nil
	}
	c.metrics.Write(acks.String(), metrics.WriteSuperseded)
	return c.writeBack(key, winnerNode, winner, acks)
}

// writeBack answers a write that lost to a newer record held by only some
// replicas: before the reply names that record (X-Applied: no and its
// X-Timestamp), the record is written to the key's replicas at the same
// write_acks, so that reads agree with the reply.
func (c *Cluster) writeBack(key []byte, node string, winner Replica, acks httpproxy.Acks) (kv.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	newer, err := winner.Get(ctx, key, nil)
	if err != nil {
		c.countError(node, err)
		return kv.Result{}, fmt.Errorf("%w: the write lost to a newer record that could not be read back: %v", httpproxy.ErrUnavailable, err)
	}
	res, err := c.Apply(key, newer, acks)
	if err != nil {
		return kv.Result{}, err
	}
	return kv.Result{TS: res.TS}, nil
}

// drain hints the writes among the tasks that came back after the request
// went on, then releases the route. It runs once every task has come back
// (route.refs), so it never waits.
func (c *Cluster) drain(rt *route) {
	for {
		select {
		case tk := <-rt.done:
			c.hint(tk)
		default:
			c.release(rt)
			return
		}
	}
}

// hint keeps a write that a remote replica failed to take, for hand-off.
// The write's answer never waits for it: hints do not count as acks.
func (c *Cluster) hint(tk *task) {
	if c.hints == nil || tk.op != taskApply || tk.err == nil || tk.self {
		return
	}
	c.hints.Add(tk.node, tk.key, tk.rec.TS, flagsOf(tk.rec.Tombstone), tk.rec.Value)
}

// Stat implements httpproxy.Backend: the newest metadata a read quorum of
// replicas holds.
func (c *Cluster) Stat(key []byte) (kv.Meta, error) {
	t, rt := c.route(key)
	if t.localOnly(rt.reps) {
		defer c.release(rt)
		return t.replicas[t.self].Stat(context.Background(), key)
	}
	quorum := c.ask(t, rt, -1, key)
	defer c.finish(rt)
	best := newestMeta(rt)
	if best < 0 {
		return kv.Meta{}, noneFound(rt, quorum)
	}
	err := c.weakRead(t, quorum)
	if errors.Is(err, httpproxy.ErrUnavailable) {
		return kv.Meta{}, err
	}
	return rt.tasks[best].meta, err
}

// weakRead is the error that goes with a record read without a read quorum:
// ErrNoReadQuorum, or unavailable under strict_reads; nil with a quorum.
func (c *Cluster) weakRead(t *topology, quorum bool) error {
	if quorum {
		return nil
	}
	c.metrics.WeakRead()
	if t.strictReads {
		return fmt.Errorf("%w: fewer than a read quorum of replicas answered (strict_reads)", httpproxy.ErrUnavailable)
	}
	return httpproxy.ErrNoReadQuorum
}

// Get implements httpproxy.Backend.
func (c *Cluster) Get(key, dst []byte) (kv.Record, error) {
	t, rt := c.route(key)
	if t.localOnly(rt.reps) {
		defer c.release(rt)
		return t.replicas[t.self].Get(context.Background(), key, dst)
	}
	first := t.preferred(rt.reps)
	if !t.readRepair {
		defer c.release(rt)
		return c.getAny(t, rt, first, key, dst)
	}
	// Fetch the value from one replica while the others report their
	// timestamps; the value crosses the network a second time only when
	// another replica turns out to be newer.
	quorum := c.ask(t, rt, first, key)
	defer c.finish(rt)
	best := newestMeta(rt)
	if best < 0 {
		return kv.Record{}, noneFound(rt, quorum)
	}
	weak := c.weakRead(t, quorum)
	if errors.Is(weak, httpproxy.ErrUnavailable) {
		return kv.Record{}, weak
	}
	newest := rt.tasks[best].meta
	var rec kv.Record
	if g := &rt.tasks[first]; rt.ok[first] && g.err == nil && g.meta == newest {
		rec = g.rec
		rec.Value = append(dst[:0], g.rec.Value...)
	} else {
		var err error
		if rec, err = t.replicas[rt.reps[best]].Get(context.Background(), key, dst); err != nil {
			c.countError(t.nodes[rt.reps[best]].ID, err)
			return kv.Record{}, fmt.Errorf("%w: newest replica failed: %v", httpproxy.ErrUnavailable, err)
		}
	}
	if stale := c.staleReplicas(t, rt, rec.Meta()); len(stale) > 0 {
		c.repair(t, stale, key, rec)
	}
	return rec, weak
}

// getAny reads from the preferred replica, then the others in order, and
// returns the first record found. Not-found moves on too: with quorum
// writes, the replica asked first may be one that missed the write. Nothing
// found is a 404 only when the replicas that said so form a read quorum.
func (c *Cluster) getAny(t *topology, rt *route, first int, key, dst []byte) (kv.Record, error) {
	var lastErr error
	rt.prepare(len(rt.reps))
	for k := range rt.reps {
		pos := (first + k) % len(rt.reps)
		rec, err := t.replicas[rt.reps[pos]].Get(context.Background(), key, dst)
		switch {
		case err == nil:
			return rec, nil
		case errors.Is(err, kv.ErrNotFound):
			rt.ok[pos] = true
		default:
			lastErr = err
			c.countError(t.nodes[rt.reps[pos]].ID, err)
		}
	}
	if rt.readQuorum(rt.ok) {
		return kv.Record{}, kv.ErrNotFound
	}
	return kv.Record{}, fmt.Errorf("%w: no replica holds the key and too few answered to be sure (%v)", httpproxy.ErrUnavailable, lastErr)
}

// readGrace is how long a read waits for the replicas beyond a read quorum,
// to repair them too; a slow or hung replica costs a read no more.
const readGrace = 5 * time.Millisecond

// readHedge is how long a read waits for the replicas it asked before it
// asks the others too. It is well above a loaded node's p99 on loopback
// (a few ms), so that hedging rarely adds load to a busy cluster, and well
// below the peer request timeout, so that a hung replica (paused, or
// partitioned away) costs a read no more than this.
const readHedge = 20 * time.Millisecond

// ask asks the replicas for their metadata in parallel — the one at getAt
// (when >= 0) for its whole record, into the route's buffer. It asks a read
// quorum first (pickQuorum) and the rest only when one of those fails, has
// not answered within readHedge (c.hedge), or the quorum holds nothing; it
// asks them all at once for switchReads after the active deployment
// changed. It waits until all it asked have returned, or a read quorum has
// answered and readGrace (after a miss: readHedge) has passed. Answers
// are the tasks marked in rt.ok: a record or not-found; a replica that
// failed, or was not asked, has not been heard. It reports whether the
// answers form a read quorum; release the route with finish.
func (c *Cluster) ask(t *topology, rt *route, getAt int, key []byte) (quorum bool) {
	// A read answers once a quorum has, and the caller may then reuse its
	// key buffer while a straggler's task still waits for a worker: the
	// tasks read the route's copy, which lives until the last comes back.
	rt.kbuf = append(rt.kbuf[:0], key...)
	key = rt.kbuf
	n := len(rt.reps)
	rt.prepare(n)
	first := getAt
	if first < 0 {
		first = t.preferred(rt.reps)
	}
	asked := n
	if t.askAllUntil.IsZero() || !time.Now().Before(t.askAllUntil) {
		asked = rt.pickQuorum(first)
	} else {
		rt.markAll()
	}
	c.askMarked(t, rt, getAt, key)
	var hedge, grace <-chan time.Time
	if asked < n {
		hedge = resetTimer(&rt.hedge, c.hedge)
	}
	returned := 0
	for returned < asked {
		if grace == nil && rt.readQuorum(rt.ok) {
			grace = resetTimer(&rt.grace, readGrace)
		}
		select {
		case tk := <-rt.done:
			returned++
			rt.back[tk.pos] = true
			if tk.op == taskGet {
				rt.vbuf = tk.rec.Value[:0] // keep the grown buffer
				tk.meta = tk.rec.Meta()
			}
			rt.ok[tk.pos] = tk.err == nil || errors.Is(tk.err, kv.ErrNotFound)
			if !rt.ok[tk.pos] && asked < n {
				asked = c.askRest(t, rt, key)
				hedge = nil
			}
			if returned == asked && asked < n && newestMeta(rt) < 0 {
				// Nothing found among a read quorum. In steady state that is
				// a miss; but a write acknowledged under another quorum (the
				// active deployment's, just before a migration finished) may
				// so far be only on the others: a miss asks them too, and
				// waits for them up to readHedge.
				asked = c.askRest(t, rt, key)
				hedge, grace = nil, resetTimer(&rt.grace, c.hedge)
			}
		case <-hedge:
			asked = c.askRest(t, rt, key)
			hedge = nil
		case <-grace:
			stopTimers(rt)
			return true
		}
	}
	stopTimers(rt)
	return rt.readQuorum(rt.ok)
}

// askMarked submits a task to every replica marked in rt.asked that has
// none yet: a Get to the one at getAt, Stats to the others.
func (c *Cluster) askMarked(t *topology, rt *route, getAt int, key []byte) {
	for pos, ask := range rt.asked {
		if !ask || rt.sent[pos] {
			continue
		}
		rt.sent[pos] = true
		if pos == getAt {
			c.submit(t, rt, pos, taskGet, key, kv.Record{}, rt.vbuf)
		} else {
			c.submit(t, rt, pos, taskStat, key, kv.Record{}, nil)
		}
	}
}

// askRest asks every replica not asked yet for its metadata and returns how
// many have been asked in all.
func (c *Cluster) askRest(t *topology, rt *route, key []byte) int {
	rt.markAll()
	c.askMarked(t, rt, -1, key)
	return len(rt.asked)
}

// resetTimer (re)arms *tp for d and returns its channel; timers are reused
// with the route, so a read allocates none.
func resetTimer(tp **time.Timer, d time.Duration) <-chan time.Time {
	if *tp == nil {
		*tp = time.NewTimer(d)
	} else {
		(*tp).Reset(d)
	}
	return (*tp).C
}

func stopTimers(rt *route) {
	if rt.grace != nil {
		rt.grace.Stop()
	}
	if rt.hedge != nil {
		rt.hedge.Stop()
	}
}

// finish lets go of a route whose request submitted tasks: it is drained and
// released now if they have all come back, else by the last one to come
// back (task.run), so that no goroutine waits for stragglers.
func (c *Cluster) finish(rt *route) {
	if rt.unref() {
		c.drain(rt)
	}
}

// newestMeta returns the position of the newest record among the answers,
// or -1.
func newestMeta(rt *route) int {
	best := -1
	for k := range rt.tasks {
		if !rt.ok[k] || rt.tasks[k].err != nil {
			continue
		}
		if best < 0 || newerMeta(rt.tasks[k].meta, rt.tasks[best].meta) {
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

// noneFound is the error when no replica that answered holds a record: not
// found when a read quorum said so; unavailable otherwise, since a replica
// that did not answer may hold an acknowledged write.
func noneFound(rt *route, quorum bool) error {
	if quorum {
		return kv.ErrNotFound
	}
	heard := 0
	var lastErr error
	for k := range rt.tasks {
		switch {
		case rt.ok[k]:
			heard++
		case rt.back[k] && rt.tasks[k].err != nil: // a task still running is not ours to read
			lastErr = rt.tasks[k].err
		}
	}
	return fmt.Errorf("%w: no replica holds the key and %d of %d answered, fewer than a read quorum (%v)",
		httpproxy.ErrUnavailable, heard, len(rt.tasks), lastErr)
}

// staleReplicas returns the replicas (indexes into t.nodes) that answered
// with a record older than newest, or none; nil (no allocation) when all are
// current.
func (c *Cluster) staleReplicas(t *topology, rt *route, newest kv.Meta) []int {
	var stale []int
	for k := range rt.tasks {
		if !rt.ok[k] {
			continue
		}
		tk := &rt.tasks[k]
		if errors.Is(tk.err, kv.ErrNotFound) || tk.err == nil && newerMeta(newest, tk.meta) {
			stale = append(stale, rt.reps[k])
		}
	}
	return stale
}

// repair pushes a copy of rec to the stale replicas (indexes into t.nodes)
// in the background.
func (c *Cluster) repair(t *topology, stale []int, key []byte, rec kv.Record) {
	key, rec = ownCopy(key, rec)
	for _, i := range stale {
		c.metrics.ReadRepair()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			if _, err := t.replicas[i].Apply(ctx, key, rec); err != nil {
				c.metrics.ReadRepairFailed()
				c.countError(t.nodes[i].ID, err)
				c.log.Warn("read repair failed", "key", fmt.Sprintf("%q", key), "err", err)
			}
		}()
	}
}

// ownCopy copies key and rec's value into one new buffer, for replica calls
// that may outlive the caller's request buffers.
func ownCopy(key []byte, rec kv.Record) ([]byte, kv.Record) {
	own := make([]byte, len(key)+len(rec.Value))
	kn := copy(own, key)
	copy(own[kn:], rec.Value)
	rec.Value = own[kn:]
	return own[:kn], rec
}
