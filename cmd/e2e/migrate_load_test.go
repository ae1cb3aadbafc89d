package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/coordinator"
)

// These tests run live migrations under load, as an operator would with
// tako-cluster: a coordinator in the configuration (so every node and the
// proxy follow it), a writer and a reader running through the proxy the
// whole time, the target deployment added, GET /status polled until the
// migration is ready, the finish written, GET /status polled until nothing
// is left to drop. Then every acknowledged write must read back, and every
// node's own store (scanned over the peer protocol) must hold exactly the
// keys it owns; a node the migration removed must be empty or stopped.

// Bounds of the phases.
const (
	readyWithin = 60 * time.Second // target added -> state ready
	noneWithin  = 60 * time.Second // finish written -> state none
	settleWait  = 30 * time.Second // load stopped -> stores hold exactly what they own
)

// layout is one deployment: buckets_per_key and "bucket:node" pairs.
type layout struct {
	perKey  int
	buckets string
}

// migrationCase is a migration from one layout to another.
type migrationCase struct {
	name     string
	from, to layout
}

func TestMigrationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level migrations under load: skipped with -short")
	}
	for _, mc := range []migrationCase{
		{"grow 2 to 3 buckets", layout{2, "b1:n1 b2:n2"}, layout{2, "b1:n1 b2:n2 b3:n3"}},
		{"shrink 3 to 2 buckets", layout{2, "b1:n1 b2:n2 b3:n3"}, layout{2, "b1:n1 b2:n2"}},
		{"buckets_per_key 2 to 3", layout{2, "b1:n1 b2:n2 b3:n3"}, layout{3, "b1:n1 b2:n2 b3:n3"}},
	} {
		t.Run(strings.ReplaceAll(mc.name, " ", "_"), func(t *testing.T) { runMigration(t, mc) })
	}
}

// migrationEnv is one case's cluster: its ports, its documents, its
// tako-cluster.
type migrationEnv struct {
	t        *testing.T
	mc       migrationCase
	coord    int
	proxy    string
	nodes    map[string][2]int // id -> http, peer port
	cfgPath  string
	varDir   string
	launcher *launch
}

func newMigrationEnv(t *testing.T, mc migrationCase) *migrationEnv {
	p := freePorts(t, 2+2*4)
	e := &migrationEnv{t: t, mc: mc, coord: p[0], proxy: fmt.Sprintf("http://127.0.0.1:%d", p[1]), nodes: map[string][2]int{}}
	for i := range 4 {
		e.nodes[fmt.Sprintf("n%d", i+1)] = [2]int{p[2+2*i], p[3+2*i]}
	}
	dir := t.TempDir()
	e.cfgPath = writeConfig(t, dir, e.doc("a", &mc.from, nil))
	e.varDir = filepath.Join(dir, "var")
	e.launcher = startLauncher(t, e.cfgPath, "-p", strconv.Itoa(p[1]), "-v", e.varDir)
	e.launcher.waitRunning(60 * time.Second)
	return e
}

// doc is a configuration with deployment "a" (active unless it is nil) and
// "t" (the target, or the active one when a is nil).
func (e *migrationEnv) doc(active string, a, target *layout) string {
	var b strings.Builder
	fmt.Fprintf(&b, "master_coordinator: c1\ncoordinators:\n    c1: [127.0.0.1, %d]\nactive_deployment: %s\n", e.coord, active)
	if a != nil && target != nil {
		b.WriteString("target_deployment: t\n")
	}
	b.WriteString("deployments:\n")
	for _, d := range []struct {
		name string
		l    *layout
	}{{"a", a}, {"t", target}} {
		name, l := d.name, d.l
		if l == nil {
			continue
		}
		fmt.Fprintf(&b, "    %s:\n        read_repair: yes\n        background_healing: yes\n        background_healing_interval: 2s\n", name)
		fmt.Fprintf(&b, "        hash:\n            buckets_per_key: %d\n        buckets:\n", l.perKey)
		for _, pair := range strings.Fields(l.buckets) {
			bucket, id, _ := strings.Cut(pair, ":")
			fmt.Fprintf(&b, "            %s:\n                %s: [127.0.0.1, %d, %d]\n", bucket, id, e.nodes[id][0], e.nodes[id][1])
		}
	}
	return b.String()
}

