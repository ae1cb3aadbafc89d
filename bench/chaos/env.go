package chaos

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// Env is what a scenario drives: the cluster, the nemesis, the history, and the scenario's
// own assertions. The scenario's goroutine owns it; Fail and Start may be called from others.
type Env struct {
	C *Cluster
	N *Nemesis
	D time.Duration // how long workload and nemesis run

	sc    Scenario
	hist  *History
	out   io.Writer
	seed  uint64
	rng   *rand.Rand // scenario goroutine only, like order
	order []int      // nodes pick has yet to return this round
	start time.Time

	mu     sync.Mutex
	keys   map[string]bool // every key a workload or direct op touched
	fails  []Violation
	notes  []string
	nextID int
}

// Per-request timeouts: a workload gives up soon and goes on; a scenario's own requests,
// whose replies it asserts, wait long enough not to fail on a slow machine.
const (
	defaultTimeout = 3 * time.Second
	directTimeout  = 10 * time.Second
)

func newEnv(c *Cluster, sc Scenario, cfg Config) *Env {
	e := &Env{C: c, D: cmp.Or(cfg.Duration, sc.Default), sc: sc, hist: &History{}, out: cfg.Out,
		seed: cfg.Seed, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6368616f73)), start: time.Now(), keys: map[string]bool{}}
	e.N = newNemesis(c, cfg.Out)
	return e
}

func (e *Env) logf(format string, args ...any) {
	if e.out != nil {
		fmt.Fprintf(e.out, "chaos: "+format+"\n", args...)
	}
}

// Note logs a line of the scenario's own figures and keeps it for the report.
func (e *Env) Note(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	e.logf("%s", line)
	e.mu.Lock()
	e.notes = append(e.notes, line)
	e.mu.Unlock()
}

// Fail records a violated expectation of the scenario itself.
func (e *Env) Fail(key, format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fails = append(e.fails, Violation{Kind: KindAssertion, Key: key, Detail: fmt.Sprintf(format, args...)})
}

func (e *Env) failures() []Violation {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Violation(nil), e.fails...)
}

func (e *Env) touch(keys ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range keys {
		e.keys[k] = true
	}
}

// checkedKeys returns every key touched.
func (e *Env) checkedKeys() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.keys))
	for k := range e.keys {
		out = append(out, k)
	}
	return out
}

func (e *Env) clientIDs(n int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := e.nextID
	e.nextID += n
	return id
}

// Start runs w (Timeout and Seed defaulted) until the returned stop is called.
func (e *Env) Start(ctx context.Context, w Workload) (stop func()) {
	w.Timeout = cmp.Or(w.Timeout, defaultTimeout)
	w.Seed = cmp.Or(w.Seed, e.seed)
	e.touch(w.Keys...)
	e.logf("workload: %d clients on %d keys via %v, %d%% writes %d%% deletes", w.Clients, len(w.Keys), w.Entries, w.WritePct, w.DeletePct)
	w.sec = e.C.sec
	return w.Start(ctx, e.hist, e.clientIDs(w.Clients))
}

// Client returns a new client for direct operations; they are recorded like the workload's.
func (e *Env) Client() *Direct { return e.ClientTimeout(directTimeout) }

// ClientTimeout is Client with another per-request timeout.
func (e *Env) ClientTimeout(d time.Duration) *Direct {
	return &Direct{e: e, c: newClient(e.clientIDs(1), e.hist, d, e.C.sec)}
}

// Direct is a client a scenario drives itself.
type Direct struct {
	e *Env
	c *client
}

// Do sends one operation and records it.
func (d *Direct) Do(ctx context.Context, kind, entry, key, value, acks string) Op {
	d.e.touch(key)
	return d.c.do(ctx, kind, entry, key, value, acks)
}

func (d *Direct) Close() { d.c.close() }

// Left returns how much of the duration is left.
func (e *Env) Left() time.Duration { return e.D - time.Since(e.start) }

// Loop calls step until the duration has passed (a step always runs to its end) or step fails.
func (e *Env) Loop(ctx context.Context, step func() error) error {
	for e.Left() > 0 && ctx.Err() == nil {
		if err := step(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Wait sleeps d, or less if the duration or ctx ends first.
func (e *Env) Wait(ctx context.Context, d time.Duration) {
	sleep(ctx, min(d, max(0, e.Left())))
}

// Proxies returns the proxies' addresses.
func (e *Env) Proxies() []string {
	var out []string
	for _, p := range e.C.Proxies {
		out = append(out, p.Addr)
	}
	return out
}

// pick returns a random node: the nodes in a shuffled order, reshuffled after each round, so
// that a short run reaches every node.
func (e *Env) pick() *Node {
	members := e.C.Members()
	if len(e.order) == 0 {
		e.order = e.rng.Perm(len(members))
	}
	nd := members[e.order[0]%len(members)]
	e.order = e.order[1:]
	return nd
}
