package server

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tako-kv/tako/hashring"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/config"
)

// topology is one configuration compiled for routing: the ring of each live
// deployment and every node that can be a replica. It is immutable; a new
// configuration builds a new topology.
type topology struct {
	cfg         *config.Config
	self        int           // index in nodes of this node; -1 in a proxy
	nodes       []config.Node // every node of the active and target deployments
	replicas    []Replica     // parallel to nodes
	layouts     []layout      // active first, then target when migrating
	readRepair  bool
	strictReads bool
	// askAllUntil: until then reads ask every replica, not a read quorum
	// (the active deployment changed: Cluster.Update, switchReads).
	askAllUntil time.Time
	acks        httpproxy.Acks

	plan     *segmentPlan // built on first use by anti-entropy
	planOnce sync.Once

	groups     [][]int // the active deployment's key bucket lists, built on first use by readiness
	groupsOnce sync.Once
}

// segmentPlan is a topology seen by hash segment (kv.Segment): per segment,
// the nodes that replicate its keys in the live deployments, and whether
// ring points divide it (then its keys have different replicas, and the
// nodes are the union of theirs).
type segmentPlan struct {
	lists   [][]int // distinct node sets, indexes into topology.nodes, sorted
	of      []int32 // per segment: index into lists
	divided []bool
}

// nodes returns segment seg's replicas (for a divided segment, every node
// that replicates some of its keys) and whether seg is divided.
func (p *segmentPlan) nodes(seg int) (nodes []int, divided bool) {
	return p.lists[p.of[seg]], p.divided[seg]
}

// segmentPlan returns the topology's segment plan, building it once.
func (t *topology) segmentPlan() *segmentPlan {
	t.planOnce.Do(func() { t.plan = t.buildPlan() })
	return t.plan
}

func (t *topology) buildPlan() *segmentPlan {
	type layoutLists struct {
		lists   [][]int
		of      []int32
		divided []bool
	}
	per := make([]layoutLists, len(t.layouts))
	for i, l := range t.layouts {
		per[i].lists, per[i].of, per[i].divided = l.ring.SegmentLists(kv.SegmentBits, l.perKey)
	}
	p := &segmentPlan{of: make([]int32, kv.NumSegments), divided: make([]bool, kv.NumSegments)}
	index := map[string]int32{}
	var nodes []int
	var key []byte
	for seg := range p.of {
		nodes = nodes[:0]
		for i, l := range t.layouts {
			p.divided[seg] = p.divided[seg] || per[i].divided[seg]
			for _, b := range per[i].lists[per[i].of[seg]] {
				for _, n := range l.buckets[b] {
					if !slices.Contains(nodes, n) {
						nodes = append(nodes, n)
					}
				}
			}
		}
		slices.Sort(nodes)
		key = key[:0]
		for _, n := range nodes {
			key = append(key, byte(n>>8), byte(n))
		}
		li, ok := index[string(key)]
		if !ok {
			li = int32(len(p.lists))
			index[string(key)] = li
			p.lists = append(p.lists, slices.Clone(nodes))
		}
		p.of[seg] = li
	}
	return p
}

// layout is one deployment's placement: its ring and, per bucket index, the
// indexes into topology.nodes of the bucket's nodes.
type layout struct {
	ring    *hashring.Ring
	perKey  int
	buckets [][]int
}

// newTopology compiles cfg; replica returns the Replica for a node.
func newTopology(cfg *config.Config, self string, replica func(config.Node) Replica) (*topology, error) {
	t := &topology{cfg: cfg, nodes: cfg.Nodes(), self: -1}
	index := make(map[string]int, len(t.nodes))
	for i, n := range t.nodes {
		index[n.ID] = i
		if n.ID == self {
			t.self = i
		}
		t.replicas = append(t.replicas, replica(n))
	}
	active := cfg.ActiveDeployment()
	t.readRepair, t.strictReads = active.ReadRepair, active.StrictReads
	acks, err := httpproxy.ParseAcks(active.WriteAcks)
	if err != nil {
		return nil, err
	}
	t.acks = acks
	for _, d := range []*config.Deployment{active, cfg.TargetDeployment()} {
		if d == nil {
			continue
		}
		l, err := newLayout(d, index)
		if err != nil {
			return nil, err
		}
		t.layouts = append(t.layouts, l)
	}
	return t, nil
}