// status is the coordinator's GET /status.
func (e *migrationEnv) status() (coordinator.Status, error) {
	var st coordinator.Status
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", e.coord, coordinator.PathStatus))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// awaitState polls GET /status until the coordinator serves version in
// state, within bound.
func (e *migrationEnv) awaitState(version, state string, within time.Duration) {
	e.t.Helper()
	began := time.Now()
	last := "no answer"
	for time.Since(began) < within {
		e.launcher.checkRunning()
		st, err := e.status()
		switch {
		case err != nil:
			last = err.Error()
		case st.ConfigVersion == version && st.Migration.State == state:
			return
		default:
			js, _ := json.Marshal(st.Migration)
			last = "configuration " + st.ConfigVersion + ", migration " + string(js)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("migration state %s at configuration %s not reached within %v; last GET /status: %s", state, version, within, last)
}

// migLoad is the writer and the reader running through the proxy.
type migLoad struct {
	proxy  string
	phase  atomic.Value // string: where the migration is, for failure reports
	began  time.Time
	writes atomic.Int64
	reads  atomic.Int64
	stop   func() // ends the writer and the reader; idempotent

	mu       sync.Mutex
	acked    []int // keys whose POST answered 200, in order
	failures []string
	failed   int
}

func migKey(i int) []byte { return fmt.Appendf(nil, "mig-%05d", i) }

// migValue is key i's value: a few hundred bytes that name it.
func migValue(i int) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "value of mig-%05d;", i), 4+i%16)
}

func (l *migLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	if len(l.failures) < 10 {
		l.failures = append(l.failures, fmt.Sprintf("%6.2fs [%s] ", time.Since(l.began).Seconds(), l.phase.Load())+fmt.Sprintf(format, args...))
	}
}

func (l *migLoad) write(ctx context.Context, i int) {
	code, err := post(ctx, keyURL(l.proxy, migKey(i)), migValue(i))
	if ctx.Err() != nil {
		return // the test ended the load; the write may or may not have landed
	}
	l.writes.Add(1)
	if err != nil || code != http.StatusOK {
		l.fail("POST %s: %d %v", migKey(i), code, err)
		return
	}
	l.mu.Lock()
	l.acked = append(l.acked, i)
	l.mu.Unlock()
}

// writer writes n keys at once, then one new key every pace until ctx ends.
func (l *migLoad) writer(ctx context.Context, n int, pace time.Duration, preloaded chan<- struct{}) {
	i := 0
	for ; i < n && ctx.Err() == nil; i++ {
		l.write(ctx, i)
	}
	close(preloaded)
	for ; ctx.Err() == nil; i++ {
		l.write(ctx, i)
		sleepCtx(ctx, pace)
	}
}

// reader reads random acknowledged keys until ctx ends: each must answer
// 200 with its value (a 404 or a 503 is a lost or unavailable write).
func (l *migLoad) reader(ctx context.Context) {
	for ctx.Err() == nil {
		l.mu.Lock()
		n := len(l.acked)
		i := -1
		if n > 0 {
			i = l.acked[rand.IntN(n)]
		}
		l.mu.Unlock()
		if i < 0 {
			sleepCtx(ctx, 10*time.Millisecond)
			continue
		}
		code, got, err := get(keyURL(l.proxy, migKey(i)))
		if ctx.Err() != nil {
			return
		}
		l.reads.Add(1)
		if err != nil || code != http.StatusOK || !bytes.Equal(got, migValue(i)) {
			l.fail("GET %s: %d, %d bytes (want %d), %v", migKey(i), code, len(got), len(migValue(i)), err)
		}
		sleepCtx(ctx, 2*time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ackedKeys returns the acknowledged keys so far.
func (l *migLoad) ackedKeys() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acked)
}

func (l *migLoad) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed > 0 {
		t.Errorf("%d of %d writes and %d reads failed under load; first ones:\n  %s",
			l.failed, l.writes.Load(), l.reads.Load(), strings.Join(l.failures, "\n  "))
	}
}

