package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/kv/hlc"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/hints"
)

// memReplica is an in-memory LWW replica that can be taken down.
type memReplica struct {
	mu      sync.Mutex
	recs    map[string]kv.Record
	down    bool
	delay   time.Duration // every call sleeps this long first (a hung node)
	reads   int           // Gets and Stats asked of it
	applies int           // writes asked of it
}

func (m *memReplica) stall() {
	m.mu.Lock()
	d := m.delay
	m.mu.Unlock()
	time.Sleep(d)
}

var errDown = errors.New("replica down")

func (m *memReplica) get(key []byte) (kv.Record, error) {
	m.stall()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.down {
		return kv.Record{}, errDown
	}
	r, ok := m.recs[string(key)]
	if !ok {
		return kv.Record{}, kv.ErrNotFound
	}
	return r, nil
}

func (m *memReplica) Get(_ context.Context, key, dst []byte) (kv.Record, error) {
	r, err := m.get(key)
	r.Value = append(dst[:0], r.Value...)
	return r, err
}

func (m *memReplica) Ping(context.Context) error {
	_, err := m.get(nil)
	if errors.Is(err, kv.ErrNotFound) {
		return nil
	}
	return err
}

func (m *memReplica) Stat(_ context.Context, key []byte) (kv.Meta, error) {
	r, err := m.get(key)
	return r.Meta(), err
}

func (m *memReplica) Apply(_ context.Context, key []byte, rec kv.Record) (kv.Result, error) {
	m.stall()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applies++
	if m.down {
		return kv.Result{}, errDown
	}
	cur, ok := m.recs[string(key)]
	if ok && !kv.Newer(rec, cur) {
		return kv.Result{TS: cur.TS, Applied: !kv.Newer(cur, rec)}, nil
	}
	rec.Value = bytes.Clone(rec.Value)
	m.recs[string(key)] = rec
	return kv.Result{TS: rec.TS, Applied: true}, nil
}

