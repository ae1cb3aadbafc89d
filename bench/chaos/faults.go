package chaos

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// mixed is the default workload: writes, deletes and reads on 24 keys.
func mixed(entries []string) Workload {
	return Workload{Clients: 4, Keys: Keys("k", 24), Entries: entries, WritePct: 60, DeletePct: 15}
}

// KillRotation kills a random node, restarts it a moment later, and goes on.
func KillRotation(ctx context.Context, e *Env) error {
	defer e.Start(ctx, mixed(e.Proxies()))()
	restart := func(nd *Node) error { return e.N.Restart(ctx, nd) }
	return e.rotate(ctx, 700*time.Millisecond, 1500*time.Millisecond, func(nd *Node) error { return e.N.Kill(nd) }, restart)
}

// rotate injects fault into one node after another (see pick), undoes it hold later and
// waits gap before the next, until the duration has passed.
func (e *Env) rotate(ctx context.Context, hold, gap time.Duration, fault, undo func(*Node) error) error {
	return e.Loop(ctx, func() error {
		nd := e.pick()
		if err := fault(nd); err != nil {
			return err
		}
		sleep(ctx, hold)
		if err := undo(nd); err != nil {
			return err
		}
		e.Wait(ctx, gap)
		return nil
	})
}

// KillAll kills every node at once a third into the run and restarts them all.
func KillAll(ctx context.Context, e *Env) error {
	defer e.Start(ctx, mixed(e.Proxies()))()
	e.Wait(ctx, e.D/3)
	if err := e.N.Kill(e.C.Members()...); err != nil {
		return err
	}
	sleep(ctx, time.Second)
	if err := e.N.Restart(ctx, e.C.Members()...); err != nil {
		return err
	}
	e.Wait(ctx, e.Left())
	return nil
}

// PartitionMirror isolates the first mirror of the first bucket.
func PartitionMirror(ctx context.Context, e *Env) error {
	return partitioned(ctx, e, e.C.Bucket("b1")[:1], true)
}

// PartitionBucket isolates every node of the first bucket.
func PartitionBucket(ctx context.Context, e *Env) error {
	return partitioned(ctx, e, e.C.Bucket("b1"), true)
}

// PartitionEntry isolates the first mirror of the first bucket from the other nodes only:
// clients still send it requests, which it cannot complete at quorum. Its writes must not
// be acknowledged and its reads must say they had no quorum, or the checker sees them stale.
func PartitionEntry(ctx context.Context, e *Env) error {
	return partitioned(ctx, e, e.C.Bucket("b1")[:1], false)
}

// partitioned cuts the nodes off from the rest, and from the clients with cutClients, for
// the middle of the run, at most 30 s. The workload goes through the proxy and a majority
// node, and through the first isolated node when the clients can reach it.
func partitioned(ctx context.Context, e *Env, minority []*Node, cutClients bool) error {
	entries := append(e.Proxies(), e.C.Nodes[len(e.C.Nodes)-1].HTTP)
	if !cutClients {
		entries = append(entries, minority[0].HTTP)
	}
	defer e.Start(ctx, mixed(entries))()
	e.Wait(ctx, e.D/5)
	p := Partition{CutClients: cutClients}
	for _, nd := range minority {
		p.Isolated = append(p.Isolated, nd.ID)
	}
	if err := e.N.Partition(p); err != nil {
		return err
	}
	healAt := time.Now().Add(min(30*time.Second, e.D*3/5))
	e.provePartition(ctx, p, minority)
	sleep(ctx, time.Until(healAt))
	if err := e.N.Partition(Partition{}); err != nil {
		return err
	}
	e.Wait(ctx, e.Left())
	return nil
}

// provePartition checks that partition p holds: a write through another node to a key of the
// isolated nodes (acknowledged or not) must not reach them, and with CutClients a client request to an
// isolated node's HTTP port must get no answer.
func (e *Env) provePartition(ctx context.Context, p Partition, isolated []*Node) {
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("marker%d", i); slices.Contains(e.C.Replicas(k), isolated[0]) {
			key = k
		}
	}
	i := slices.IndexFunc(e.C.Nodes, func(nd *Node) bool { return !slices.Contains(isolated, nd) })
	d := e.Client()
	defer d.Close()
	w := d.Do(ctx, OpWrite, e.C.Nodes[i].HTTP, key, "during-the-partition", "")
	r := e.C.newReplicaReader()
	defer r.close()
	for _, nd := range isolated {
		if rec := r.read(ctx, nd.ID, key); rec.Value == w.Value {
			e.Fail(key, "the partition leaked: %s stored %v, written through %s (status %d)", nd.ID, rec, e.C.Nodes[i].ID, w.Status)
		}
	}
	if !p.CutClients {
		return
	}
	// A blackholed request never gets an answer: wait a little, not the full timeout.
	short := e.ClientTimeout(2 * time.Second)
	defer short.Close()
	if op := short.Do(ctx, OpRead, isolated[0].HTTP, key, "", ""); op.Err != errTimeout {
		e.Fail(key, "a client reached isolated %s: status %d %s", isolated[0].ID, op.Status, op.Err)
	}
}