func newLayout(d *config.Deployment, index map[string]int) (layout, error) {
	ids := make([]string, len(d.Buckets))
	l := layout{perKey: d.BucketsPerKey, buckets: make([][]int, len(d.Buckets))}
	for b, bucket := range d.Buckets {
		ids[b] = bucket.ID
		for _, n := range bucket.Nodes {
			l.buckets[b] = append(l.buckets[b], index[n.ID])
		}
	}
	ring, err := hashring.New(ids, d.RingPoints)
	if err != nil {
		return layout{}, fmt.Errorf("deployment %q: %w", d.Name, err)
	}
	l.ring = ring
	return l, nil
}

// route is one key's replicas: reps holds indexes into topology.nodes, and
// groups the key's buckets as positions in reps, group g being
// members[ends[g-1]:ends[g]]. The groups of deployment l (active first, then
// target) are groups[layouts[l-1]:layouts[l]]. Its slices are reused.
type route struct {
	reps, ring, members, ends, layouts []int

	// The request's calls to the replicas: tasks[pos] for reps[pos], each
	// sent back on done when it completes; ok marks the answers (reads) or
	// acknowledgements (writes) received.
	tasks   []task
	ok      []bool
	applied []bool // writes: the acknowledgements that applied the record
	asked   []bool // reads: the replicas to ask (pickQuorum, then all)
	sent    []bool // reads: the replicas asked so far
	back    []bool // reads: the tasks that came back (the others may still be running)
	done    chan *task
	vbuf    []byte      // the value task's buffer, so it may outlive the request
	kbuf    []byte      // reads: the key the tasks ask for, so it may outlive the request
	grace   *time.Timer // bounds the wait for replicas beyond a read quorum
	hedge   *time.Timer // bounds the wait for a read quorum's replicas
	// refs counts the route's holders: the request, and each task it
	// submitted until the task has come back on done. The last to let go
	// drains and releases the route (Cluster.finish, task.run).
	refs atomic.Int32
}

// unref lets go of one reference and reports whether it was the last.
func (r *route) unref() bool { return r.refs.Add(-1) == 0 }

// prepare sizes the per-replica state for n replicas.
func (r *route) prepare(n int) {
	if cap(r.tasks) < n {
		r.tasks = make([]task, n)
		r.ok = make([]bool, n)
		r.applied = make([]bool, n)
		r.asked = make([]bool, n)
		r.sent = make([]bool, n)
		r.back = make([]bool, n)
		if cap(r.done) < n {
			r.done = make(chan *task, n)
		}
	}
	r.tasks, r.ok, r.applied = r.tasks[:n], r.ok[:n], r.applied[:n]
	r.asked, r.sent, r.back = r.asked[:n], r.sent[:n], r.back[:n]
	for _, b := range [...][]bool{r.ok, r.applied, r.asked, r.sent, r.back} {
		clear(b)
	}
}

// fill computes key's route: every node of the key's buckets in each live
// deployment, without duplicates, in ring order (the primary bucket first).
func (t *topology) fill(r *route, key []byte) {
	r.reps, r.members, r.ends, r.layouts = r.reps[:0], r.members[:0], r.ends[:0], r.layouts[:0]
	for _, l := range t.layouts {
		r.ring = l.ring.Lookup(r.ring[:0], key, l.perKey)
		for _, b := range r.ring {
			for _, n := range l.buckets[b] {
				pos := slices.Index(r.reps, n)
				if pos < 0 {
					pos = len(r.reps)
					r.reps = append(r.reps, n)
				}
				r.members = append(r.members, pos)
			}
			r.ends = append(r.ends, len(r.members))
		}
		r.layouts = append(r.layouts, len(r.ends))
	}
}

