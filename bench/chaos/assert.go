package chaos

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Acks checks that a write answers 503 when too few replicas can acknowledge it: with
// X-Write-Acks: all and one replica of the key down, and with X-Write-Acks: one and every
// replica down; keys whose replicas are all up answer 200 meanwhile. It needs
// buckets_per_key 1, so that some keys avoid the downed bucket.
func Acks(ctx context.Context, e *Env) error {
	d := e.Client()
	defer d.Close()
	proxy := e.Proxies()[0]
	keys := Keys("acks", 16)
	b1 := e.C.Bucket("b1")
	on := func(k string, down []*Node) (hit, all bool) {
		reps := e.C.Replicas(k)
		n := 0
		for _, nd := range down {
			if slices.Contains(reps, nd) {
				n++
			}
		}
		return n > 0, n == len(reps)
	}
	phase := func(acks string, down []*Node, refused func(hit, all bool) bool) {
		var got []int
		for i, k := range keys {
			op := d.Do(ctx, OpWrite, proxy, k, fmt.Sprintf("%s-%d", acks, i), acks)
			want := 200
			if refused(on(k, down)) {
				want = 503
			}
			got = append(got, want)
			e.expect(op, want, fmt.Sprintf("write_acks=%s with [%s] down", acks, ids(down)))
		}
		if !slices.Contains(got, 503) || !slices.Contains(got, 200) {
			e.Fail("", "write_acks=%s: the keys did not cover both cases (want: %v)", acks, got)
		}
	}
	if err := e.N.Kill(b1[0]); err != nil {
		return err
	}
	phase("all", b1[:1], func(hit, _ bool) bool { return hit })
	if err := e.N.Kill(b1[1:]...); err != nil {
		return err
	}
	phase("one", b1, func(_, all bool) bool { return all })
	return nil
}

// ReadQuorum is issue 7's read-quorum case: buckets {n1,n2} and {n3,n4}, every key on both.
// Quorum writes reach only n1 and n3 (n2 and n4 are partitioned away); then n1 is killed, n3
// paused and the partition healed. A read through the proxy now hears only n2 and n4, which
// know nothing of the keys: without a read quorum it must answer 503 (or a value marked
// X-Read-Quorum: no), never 404. The history checker reports such a 404 as a stale read too.
func ReadQuorum(ctx context.Context, e *Env) error {
	n := func(id string) *Node { return e.C.Node(id) }
	proxy := e.Proxies()[0]
	keys := Keys("rq", 6)
	if err := e.N.Partition(Partition{Isolated: []string{"n2", "n4"}, CutClients: true}); err != nil {
		return err
	}
	d := e.Client()
	defer d.Close()
	for i, k := range keys {
		e.expect(d.Do(ctx, OpWrite, proxy, k, fmt.Sprintf("rq-%d", i), ""), 200, "quorum write with n2 and n4 cut off")
	}
	if err := e.N.Kill(n("n1")); err != nil {
		return err
	}
	if err := e.N.Pause(n("n3")); err != nil {
		return err
	}
	if err := e.N.Partition(Partition{}); err != nil {
		return err
	}
	// The proxy waits for the hung replica up to its peer request timeout: wait longer.
	long := e.ClientTimeout(15 * time.Second)
	defer long.Close()
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := long.Do(ctx, OpRead, proxy, k, "", "")
			if op.Status == 404 || (op.Status == 200 && op.ReadQuorum != "no") || op.Status == 0 {
				e.Fail(k, "read with n1 down and n3 hung answered %d %s (read quorum %q), want 503 or a value marked X-Read-Quorum: no", op.Status, op.Err, op.ReadQuorum)
			}
		}()
	}
	wg.Wait()
	return nil
}

// AppliedNo reproduces the X-Applied anomaly hot-keys found, deterministically. Write B of
// key k goes through n3 while n3 is cut off from the other nodes: n3 stores it, and B waits
// for acks it cannot get. Write A of k then goes through the proxy, whose clock is 1 s slow,
// while n4 is paused: A's only possible ack in bucket b2 is n3's, which reports B's newer
// record. A is acknowledged; if its reply says X-Applied: no with B's X-Timestamp, a quorum
// read through n1 (which hears n1 and n2, not n3) then returns A's record, older than the
// timestamp A's reply named: the checker reports it as a stale read.
func AppliedNo(ctx context.Context, e *Env) error {
	n := func(id string) *Node { return e.C.Node(id) }
	const k = "applied-no"
	if err := e.N.Partition(Partition{Isolated: []string{"n3"}}); err != nil {
		return err
	}
	b := e.ClientTimeout(15 * time.Second)
	defer b.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Do(ctx, OpWrite, n("n3").HTTP, k, "b", "") }()
	sleep(ctx, 200*time.Millisecond) // n3 has stored B
	if err := e.N.Pause(n("n4")); err != nil {
		return err
	}
	d := e.Client()
	defer d.Close()
	a := d.Do(ctx, OpWrite, e.Proxies()[0], k, "a", "")
	e.expect(a, 200, "write A with a quorum of n1, n2 and n3")
	r := d.Do(ctx, OpRead, n("n1").HTTP, k, "", "")
	e.Note("A answered %d applied %q ts %d; the read after it answered %d %q ts %d (read quorum %q)",
		a.Status, a.Applied, a.TS, r.Status, r.Value, r.TS, r.ReadQuorum)
	if err := e.N.Resume(n("n4")); err != nil {
		return err
	}
	wg.Wait()
	return e.N.Partition(Partition{})
}