// Heal cuts one mirror off (clients too) during writes and deletes on 300 keys, without
// reads, so that no read repair runs; it then heals the partition and stops. Background
// healing alone must make every replica agree within the checker's bound.
func Heal(ctx context.Context, e *Env) error {
	nd := e.C.Bucket("b1")[0]
	w := Workload{Clients: 4, Keys: Keys("h", 300), Entries: e.Proxies(), WritePct: 85, DeletePct: 15}
	stop := e.Start(ctx, w)
	defer stop()
	if err := e.N.Partition(Partition{Isolated: []string{nd.ID}, CutClients: true}); err != nil {
		return err
	}
	e.Wait(ctx, e.Left())
	stop()
	return e.N.Partition(Partition{})
}

// WipeNode replaces a node's disk: a third into a run of writes and deletes on 300 keys
// without reads, n1 is killed and its var dir emptied; it comes back, empty, only once the
// workload has stopped. Background healing alone must give it back every record, tombstones
// included.
func WipeNode(ctx context.Context, e *Env) error {
	nd := e.C.Bucket("b1")[0]
	w := Workload{Clients: 4, Keys: Keys("h", 300), Entries: e.Proxies(), WritePct: 85, DeletePct: 15}
	stop := e.Start(ctx, w)
	defer stop()
	e.Wait(ctx, e.D/3)
	if err := e.N.Kill(nd); err != nil {
		return err
	}
	if err := e.N.Wipe(nd); err != nil {
		return err
	}
	e.Wait(ctx, e.Left())
	stop()
	return e.N.Restart(ctx, nd)
}

// Migrate grows the cluster by a bucket under load on 100 hot keys, beside 300 cold ones
// written once, as an operator would: a quarter into the
// run the configuration gets target_deployment grown (the new bucket's nodes start); once
// healing has copied every key's record from before that moment to its new owners, grown
// becomes the active deployment. Old owners hand their keys off and drop them; the checker
// reads the new owners.
func Migrate(ctx context.Context, e *Env) error {
	// Cold keys, written once before the load: only healing can bring them to the new bucket.
	d := e.Client()
	for i, k := range Keys("cold", 300) {
		e.expect(d.Do(ctx, OpWrite, e.Proxies()[0], k, fmt.Sprintf("cold-%d", i), ""), 200, "a cold key")
	}
	d.Close()
	w := Workload{Clients: 4, Keys: Keys("m", 100), Entries: e.Proxies(), WritePct: 60, DeletePct: 15}
	defer e.Start(ctx, w)()
	e.Wait(ctx, e.D/4)
	before := len(e.C.Members())
	floor := ackedFloor(e.hist.Ops())
	if err := e.N.Migrate(ctx, PhaseMigrating); err != nil {
		return err
	}
	start := time.Now()
	if err := e.waitCopied(ctx, e.C.Members()[before:], floor); err != nil {
		return err
	}
	e.Note("healing copied %d keys to the new bucket %.1fs after the migration began", len(floor), time.Since(start).Seconds())
	e.Wait(ctx, e.D/4)
	if err := e.N.Migrate(ctx, PhaseGrown); err != nil {
		return err
	}
	e.Wait(ctx, e.Left())
	return nil
}

// ackedFloor returns, per key, the highest timestamp acknowledged so far.
func ackedFloor(ops []Op) map[string]int64 {
	out := map[string]int64{}
	for i := range ops {
		if ops[i].Acked() {
			out[ops[i].Key] = max(out[ops[i].Key], ops[i].TS)
		}
	}
	return out
}

// copyWait bounds how long healing may take to fill a new bucket.
const copyWait = 30 * time.Second