// groupsWith counts, in the groups g of [from, to), those with any member
// marked in set (any true) or with all members marked (any false).
func (r *route) groupsWith(set []bool, from, to int, any bool) int {
	n := 0
	for g := from; g < to; g++ {
		hit := !any
		for _, pos := range r.group(g) {
			if set[pos] == any {
				hit = any
				break
			}
		}
		if hit {
			n++
		}
	}
	return n
}

// active returns the groups [0, to) of the active deployment.
func (r *route) active() (to int) { return r.layouts[0] }

// acked reports whether the acknowledgements in ok (by position in reps)
// satisfy level a: one replica; every replica; or, for quorum, a majority of
// the key's buckets in the active deployment each with at least one
// acknowledging node. During a migration the target's replicas get every
// write too, but a quorum does not wait for them: a target node that is
// still starting costs no availability, and what it misses is hinted and
// copied by anti-entropy before the migration reports ready.
func (r *route) acked(a httpproxy.Acks, ok []bool, count int) bool {
	switch a {
	case httpproxy.AcksOne:
		return count >= 1
	case httpproxy.AcksAll:
		return count == len(r.reps)
	}
	groups := r.active()
	return r.groupsWith(ok, 0, groups, true) >= groups/2+1
}

// readQuorum reports whether the replicas that answered (by position)
// intersect every possible quorum write, so that a read hearing from them
// sees every write acknowledged at quorum: in the active deployment, more
// groups must have answered in full than a write quorum can leave out.
func (r *route) readQuorum(answered []bool) bool {
	groups := r.active()
	return r.groupsWith(answered, 0, groups, false) >= groups-(groups/2+1)+1
}

// pickQuorum marks in r.asked the fewest replicas that can form a read
// quorum together with the one at position first: readQuorum needs
// groups-(groups/2+1)+1 groups of the active deployment answered in full,
// so it takes that many groups, each time the one with the fewest members
// not marked yet (the group of first comes first). It returns how many
// replicas are marked. With the seed's local_cluster.yaml (two buckets of
// two mirrors per key) that is first and its mirror: two of four.
func (r *route) pickQuorum(first int) int {
	r.asked[first] = true
	groups := r.active()
	if groups > 64 { // beyond the bitmask: ask everyone
		r.markAll()
		return len(r.asked)
	}
	var chosen uint64
	for range groups - (groups/2 + 1) + 1 {
		best, bestCost := -1, 0
		for g := range groups {
			if chosen&(1<<g) != 0 {
				continue
			}
			if cost := r.unmarked(g); best < 0 || cost < bestCost {
				best, bestCost = g, cost
			}
		}
		chosen |= 1 << best
		for _, pos := range r.group(best) {
			r.asked[pos] = true
		}
	}
	n := 0
	for _, a := range r.asked {
		if a {
			n++
		}
	}
	return n
}

// markAll marks every replica to be asked.
func (r *route) markAll() {
	for pos := range r.asked {
		r.asked[pos] = true
	}
}

// group returns the positions in reps of group g's members.
func (r *route) group(g int) []int {
	start := 0
	if g > 0 {
		start = r.ends[g-1]
	}
	return r.members[start:r.ends[g]]
}

// unmarked counts group g's members not marked in r.asked.
func (r *route) unmarked(g int) int {
	n := 0
	for _, pos := range r.group(g) {
		if !r.asked[pos] {
			n++
		}
	}
	return n
}

// preferred returns the position in reps of the replica to read a value
// from: this node when it is one, else the key's first replica.
func (t *topology) preferred(reps []int) int {
	for k, i := range reps {
		if i == t.self {
			return k
		}
	}
	return 0
}

// localOnly reports whether this node is the key's only replica (a
// standalone node): requests then go straight to the store, with no
// fan-out, copies or deadlines.
func (t *topology) localOnly(reps []int) bool {
	return len(reps) == 1 && reps[0] == t.self
}