// ClockSkew runs read-then-write cycles through the other proxy after writes through the
// proxy whose clock is 30 s fast (see skewCycles).
func ClockSkew(ctx context.Context, e *Env) error {
	fast := e.C.Proxies[0].Addr
	probe := e.Client()
	defer probe.Close()
	first := probe.Do(ctx, OpWrite, fast, "skew-probe", "fast-probe", "")
	if ahead := time.Duration(first.TS-time.Now().UnixMicro()) * time.Microsecond; first.Status != 200 || ahead < 20*time.Second {
		e.Fail(first.Key, "the fast proxy stamped %v ahead of the clock (status %d), want about 30s: -clock-offset did not take effect", ahead, first.Status)
	}
	return skewCycles(ctx, e, fast, e.C.Proxies[1].Addr)
}

// NodeClockBehind runs read-then-write cycles through node n1, whose clock is 2 s behind,
// after writes through the proxy (see skewCycles).
func NodeClockBehind(ctx context.Context, e *Env) error {
	slow := e.C.Node("n1").HTTP
	probe := e.Client()
	defer probe.Close()
	first := probe.Do(ctx, OpWrite, slow, "behind-probe", "slow-probe", "")
	if behind := time.Duration(time.Now().UnixMicro()-first.TS) * time.Microsecond; first.Status != 200 || behind < time.Second {
		e.Fail(first.Key, "n1 stamped %v behind the clock (status %d), want about 2s: -clock-offset did not take effect", behind, first.Status)
	}
	return skewCycles(ctx, e, e.Proxies()[0], slow)
}

// skewCycles writes a key through entry first, then reads it and writes it again through
// later, until the duration passes. The later write must win every time: it applies, its
// timestamp is above the first's, and both entries read its value back.
func skewCycles(ctx context.Context, e *Env, first, later string) error {
	d := e.Client()
	defer d.Close()
	keys := Keys("skew", 4)
	cycles, lost := 0, 0
	err := e.Loop(ctx, func() error {
		k := keys[cycles%len(keys)]
		cycles++
		w1 := d.Do(ctx, OpWrite, first, k, fmt.Sprintf("first-%d", cycles), "")
		if w1.Status != 200 {
			e.expect(w1, 200, "the first write")
			return nil
		}
		e.expect(d.Do(ctx, OpRead, later, k, "", ""), 200, "the read before the later write")
		v := fmt.Sprintf("later-%d", cycles)
		w2 := d.Do(ctx, OpWrite, later, k, v, "")
		e.expect(w2, 200, "the later write")
		if w2.Applied == "no" || w2.TS <= w1.TS {
			lost++
			e.Fail(k, "the later write %q via %s (ts %d, applied %q) did not supersede the first via %s (ts %d)", v, later, w2.TS, w2.Applied, first, w1.TS)
		}
		for _, entry := range []string{later, first} {
			if back := d.Do(ctx, OpRead, entry, k, "", ""); back.Status != 200 || back.Value != v {
				e.Fail(k, "read back via %s: %d %q, want %q, the later write", entry, back.Status, back.Value, v)
			}
		}
		return nil
	})
	e.Note("%d read-then-write cycles, %d later writes lost", cycles, lost)
	return err
}

// diskLeave is what FillDisk leaves free: below min_free_bytes (12 MiB), so the node refuses
// values, yet enough for tombstones and Pebble's own files.
const diskLeave = 6 << 20

// DiskFull fills the disk under a standalone node during a workload: writes of values must
// answer 507 while reads are still served, and writes must be taken again once the space is
// freed, without a restart. The checker then confirms that nothing stored before changed.
func DiskFull(ctx context.Context, e *Env) error {
	nd := e.C.Nodes[0]
	w := Workload{Clients: 2, Keys: Keys("disk", 16), Entries: []string{nd.HTTP}, WritePct: 60, DeletePct: 10}
	defer e.Start(ctx, w)()
	e.Wait(ctx, e.D/4)
	if err := e.N.FillDisk(nd, diskLeave); err != nil {
		return err
	}
	d := e.Client()
	defer d.Close()
	sleep(ctx, time.Second) // the node samples free space every 200 ms
	full := time.Now()
	for i := 0; time.Since(full) < e.D/4 && ctx.Err() == nil; i++ {
		e.expect(d.Do(ctx, OpWrite, nd.HTTP, "disk-probe", fmt.Sprintf("full-%d", i), ""), 507, "write of a value on a full disk")
		if r := d.Do(ctx, OpRead, nd.HTTP, w.Keys[i%len(w.Keys)], "", ""); r.Status != 200 && r.Status != 404 {
			e.Fail(r.Key, "read on a full disk answered %d %s", r.Status, r.Err)
		}
		sleep(ctx, 50*time.Millisecond)
	}
	if err := e.N.FreeDisk(nd); err != nil {
		return err
	}
	resumed := false
	for i := 0; i < 100 && !resumed && ctx.Err() == nil; i++ {
		resumed = d.Do(ctx, OpWrite, nd.HTTP, "disk-probe", fmt.Sprintf("freed-%d", i), "").Status == 200
		if !resumed {
			sleep(ctx, 50*time.Millisecond)
		}
	}
	if !resumed {
		e.Fail("disk-probe", "writes did not resume within 5s of freeing the disk")
	}
	e.Wait(ctx, e.Left())
	return nil
}

// expect records an assertion failure unless op answered want.
func (e *Env) expect(op Op, want int, why string) {
	if op.Status != want {
		e.Fail(op.Key, "%s: %s via %s answered %d %s, want %d", why, op.Kind, op.Entry, op.Status, op.Err, want)
	}
}