// waitCopied waits until each of the nodes that replicates a key holds a record at least as
// new as floor[key].
func (e *Env) waitCopied(ctx context.Context, nodes []*Node, floor map[string]int64) error {
	r := e.C.newReplicaReader()
	defer r.close()
	deadline := time.Now().Add(copyWait)
	for {
		missing := 0
		for k, ts := range floor {
			for _, nd := range e.C.Replicas(k) {
				if slices.Contains(nodes, nd) && r.read(ctx, nd.ID, k).TS < ts {
					missing++
				}
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) || !sleep(ctx, 200*time.Millisecond) {
			return fmt.Errorf("chaos: healing left %d records uncopied to %s after %v", missing, ids(nodes), copyWait)
		}
	}
}

// HotKeys runs 16 writers on 10 keys through the proxy and two nodes' HTTP ports.
func HotKeys(ctx context.Context, e *Env) error {
	entries := append(e.Proxies(), e.C.Nodes[0].HTTP, e.C.Nodes[2].HTTP)
	defer e.Start(ctx, Workload{Clients: 16, Keys: Keys("hot", 10), Entries: entries, WritePct: 70, DeletePct: 10})()
	e.Wait(ctx, e.D)
	return nil
}

// PauseRotation stops a random node for 1.5 s, continues it, and goes on.
func PauseRotation(ctx context.Context, e *Env) error {
	defer e.Start(ctx, mixed(e.Proxies()))()
	return e.rotate(ctx, 1500*time.Millisecond, time.Second, e.N.Pause, e.N.Resume)
}

// Mixed injects one random fault at a time on a random node (SIGKILL, SIGSTOP, or a partition
// that may also cut the clients off), holds it 1–3 s, undoes it, and goes on.
func Mixed(ctx context.Context, e *Env) error {
	defer e.Start(ctx, mixed(append(e.Proxies(), e.C.Nodes[0].HTTP, e.C.Nodes[2].HTTP)))()
	faults := []func(*Node) (undo func() error, err error){
		func(nd *Node) (func() error, error) {
			return func() error { return e.N.Restart(ctx, nd) }, e.N.Kill(nd)
		},
		func(nd *Node) (func() error, error) { return func() error { return e.N.Resume(nd) }, e.N.Pause(nd) },
	}
	if e.C.CanPartition() {
		faults = append(faults, func(nd *Node) (func() error, error) {
			p := Partition{Isolated: []string{nd.ID}, CutClients: e.rng.IntN(2) == 0}
			return func() error { return e.N.Partition(Partition{}) }, e.N.Partition(p)
		})
	}
	return e.Loop(ctx, func() error {
		undo, err := faults[e.rng.IntN(len(faults))](e.pick())
		if err != nil {
			return err
		}
		sleep(ctx, time.Second+time.Duration(e.rng.IntN(2000))*time.Millisecond)
		if err := undo(); err != nil {
			return err
		}
		e.Wait(ctx, time.Second)
		return nil
	})
}

// Soak runs a mixed load for the whole duration and kills a random node (restarted 2 s later)
// every tenth of it, noting each tenth's throughput and every node's peak RSS.
func Soak(ctx context.Context, e *Env) error {
	entries := append(e.Proxies(), e.C.Nodes[0].HTTP, e.C.Nodes[2].HTTP)
	w := mixed(entries)
	w.Clients = 8
	defer e.Start(ctx, w)()
	period := max(e.D/10, 3*time.Second)
	last, lastOps := time.Now(), 0
	return e.Loop(ctx, func() error {
		nd := e.pick()
		if err := e.N.Kill(nd); err != nil {
			return err
		}
		sleep(ctx, 2*time.Second)
		if err := e.N.Restart(ctx, nd); err != nil {
			return err
		}
		e.Wait(ctx, time.Until(last.Add(period)))
		ops, total := e.hist.Since(lastOps)
		ok := 0
		for i := range ops {
			if ops[i].Outcome() == OutcomeOK {
				ok++
			}
		}
		secs := time.Since(last).Seconds()
		e.Note("+%4.0fs: %5.0f ops/s, %5.0f ok/s; peak RSS %s", time.Since(e.start).Seconds(),
			float64(len(ops))/secs, float64(ok)/secs, e.C.peakRSS())
		last, lastOps = time.Now(), total
		return nil
	})
}

// TombstoneGC runs writes and deletes with a short tombstone_grace while n1 is away for
// longer than the grace (killed a fifth into the run, restarted grace+2 s later). Tombstones
// held by every replica are purged; n1, back after a long absence, must not bring a deleted
// value back. The run ends with a wait of grace plus a healing pass, so that the last
// tombstones may be purged before the check.
func TombstoneGC(ctx context.Context, e *Env) error {
	grace := e.C.layout.TombstoneGrace
	w := Workload{Clients: 4, Keys: Keys("t", 48), Entries: e.Proxies(), WritePct: 45, DeletePct: 35}
	stop := e.Start(ctx, w)
	defer stop()
	e.Wait(ctx, e.D/5)
	nd := e.C.Bucket("b1")[0]
	if err := e.N.Kill(nd); err != nil {
		return err
	}
	sleep(ctx, grace+2*time.Second)
	if err := e.N.Restart(ctx, nd); err != nil {
		return err
	}
	e.Wait(ctx, e.Left())
	stop()
	sleep(ctx, grace+healEvery)
	return nil
}