func runMigration(t *testing.T, mc migrationCase) {
	e := newMigrationEnv(t, mc)
	l := startLoad(e.proxy)
	defer l.stop()
	final, toReady, toNone := e.migrate(l)
	l.phase.Store("after")
	time.Sleep(500 * time.Millisecond) // some load at the final configuration too
	l.stop()
	l.check(t)

	acked := l.ackedKeys()
	for _, i := range acked {
		if code, got, err := get(keyURL(e.proxy, migKey(i))); err != nil || code != http.StatusOK || !bytes.Equal(got, migValue(i)) {
			t.Errorf("after the migration, GET %s: %d, %d bytes (want %d), %v", migKey(i), code, len(got), len(migValue(i)), err)
		}
	}
	settled := e.checkPlacement(final, acked)
	t.Logf("%s: %d writes (%d acknowledged), %d reads; ready %.1fs after the start, none %.1fs after the finish; "+
		"every store held exactly what it owns %.1fs after the load stopped",
		mc.name, l.writes.Load(), len(acked), l.reads.Load(), toReady.Seconds(), toNone.Seconds(), settled.Seconds())
	e.checkHandoffs(final)
	e.launcher.stop()
}

// startLoad starts the writer (200 keys at once, then one every 10 ms) and
// the reader; stop ends them and waits for them.
func startLoad(proxy string) *migLoad {
	l := &migLoad{proxy: proxy, began: time.Now()}
	l.phase.Store("before")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	preloaded := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); l.writer(ctx, 200, 10*time.Millisecond, preloaded) }()
	go func() { defer wg.Done(); l.reader(ctx) }()
	l.stop = func() { cancel(); wg.Wait() }
	<-preloaded
	return l
}

// migrate runs the migration while l runs: the target deployment appears
// (tako-cluster starts its new nodes), the coordinator says ready, the
// target becomes the only deployment, the coordinator says none. It returns
// the final configuration and how long each step took.
func (e *migrationEnv) migrate(l *migLoad) (final *config.Config, toReady, toNone time.Duration) {
	e.t.Helper()
	migrating := e.doc("a", &e.mc.from, &e.mc.to)
	l.phase.Store("copying")
	began := time.Now()
	e.launcher.edit(e.cfgPath, migrating)
	e.awaitState(mustParse(e.t, migrating).Version, coordinator.StateReady, readyWithin)
	toReady = time.Since(began)

	finished := e.doc("t", nil, &e.mc.to)
	final = mustParse(e.t, finished)
	l.phase.Store("finishing")
	began = time.Now()
	e.launcher.edit(e.cfgPath, finished)
	l.phase.Store("dropping")
	e.awaitState(final.Version, coordinator.StateNone, noneWithin)
	return final, toReady, time.Since(began)
}

// checkHandoffs: every node the migration removed was stopped by
// tako-cluster once it had handed off, never by the timeout.
func (e *migrationEnv) checkHandoffs(final *config.Config) {
	e.t.Helper()
	for _, pair := range strings.Fields(e.mc.from.buckets) {
		_, id, _ := strings.Cut(pair, ":")
		if _, named := final.FindNode(id); named {
			continue
		}
		eventually(e.t, 20*time.Second, "tako-cluster stops "+id+" once it has handed off", func() bool {
			return strings.Contains(e.launcher.out.String(), "stopped "+id+"\n")
		})
	}
	for _, line := range strings.Split(e.launcher.out.String(), "\n") {
		if strings.Contains(line, "handed off") {
			e.t.Log(line)
		}
		if strings.Contains(line, "has not handed off") {
			e.t.Errorf("tako-cluster stopped a node before it had handed off")
		}
	}
}

