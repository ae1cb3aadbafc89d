package server

import (
	"context"
	"errors"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/kv"
)

// A request's calls to its replicas run in parallel on a pool of long-lived
// worker goroutines, as pooled tasks: the read path allocates nothing per
// request (a `go` statement per replica would allocate its closure).

type taskOp uint8

const (
	taskGet taskOp = iota
	taskStat
	taskApply
)

// task is one call to one replica. The request that submits it owns it
// again once it comes back on done.
type task struct {
	op   taskOp
	r    Replica
	node string // the replica's node id
	self bool   // the replica is this node's own store
	pos  int    // position of the replica in the route
	key  []byte
	rec  kv.Record // taskApply: the record; taskGet: the result
	dst  []byte    // taskGet: where the value goes
	meta kv.Meta   // taskStat: the result
	res  kv.Result // taskApply: the result
	err  error
	done chan *task
	rt   *route   // the route the task belongs to (its refs)
	c    *Cluster // drains rt if this task comes back last, counts its failure
}

func (t *task) run() {
	ctx := context.Background() // the peer client bounds each call by its RequestTimeout
	switch t.op {
	case taskGet:
		t.rec, t.err = t.r.Get(ctx, t.key, t.dst)
	case taskStat:
		t.meta, t.err = t.r.Stat(ctx, t.key)
	case taskApply:
		t.res, t.err = t.r.Apply(ctx, t.key, t.rec)
	}
	t.finish()
}

// Done implements eventloop.Completion: the reply to a task started on a
// peer's connection (peerReplica.start), on that connection's reader
// goroutine (or whichever ended the call).
func (t *task) Done(resp *eventloop.Response, err error) {
	switch t.op {
	case taskGet:
		t.rec, t.err = getReply(resp, err, t.dst)
	case taskStat:
		if err == nil {
			t.meta, err = statReply(resp.Status, resp.TS, resp.Flags)
			resp.Release()
		}
		t.err = err
	case taskApply:
		if err == nil {
			t.res = setReply(resp.Status, resp.TS)
			resp.Release()
		}
		t.err = err
	}
	t.finish()
}

// finish hands the task back to its request. A hint for a failed write may
// be stored here (drain); that is a Pebble write without sync, which does
// not wait for the disk.
func (t *task) finish() {
	// A replica that answered not-found has not failed.
	if t.err != nil && !errors.Is(t.err, kv.ErrNotFound) {
		t.c.metrics.ReplicaError(t.node, errorKind(t.err))
	}
	// Once t is on done it is the request's again: read what we need first.
	rt, c := t.rt, t.c
	t.done <- t
	if rt.unref() {
		c.drain(rt)
	}
}

// workers is the pool that runs tasks. Its queue is never closed: a
// request racing with stop (a shutdown that timed out with requests in
// flight) still gets its tasks run, on goroutines of their own.
type workers struct {
	queue chan *task
	quit  chan struct{}
}

// fanoutWorkers is enough for 64 concurrent requests to 4 replicas each; a
// burst beyond it runs tasks on fresh goroutines.
const fanoutWorkers = 256

// The queue is unbuffered: a task goes to an idle worker at once or gets a
// goroutine of its own, never waits behind tasks stuck on a slow replica.
func startWorkers() *workers {
	w := &workers{queue: make(chan *task), quit: make(chan struct{})}
	for range fanoutWorkers {
		go func() {
			for {
				select {
				case t := <-w.queue:
					t.run()
				case <-w.quit:
					return
				}
			}
		}()
	}
	return w
}

func (w *workers) submit(t *task) {
	select {
	case w.queue <- t:
	default:
		go t.run()
	}
}

// stop lets the workers go once they finish their tasks.
func (w *workers) stop() { close(w.quit) }