func (m *memReplica) ApplyBatch(ctx context.Context, recs []codec.Record) ([]kv.Result, error) {
	out := make([]kv.Result, len(recs))
	for i, r := range recs {
		res, err := m.Apply(ctx, r.Key, recordOf(r.TS, r.Flags, r.Value))
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

// segment returns m's records of segment seg in key order.
func (m *memReplica) segment(seg int) ([]string, error) {
	m.stall()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errDown
	}
	var keys []string
	for k := range m.recs {
		if kv.Segment([]byte(k)) == seg {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (m *memReplica) Sums(_ context.Context, shift uint8, ranges []codec.SegmentRange) ([]codec.Sum, error) {
	m.stall()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errDown
	}
	sums := map[int]kv.SegmentSum{}
	for k, r := range m.recs {
		seg := kv.Segment([]byte(k))
		s := sums[seg]
		s.XOR ^= kv.RecordHash([]byte(k), r)
		s.Count++
		sums[seg] = s
	}
	return groupSums(shift, ranges, func(seg int) kv.SegmentSum { return sums[seg] }), nil
}

func (m *memReplica) SegmentRecords(_ context.Context, seg int, fn func([]byte, kv.Meta, uint64)) error {
	keys, err := m.segment(seg)
	if err != nil {
		return err
	}
	for _, k := range keys {
		m.mu.Lock()
		r, ok := m.recs[k]
		m.mu.Unlock()
		if ok {
			fn([]byte(k), r.Meta(), kv.RecordHash([]byte(k), r))
		}
	}
	return nil
}

func (m *memReplica) Keys(_ context.Context, start, end []byte, limit int) ([]codec.Record, []byte, error) {
	m.stall()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, nil, errDown
	}
	var keys []string
	for k := range m.recs {
		if k >= string(start) && (len(end) == 0 || k < string(end)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if limit <= 0 || limit > scanMaxCount {
		limit = scanMaxCount
	}
	var next []byte
	if len(keys) > limit {
		keys, next = keys[:limit], []byte(keys[limit])
	}
	recs := make([]codec.Record, len(keys))
	for i, k := range keys {
		recs[i] = codec.Record{Key: []byte(k), TS: m.recs[k].TS, Flags: flagsOf(m.recs[k].Tombstone)}
	}
	return recs, next, nil
}

func (m *memReplica) Purge(_ context.Context, recs []codec.Record) (int, error) {
	m.stall()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return 0, errDown
	}
	n := 0
	for _, r := range recs {
		want := recordOf(r.TS, r.Flags, r.Value)
		if cur, ok := m.recs[string(r.Key)]; ok && !kv.Newer(cur, want) && !kv.Newer(want, cur) {
			delete(m.recs, string(r.Key))
			n++
		}
	}
	return n, nil
}

func (m *memReplica) set(key string, rec kv.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[key] = rec
}

func (m *memReplica) setDown(d bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = d
}

const sixNodes = `
active_deployment: d1
deployments:
    d1:
        read_repair: %s
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
            b3: {n5: [127.0.0.1, 9005, 9105], n6: [127.0.0.1, 9006, 9106]}
`

type testCluster struct {
	*Cluster
	nodes map[string]*memReplica
}

func newTestCluster(t *testing.T, doc string) *testCluster {
	t.Helper()
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{nodes: map[string]*memReplica{}}
	c, err := NewCluster(cfg, ClusterConfig{Timeout: time.Second, Replica: func(n config.Node) Replica {
		if r, ok := tc.nodes[n.ID]; ok {
			return r
		}
		r := &memReplica{recs: map[string]kv.Record{}}
		tc.nodes[n.ID] = r
		return r
	}})
	if err != nil {
		t.Fatal(err)
	}
	tc.Cluster = c
	return tc
}

// replicasOf returns the IDs of key's replicas, in ring order.
func (tc *testCluster) replicasOf(key string) []string {
	t, rt := tc.route([]byte(key))
	defer tc.release(rt)
	var ids []string
	for _, i := range rt.reps {
		ids = append(ids, t.nodes[i].ID)
	}
	return ids
}

func TestWriteReachesEveryReplica(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	for i := range 50 {
		key := fmt.Sprintf("key-%d", i)
		res, err := tc.Apply([]byte(key), kv.Record{TS: 10, Value: []byte(key)}, httpproxy.AcksAll)
		if err != nil || !res.Applied || res.TS != 10 {
			t.Fatalf("apply %s: %+v %v", key, res, err)
		}
		reps := tc.replicasOf(key)
		if len(reps) != 4 {
			t.Fatalf("%s has %d replicas: %v", key, len(reps), reps)
		}
		for id, n := range tc.nodes {
			_, err := n.get([]byte(key))
			want := contains(reps, id)
			if (err == nil) != want {
				t.Errorf("%s on %s: %v (replica: %v)", key, id, err, want)
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestWriteAcks drives the ack levels through replica failures. The key's
// replicas are reps[0..1] (primary bucket) and reps[2..3] (second bucket).
func TestWriteAcks(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	key := []byte("acks")
	reps := tc.replicasOf("acks")
	f := func(down []int, acks httpproxy.Acks, wantErr bool) {
		t.Helper()
		for i, id := range reps {
			tc.nodes[id].setDown(slices.Contains(down, i))
		}
		_, err := tc.Apply(key, kv.Record{TS: 5, Value: []byte("v")}, acks)
		if gotErr := errors.Is(err, httpproxy.ErrUnavailable); gotErr != wantErr || (err != nil && !gotErr) {
			t.Errorf("acks %s with replicas %v down: err %v, want unavailable=%v", acks, down, err, wantErr)
		}
	}
	// One node of each bucket down: each bucket still holds the write.
	f([]int{0, 2}, httpproxy.AcksQuorum, false)
	f([]int{0, 2}, httpproxy.AcksDefault, false)
	f([]int{0, 2}, httpproxy.AcksAll, true)
	f([]int{0, 2}, httpproxy.AcksOne, false)
	// A whole bucket down: no majority of buckets (2 of 2 needed).
	f([]int{0, 1}, httpproxy.AcksQuorum, true)
	f([]int{0, 1}, httpproxy.AcksOne, false)
	f([]int{0, 1, 2, 3}, httpproxy.AcksOne, true)
	f(nil, httpproxy.AcksAll, false)
}

func TestStaleWriteReportsNewer(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	key := []byte("stale")
	if _, err := tc.Apply(key, kv.Record{TS: 100, Value: []byte("new")}, httpproxy.AcksAll); err != nil {
		t.Fatal(err)
	}
	res, err := tc.Apply(key, kv.Record{TS: 50, Value: []byte("old")}, httpproxy.AcksAll)
	if err != nil || res.Applied || res.TS != 100 {
		t.Fatalf("older write: %+v %v", res, err)
	}
}

// What a quorum write of "newest" leaves when it missed reps[0] (stale) and
// reps[3] (holding an older tombstone): the read asks reps[0] and its
// mirror reps[1], a read quorum, answers the newest record and repairs
// reps[0]. reps[3] is not asked while the quorum answers: it is
// anti-entropy's to mend.
func TestReadRepair(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	tc.hedge = time.Minute // a loaded machine must not make reads ask beyond the quorum
	key := "repair-me"
	reps := tc.replicasOf(key)
	newest := kv.Record{TS: 30, Value: []byte("newest")}
	tc.nodes[reps[0]].set(key, kv.Record{TS: 10, Value: []byte("old")}) // primary is stale
	tc.nodes[reps[1]].set(key, newest)
	tc.nodes[reps[2]].set(key, newest)
	tc.nodes[reps[3]].set(key, kv.Record{TS: 20, Tombstone: true})
	rec, err := tc.Get([]byte(key), nil)
	if err != nil || rec.TS != 30 || string(rec.Value) != "newest" {
		t.Fatalf("get: %+v %v", rec, err)
	}
	waitFor(t, func() bool {
		r, err := tc.nodes[reps[0]].get([]byte(key))
		return err == nil && r.TS == 30 && string(r.Value) == "newest"
	})
	if r, _ := tc.nodes[reps[3]].get([]byte(key)); r.TS != 20 {
		t.Fatalf("replica outside the read quorum was asked and repaired: %+v", r)
	}
}

// A read asks the fewest replicas that form a read quorum, and the others
// only when one of those fails: then it repairs them too.
func TestReadAsksAQuorum(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	tc.hedge = time.Minute // a loaded machine must not make reads ask beyond the quorum
	key := []byte("q")
	reps := tc.replicasOf("q")
	if _, err := tc.Apply(key, kv.Record{TS: 5, Value: []byte("v")}, httpproxy.AcksAll); err != nil {
		t.Fatal(err)
	}
	reads := func() []int {
		var n []int
		for _, id := range reps {
			m := tc.nodes[id]
			m.mu.Lock()
			n = append(n, m.reads)
			m.reads = 0
			m.mu.Unlock()
		}
		return n
	}
	reads()
	if rec, err := tc.Get(key, nil); err != nil || string(rec.Value) != "v" {
		t.Fatalf("get: %+v %v", rec, err)
	}
	if got := reads(); !slices.Equal(got, []int{1, 1, 0, 0}) {
		t.Fatalf("replicas asked (in ring order) %v, want the primary and its mirror", got)
	}
	if _, err := tc.Stat(key); err != nil {
		t.Fatal(err)
	}
	if got := reads(); !slices.Equal(got, []int{1, 1, 0, 0}) {
		t.Fatalf("stat asked %v", got)
	}
	// A miss in the quorum asks the others: a write acknowledged under
	// another deployment's quorum (a migration just finished) may be there.
	if _, err := tc.Get([]byte("absent"), nil); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("absent key: %v", err)
	}
	if got := reads(); !slices.Equal(got, []int{1, 1, 1, 1}) {
		t.Fatalf("a miss asked %v, want every replica", got)
	}
	tc.nodes[reps[3]].set("elsewhere", kv.Record{TS: 3, Value: []byte("e")})
	if rec, err := tc.Get([]byte("elsewhere"), nil); err != nil || string(rec.Value) != "e" {
		t.Fatalf("a record outside the quorum: %+v %v", rec, err)
	}
	reads()
	// reps[3] missed a newer write; the primary's mirror fails: the read
	// asks the other bucket, answers from it and repairs reps[3].
	newer := kv.Record{TS: 9, Value: []byte("newer")}
	for _, id := range reps[:3] {
		tc.nodes[id].set("q", newer)
	}
	tc.nodes[reps[1]].setDown(true)
	if rec, err := tc.Get(key, nil); err != nil || string(rec.Value) != "newer" {
		t.Fatalf("get with the mirror down: %+v %v", rec, err)
	}
	waitFor(t, func() bool {
		r, err := tc.nodes[reps[3]].get(key)
		return err == nil && r.TS == 9
	})
}

func TestReadWithReplicasDown(t *testing.T) {
	for _, rr := range []string{"yes", "no"} {
		tc := newTestCluster(t, fmt.Sprintf(sixNodes, rr))
		key := []byte("k")
		if _, err := tc.Apply(key, kv.Record{TS: 1, Value: []byte("v")}, httpproxy.AcksAll); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.Get([]byte("absent"), nil); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("read_repair=%s absent key, all up: %v", rr, err)
		}
		reps := tc.replicasOf("k")
		for _, id := range reps[:3] {
			tc.nodes[id].setDown(true)
		}
		// The value is found, but one replica is no read quorum: it is
		// served, marked (without read repair any replica's record is).
		wantErr := map[string]error{"yes": httpproxy.ErrNoReadQuorum, "no": nil}[rr]
		if rec, err := tc.Get(key, nil); err != wantErr || string(rec.Value) != "v" {
			t.Fatalf("read_repair=%s, 3 of 4 down: %+v %v", rr, rec, err)
		}
		if m, err := tc.Stat(key); !errors.Is(err, httpproxy.ErrNoReadQuorum) || m.TS != 1 {
			t.Fatalf("read_repair=%s stat: %+v %v", rr, m, err)
		}
		// Nothing found and too few answers: never a 404.
		tc.nodes[reps[3]].mu.Lock()
		delete(tc.nodes[reps[3]].recs, string(key))
		tc.nodes[reps[3]].mu.Unlock()
		if _, err := tc.Get(key, nil); !errors.Is(err, httpproxy.ErrUnavailable) {
			t.Fatalf("read_repair=%s nothing on the one replica up: %v", rr, err)
		}
		tc.nodes[reps[3]].setDown(true)
		if _, err := tc.Get(key, nil); !errors.Is(err, httpproxy.ErrUnavailable) {
			t.Fatalf("read_repair=%s, all down: %v", rr, err)
		}
	}
}

// Buckets {n1,n2} and {n3,n4}, every key on both; quorum writes held by n1
// and n3 only; then n1 down and n3 hung. The two replicas that answer hold
// nothing, but they are no read quorum: the read is a 503, never the 404
// that main answered for every acknowledged write.
func TestReadCountsAnswersNotFailures(t *testing.T) {
	const doc = `
active_deployment: d
deployments:
    d:
        read_repair: %s
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
`
	for _, rr := range []string{"yes", "no"} {
		tc := newTestCluster(t, fmt.Sprintf(doc, rr))
		key := []byte("acked")
		// What a quorum write leaves when n2 and n4 missed it.
		tc.nodes["n1"].set(string(key), kv.Record{TS: 7, Value: []byte("v")})
		tc.nodes["n3"].set(string(key), kv.Record{TS: 7, Value: []byte("v")})
		tc.nodes["n1"].setDown(true)
		tc.nodes["n3"].mu.Lock()
		tc.nodes["n3"].delay, tc.nodes["n3"].down = 200*time.Millisecond, true // hung, then fails
		tc.nodes["n3"].mu.Unlock()
		if _, err := tc.Get(key, nil); !errors.Is(err, httpproxy.ErrUnavailable) {
			t.Fatalf("read_repair=%s get: %v, want unavailable", rr, err)
		}
		if _, err := tc.Stat(key); !errors.Is(err, httpproxy.ErrUnavailable) {
			t.Fatalf("read_repair=%s stat: %v, want unavailable", rr, err)
		}
		// n3 back: b2 answers in full, a read quorum, and n3 has the write.
		tc.nodes["n3"].setDown(false)
		if rec, err := tc.Get(key, nil); string(rec.Value) != "v" || err != nil && rr == "yes" {
			t.Fatalf("read_repair=%s get with n3 back: %+v %v", rr, rec, err)
		}
	}
}

// strict_reads turns a read without a quorum into a 503.
func TestStrictReads(t *testing.T) {
	tc := newTestCluster(t, strings.Replace(fmt.Sprintf(sixNodes, "yes"), "read_repair: yes", "read_repair: yes\n        strict_reads: yes", 1))
	key := []byte("k")
	if _, err := tc.Apply(key, kv.Record{TS: 1, Value: []byte("v")}, httpproxy.AcksAll); err != nil {
		t.Fatal(err)
	}
	reps := tc.replicasOf("k")
	for _, id := range reps[:3] {
		tc.nodes[id].setDown(true)
	}
	if _, err := tc.Get(key, nil); !errors.Is(err, httpproxy.ErrUnavailable) {
		t.Fatalf("strict get: %v", err)
	}
	if _, err := tc.Stat(key); !errors.Is(err, httpproxy.ErrUnavailable) {
		t.Fatalf("strict stat: %v", err)
	}
}

func allDown(tc *testCluster, key string) bool {
	for _, id := range tc.replicasOf(key) {
		if !tc.nodes[id].down {
			return false
		}
	}
	return true
}

func TestMigrationUnionOfReplicas(t *testing.T) {
	doc := `
active_deployment: old
target_deployment: new
deployments:
    old:
        hash: {buckets_per_key: 1}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101]}
    new:
        hash: {buckets_per_key: 1}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101]}
            b2: {n2: [127.0.0.1, 9002, 9102]}
`
	tc := newTestCluster(t, doc)
	moved := 0
	for i := range 40 {
		reps := tc.replicasOf(fmt.Sprintf("m%d", i))
		if reps[0] != "n1" {
			t.Fatalf("active replica not first: %v", reps)
		}
		if len(reps) == 2 {
			moved++
		}
	}
	if moved == 0 || moved == 40 {
		t.Fatalf("%d of 40 keys gained a target replica", moved)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHungReplicaDoesNotHoldRequests: with one replica of a key stalled for
// seconds, quorum writes and read-repair reads still answer from the others
// at once (the bound below is far from both the stall and normal latency).
func TestHungReplicaDoesNotHoldRequests(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	key := []byte("hung")
	reps := tc.replicasOf("hung")
	if _, err := tc.Apply(key, kv.Record{TS: 1, Value: []byte("v1")}, httpproxy.AcksAll); err != nil {
		t.Fatal(err)
	}
	for _, hung := range []string{reps[0], reps[3]} { // the preferred replica, another one
		tc.nodes[hung].mu.Lock()
		tc.nodes[hung].delay = 3 * time.Second
		tc.nodes[hung].mu.Unlock()
		start := time.Now()
		ts := time.Now().UnixMicro()
		if _, err := tc.Apply(key, kv.Record{TS: ts, Value: []byte(hung)}, httpproxy.AcksQuorum); err != nil {
			t.Fatalf("write with %s hung: %v", hung, err)
		}
		rec, err := tc.Get(key, nil)
		if err != nil || string(rec.Value) != hung {
			t.Fatalf("read with %s hung: %q %v", hung, rec.Value, err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("write and read with %s hung took %v", hung, el)
		}
		tc.nodes[hung].mu.Lock()
		tc.nodes[hung].delay = 0
		tc.nodes[hung].mu.Unlock()
	}
}

// TestReadRepairOffFindsQuorumWrite: without read repair a read still finds
// a write that the first replica it asks missed.
func TestReadRepairOffFindsQuorumWrite(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "no"))
	reps := tc.replicasOf("missed")
	tc.nodes[reps[2]].set("missed", kv.Record{TS: 1, Value: []byte("only here")})
	if rec, err := tc.Get([]byte("missed"), nil); err != nil || string(rec.Value) != "only here" {
		t.Fatalf("read: %q %v", rec.Value, err)
	}
	if _, err := tc.Get([]byte("nowhere"), nil); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("absent key: %v", err)
	}
}

// A shutdown that timed out closes the Cluster with requests in flight:
// they must complete, not panic on a closed queue.
func TestCloseWithRequestsInFlight(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	for _, n := range tc.nodes {
		n.delay = 20 * time.Millisecond
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte(fmt.Sprintf("k%d", i))
			for range 5 {
				tc.Apply(key, kv.Record{TS: 1, Value: []byte("v")}, httpproxy.AcksAll)
				tc.Get(key, nil)
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	tc.Close()
	wg.Wait()
}

// A write a replica could not take is hinted by the coordinator and handed
// off once the replica answers again; the hint never counts as an ack.
func TestHintedHandOff(t *testing.T) {
	hs, err := hints.Open("hints", hints.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	cfg, err := config.Parse([]byte(fmt.Sprintf(sixNodes, "yes")))
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*memReplica{}
	c, err := NewCluster(cfg, ClusterConfig{Hints: hs, Replica: func(n config.Node) Replica {
		r := &memReplica{recs: map[string]kv.Record{}}
		nodes[n.ID] = r
		return r
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nodes["n1"].setDown(true)
	written := 0
	now := time.Now().UnixMicro() // hints older than tombstone_grace are dropped
	for i := range 200 {
		key := []byte(fmt.Sprintf("k%d", i))
		if _, err := c.Apply(key, kv.Record{TS: now + int64(i), Value: key}, httpproxy.AcksQuorum); err != nil {
			t.Fatal(err)
		}
		rt := route{}
		c.topo.Load().fill(&rt, key)
		for _, n := range rt.reps {
			if c.topo.Load().nodes[n].ID == "n1" {
				written++
			}
		}
	}
	// k0 again, at write_acks all: refused, and n1's copy hinted once more
	// (when n1 replicates k0), synchronously since the write waits for all.
	_, err = c.Apply([]byte("k0"), kv.Record{TS: now, Value: []byte("v")}, httpproxy.AcksAll)
	extra := 0
	if errors.Is(err, httpproxy.ErrUnavailable) {
		extra = 1
	} else if err != nil {
		t.Fatalf("write_acks all with n1 down: %v", err)
	}
	// The quorum writes' hints come from stragglers, after their replies.
	waitFor(t, func() bool { return hs.Stats().Pending >= written+extra })
	var returned []string
	handOff(context.Background(), hs, c, slog.Default(), "n1", func(n string) { returned = append(returned, n) })
	if len(returned) != 0 || hs.Stats().Pending < written {
		t.Fatalf("hand-off to a node still down: returned %v, %+v", returned, hs.Stats())
	}
	nodes["n1"].setDown(false)
	handOff(context.Background(), hs, c, slog.Default(), "n1", func(n string) { returned = append(returned, n) })
	if written == 0 || len(nodes["n1"].recs) != written || len(returned) != 1 {
		t.Fatalf("n1 holds %d of the %d writes it missed; returned %v", len(nodes["n1"].recs), written, returned)
	}
	if st := hs.Stats(); st.Pending != 0 || st.Replayed < int64(written) {
		t.Fatalf("after hand-off: %+v", st)
	}
}

// TestHintsOlderThanTheGraceAreDropped: a hinted record older than
// tombstone_grace (less the clock skew allowed) is dropped at hand-off, not
// written back: the tombstone that replaced it on the other replicas may
// have been collected since, and the value would come back from the dead.
func TestHintsOlderThanTheGraceAreDropped(t *testing.T) {
	hs, err := hints.Open("hints", hints.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	cfg, err := config.Parse([]byte(`
active_deployment: d
deployments:
    d:
        background_healing_interval: 1m
        tombstone_grace: 1h
        max_clock_skew: 1m
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
`))
	if err != nil {
		t.Fatal(err)
	}
	n1 := &memReplica{recs: map[string]kv.Record{}}
	c, err := NewCluster(cfg, ClusterConfig{Hints: hs, Replica: func(n config.Node) Replica {
		if n.ID == "n1" {
			return n1
		}
		return &memReplica{recs: map[string]kv.Record{}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	for _, tc := range []struct {
		key string
		age time.Duration
	}{
		{"fresh", 0},
		{"inside the grace", 58 * time.Minute},
		{"within the skew of the grace", 59*time.Minute + 30*time.Second},
		{"older than the grace", 2 * time.Hour},
	} {
		hs.Add("n1", []byte(tc.key), now.Add(-tc.age).UnixMicro(), 0, []byte("v"))
	}
	handOff(context.Background(), hs, c, slog.Default(), "n1", nil)
	for _, key := range []string{"fresh", "inside the grace"} {
		if _, ok := n1.recs[key]; !ok {
			t.Errorf("hint of %q was not replayed", key)
		}
	}
	for _, key := range []string{"within the skew of the grace", "older than the grace"} {
		if _, ok := n1.recs[key]; ok {
			t.Errorf("hint of %q was replayed", key)
		}
	}
	if st := hs.Stats(); st.Pending != 0 {
		t.Errorf("hints left after hand-off: %+v", st)
	}
}

// Hints of keys a newer configuration moved away from their node are
// dropped at hand-off, not sent (the node would refuse the whole batch: it
// does not own them) and not left to block the node's other hints.
func TestHintsOfMovedKeysDropped(t *testing.T) {
	hs, err := hints.Open("hints", hints.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	const two = `
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
`
	const three = two + "            b3: {n5: [127.0.0.1, 9005, 9105], n6: [127.0.0.1, 9006, 9106]}\n"
	cfg, err := config.Parse([]byte(two))
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*memReplica{}
	c, err := NewCluster(cfg, ClusterConfig{Hints: hs, Replica: func(n config.Node) Replica {
		if nodes[n.ID] == nil {
			nodes[n.ID] = &memReplica{recs: map[string]kv.Record{}}
		}
		return nodes[n.ID]
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nodes["n1"].setDown(true)
	hinted := 0
	now := time.Now().UnixMicro()
	for i := range 200 {
		key := []byte(fmt.Sprintf("k%d", i))
		_, err := c.Apply(key, kv.Record{TS: now + int64(i), Value: key}, httpproxy.AcksAll)
		if ok, _ := c.replicates("n1", key); ok {
			if !errors.Is(err, httpproxy.ErrUnavailable) {
				t.Fatalf("write_acks all of a key of n1, down: %v", err)
			}
			hinted++
		}
	}
	waitFor(t, func() bool { return hs.Stats().Pending >= hinted })
	cfg3, err := config.Parse([]byte(three))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(cfg3); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for i := range 200 {
		if ok, _ := c.replicates("n1", []byte(fmt.Sprintf("k%d", i))); ok {
			kept++
		}
	}
	if kept == 0 || kept >= hinted {
		t.Fatalf("n1 keeps %d of its %d keys under three buckets; want some moved", kept, hinted)
	}
	nodes["n1"].setDown(false)
	handOff(context.Background(), hs, c, slog.Default(), "n1", nil)
	if got := len(nodes["n1"].recs); got != kept {
		t.Fatalf("n1 got %d records, want the %d it still owns", got, kept)
	}
	for key := range nodes["n1"].recs {
		if ok, _ := c.replicates("n1", []byte(key)); !ok {
			t.Errorf("n1 was sent %q, which it no longer owns", key)
		}
	}
	if st := hs.Stats(); st.Pending != 0 {
		t.Fatalf("hints left after hand-off: %+v", st)
	}
}

// A write that lost, at one replica only, to a newer record still being
// written (B on n3 alone; n4 down) used to answer X-Applied: no with B's
// timestamp while a quorum read right after returned the write's own older
// record. Now the newer record is written back to a quorum first, so the
// reply and the reads agree.
func TestLostWriteNamesAQuorumRecord(t *testing.T) {
	const doc = `
active_deployment: d
deployments:
    d:
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
`
	tc := newTestCluster(t, doc)
	key := []byte("k")
	b := kv.Record{TS: 20, Value: []byte("B, on n3 only so far")}
	tc.nodes["n3"].set(string(key), b)
	tc.nodes["n4"].setDown(true)
	res, err := tc.Apply(key, kv.Record{TS: 10, Value: []byte("A")}, httpproxy.AcksQuorum)
	if err != nil || res.Applied || res.TS != 20 {
		t.Fatalf("write A: %+v %v, want lost to ts 20", res, err)
	}
	tc.nodes["n3"].mu.Lock()
	tc.nodes["n3"].delay = 100 * time.Millisecond // slower than a read's grace
	tc.nodes["n3"].mu.Unlock()
	if r, err := tc.Get(key, nil); err != nil || r.TS != 20 {
		t.Fatalf("read after A's reply named ts 20: %+v %v", r, err)
	}
	tc.nodes["n3"].mu.Lock()
	tc.nodes["n3"].delay = 0
	tc.nodes["n3"].mu.Unlock()
	// A write that won at a quorum is applied, whatever one replica held.
	tc.nodes["n3"].set("k2", kv.Record{TS: 50, Value: []byte("newer on n3")})
	tc.nodes["n4"].setDown(false)
	if res, err := tc.Apply([]byte("k2"), kv.Record{TS: 30, Value: []byte("C")}, httpproxy.AcksQuorum); err != nil || !res.Applied && res.TS != 50 {
		t.Fatalf("write C: %+v %v", res, err)
	}
}

// How far read repair reaches with quorum-sized reads: n1 misses 600 quorum
// writes, then each key is read once. A read asks the key's primary bucket
// (a read quorum of two buckets), so it repairs n1 exactly for the keys whose
// primary bucket is n1's; the others are left to hinted hand-off and
// anti-entropy (with every replica asked, all of n1's keys were repaired).
func TestReadRepairReach(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	tc.hedge = time.Minute // a loaded machine must not make reads ask beyond the quorum
	n1 := tc.nodes["n1"]
	if n1 == nil {
		t.Fatal("no n1")
	}
	n1.setDown(true)
	var held, primary []string
	for i := range 600 {
		key := fmt.Sprintf("k%d", i)
		if _, err := tc.Apply([]byte(key), kv.Record{TS: 1, Value: []byte("v")}, httpproxy.AcksQuorum); err != nil {
			t.Fatal(err)
		}
		reps := tc.replicasOf(key)
		if i := slices.Index(reps, "n1"); i >= 0 {
			held = append(held, key)
			if i < 2 { // n1's bucket comes first: b1 is the key's primary bucket
				primary = append(primary, key)
			}
		}
	}
	// Writes answer at a quorum: wait for the ones to n1 still running.
	waitFor(t, func() bool { n1.mu.Lock(); defer n1.mu.Unlock(); return n1.applies == len(held) })
	n1.setDown(false)
	for i := range 600 {
		if _, err := tc.Get(fmt.Appendf(nil, "k%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	repaired := func() (n int) {
		for _, key := range held {
			if _, err := n1.get([]byte(key)); err == nil {
				n++
			}
		}
		return n
	}
	waitFor(t, func() bool { return repaired() >= len(primary) })
	time.Sleep(20 * time.Millisecond) // a repair beyond the primary bucket's would show now
	if got := repaired(); got != len(primary) {
		t.Fatalf("reads repaired %d of n1's %d keys, want the %d whose primary bucket is n1's", got, len(held), len(primary))
	}
	t.Logf("one read per key repaired %d of the %d keys n1 missed (%.0f%%)", len(primary), len(held), 100*float64(len(primary))/float64(len(held)))
}

// After a migration finishes (the active deployment changes), reads ask every
// replica for switchReads: a write acknowledged by the previous deployment's
// quorum may not be on a read quorum of the new one yet. Then a quorum again.
func TestReadsAskEveryReplicaAfterTheActiveDeploymentChanged(t *testing.T) {
	const doc = `
active_deployment: %s
deployments:
    old:
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
    new:
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
`
	tc := newTestCluster(t, fmt.Sprintf(doc, "old"))
	tc.hedge = time.Minute
	key := []byte("k")
	if _, err := tc.Apply(key, kv.Record{TS: 1, Value: []byte("v")}, httpproxy.AcksAll); err != nil {
		t.Fatal(err)
	}
	asked := func() (n int) {
		if _, err := tc.Get(key, nil); err != nil {
			t.Fatal(err)
		}
		for _, m := range tc.nodes {
			m.mu.Lock()
			if m.reads > 0 {
				n++
			}
			m.reads = 0
			m.mu.Unlock()
		}
		return n
	}
	if n := asked(); n != 2 {
		t.Fatalf("before the change a read asked %d replicas, want 2", n)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(doc, "new")))
	if err != nil {
		t.Fatal(err)
	}
	tc.switchReads = time.Second // the "just after" read must come within it, even on a loaded machine
	if err := tc.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if n := asked(); n != 4 {
		t.Fatalf("just after the active deployment changed a read asked %d replicas, want all 4", n)
	}
	time.Sleep(1200 * time.Millisecond)
	if n := asked(); n != 2 {
		t.Fatalf("after switchReads a read asked %d replicas, want 2", n)
	}
}

// keySpy records the keys its replica's Stats were asked, once each Stat has
// run (after the replica's delay).
type keySpy struct {
	*memReplica
	mu   sync.Mutex
	seen []string
}

func (s *keySpy) Stat(ctx context.Context, key []byte) (kv.Meta, error) {
	m, err := s.memReplica.Stat(ctx, key)
	s.mu.Lock()
	s.seen = append(s.seen, string(key))
	s.mu.Unlock()
	return m, err
}

// TestReadStragglersOwnTheKey: a read answers once a read quorum has, while
// a slow replica's Stat may still be queued; the caller then reuses its key
// buffer (the HTTP handler pools it). The straggler must still ask for the
// key it was given.
func TestReadStragglersOwnTheKey(t *testing.T) {
	cfg, err := config.Parse([]byte(`
active_deployment: d
deployments:
    d:
        read_repair: yes
        hash: {buckets_per_key: 2}
        buckets:
            b1: {n1: [127.0.0.1, 9001, 9101], n2: [127.0.0.1, 9002, 9102]}
            b2: {n3: [127.0.0.1, 9003, 9103], n4: [127.0.0.1, 9004, 9104]}
`))
	if err != nil {
		t.Fatal(err)
	}
	slow := &keySpy{memReplica: &memReplica{recs: map[string]kv.Record{}, delay: 150 * time.Millisecond}}
	others := map[string]*memReplica{}
	c, err := NewCluster(cfg, ClusterConfig{Replica: func(n config.Node) Replica {
		if n.ID == "n2" {
			return slow
		}
		others[n.ID] = &memReplica{recs: map[string]kv.Record{}}
		return others[n.ID]
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A key whose read asks n1 for the value and n2, its mirror, for a Stat:
	// n2 is slow, so the read hedges to b2 and answers without n2.
	var key string
	for i := 0; key == "" && i < 10_000; i++ {
		k := fmt.Sprintf("k%d", i)
		top, rt := c.route([]byte(k))
		if top.nodes[rt.reps[top.preferred(rt.reps)]].ID == "n1" {
			key = k
		}
		c.release(rt)
	}
	if key == "" {
		t.Fatal("no key is read from n1 first")
	}
	rec := kv.Record{TS: time.Now().UnixMicro(), Value: []byte("v")}
	for _, r := range others {
		r.recs[key] = rec
	}
	slow.recs[key] = rec
	buf := []byte(key)
	if got, err := c.Get(buf, nil); err != nil || string(got.Value) != "v" {
		t.Fatalf("get: %q %v", got.Value, err)
	}
	for i := range buf {
		buf[i] = 'X' // the next request's key
	}
	waitFor(t, func() bool { slow.mu.Lock(); defer slow.mu.Unlock(); return len(slow.seen) > 0 })
	if slow.seen[0] != key {
		t.Fatalf("the straggling Stat asked for %q, want %q", slow.seen[0], key)
	}
}

// TestWriteToFullDisksIs507: a write refused by every replica for want of
// space is ErrDiskFull (HTTP 507), over the peer protocol too; refused by one
// for space and by one that is down, it is ErrUnavailable (503). Before, any
// key with more than one replica answered 503: the peer status said only
// "unavailable".
func TestWriteToFullDisksIs507(t *testing.T) {
	full := func(id string) int { // a peer server on a store whose disk is "full"
		store, err := kv.Open(t.TempDir(), kv.Options{MinFreeBytes: 1 << 62})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return startPeerServer(t, id, store, hlc.New(0), nil, slog.Default()).Port
	}
	p1, p2 := full("n1"), full("n2")
	for _, tc := range []struct {
		name      string
		n2Down    bool
		want, not error
	}{
		{"every replica full", false, kv.ErrDiskFull, httpproxy.ErrUnavailable},
		{"one full, one down", true, httpproxy.ErrUnavailable, kv.ErrDiskFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port2 := p2
			if tc.n2Down { // a port nothing listens on
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				port2 = ln.Addr().(*net.TCPAddr).Port
				ln.Close()
			}
			cfg, err := config.Parse([]byte(fmt.Sprintf(`
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, 9001, %d], n2: [127.0.0.1, 9002, %d]}
`, p1, port2)))
			if err != nil {
				t.Fatal(err)
			}
			peers := newPeerPool("proxy", 0, slog.Default())
			defer peers.close()
			c, err := NewCluster(cfg, ClusterConfig{Timeout: time.Second, Replica: peers.replica})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Apply([]byte("k"), kv.Record{TS: time.Now().UnixMicro(), Value: []byte("v")}, httpproxy.AcksQuorum)
			if !errors.Is(err, tc.want) || errors.Is(err, tc.not) {
				t.Fatalf("write: %v; want %v, not %v", err, tc.want, tc.not)
			}
		})
	}
}