// checkPlacement waits (bounded) until every node holds exactly the keys
// it owns under final, each with its value (every acknowledged one; others
// may have landed or not), and every node final does not name is stopped or
// empty; it returns how long that took. Writes and read repairs that went
// out under the migrating configuration may land on a node that no longer
// owns their key after the coordinator said none; its next pass hands them
// off, hence the wait.
func (e *migrationEnv) checkPlacement(final *config.Config, acked []int) time.Duration {
	e.t.Helper()
	owners := &cluster{t: e.t, cfg: final}
	owns := func(id, k string) bool { return slices.Contains(owners.replicas([]byte(k)), id) }
	began := time.Now()
	var problems []string
	first := true
	for time.Since(began) < settleWait {
		problems = nil
		for _, id := range sortedNodes(e.nodes) {
			problems = append(problems, e.placementProblems(final, id, owns, acked)...)
		}
		if len(problems) == 0 {
			return time.Since(began)
		}
		if first {
			e.t.Logf("first look at the stores, right after the load stopped: %d differences from the final layout, e.g. %s",
				len(problems), problems[0])
			first = false
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, id := range sortedNodes(e.nodes) {
		e.logHealing(id)
	}
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("and %d more", len(problems)-10))
	}
	e.t.Errorf("%v after the load stopped, stores do not hold exactly what they own:\n  %s", settleWait, strings.Join(problems, "\n  "))
	return time.Since(began)
}

// placementProblems compares node id's store with what it owns. A node
// final does not name must be stopped or empty.
func (e *migrationEnv) placementProblems(final *config.Config, id string, owns func(id, key string) bool, acked []int) []string {
	peer := fmt.Sprintf("127.0.0.1:%d", e.nodes[id][1])
	_, named := final.FindNode(id)
	if c, err := net.DialTimeout("tcp", peer, time.Second); err != nil {
		if named {
			return []string{fmt.Sprintf("%s: not reachable: %v", id, err)}
		}
		return nil // stopped
	} else {
		c.Close()
	}
	held, err := scanStore(peer)
	if err != nil {
		return []string{fmt.Sprintf("%s: scan: %v", id, err)}
	}
	var out []string
	for k, v := range held {
		i, _ := strconv.Atoi(strings.TrimPrefix(k, "mig-"))
		switch {
		case !owns(id, k):
			out = append(out, fmt.Sprintf("%s holds %s, which it does not own", id, k))
		case !bytes.Equal(v, migValue(i)):
			out = append(out, fmt.Sprintf("%s holds %s with a wrong value (%d bytes)", id, k, len(v)))
		}
	}
	for _, i := range acked {
		if k := string(migKey(i)); owns(id, k) && held[k] == nil {
			out = append(out, fmt.Sprintf("%s lacks %s, which it owns", id, k))
		}
	}
	slices.Sort(out)
	return out
}

// logHealing logs what node id's log says of configurations and healing
// passes, to tell a failure's story.
func (e *migrationEnv) logHealing(id string) {
	data, err := os.ReadFile(filepath.Join(e.varDir, id+".log"))
	if err != nil {
		return
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.Contains(line, "healing pass") || strings.Contains(line, "configuration") {
			e.t.Logf("%s: %s", id, line)
		}
	}
}

// scanStore returns every record of the node at peer, key -> value, read
// from its own store over the peer protocol (no routing).
func scanStore(peer string) (map[string][]byte, error) {
	cl := eventloop.NewClient(eventloop.ClientConfig{Addr: peer})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held := map[string][]byte{}
	var start []byte
	for {
		resp, err := cl.Scan(ctx, start, nil, 0, 0, codec.ScanValues)
		if err != nil {
			return nil, err
		}
		if resp.Status != codec.StatusOK {
			st := resp.Status
			resp.Release()
			return nil, fmt.Errorf("scan from %q: %s", start, st)
		}
		for r, ok := resp.Records.Next(); ok; r, ok = resp.Records.Next() {
			held[string(r.Key)] = bytes.Clone(r.Value)
		}
		more := resp.More
		start = bytes.Clone(resp.Next)
		resp.Release()
		if !more {
			return held, nil
		}
	}
}

func sortedNodes(nodes map[string][2]int) []string {
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, config.NaturalCompare)
	return ids
}
