package launcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/configsource"
)

// exitGrace is how long an exit waits before it is reported: Ctrl-C in a
// terminal reaches the children as well, and our own signal should win.
const exitGrace = 250 * time.Millisecond

// follow runs the started cluster until ctx ends: it reports children that
// exit on their own and applies every new configuration the watcher
// delivers. It returns ErrAllExited once no child is left running.
func (c *cluster) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	configs := make(chan *config.Config)
	var wg sync.WaitGroup
	wg.Add(1)
	go func(started *config.Config) {
		defer wg.Done()
		watch(ctx, c.o, started, configs)
	}(c.cfg)
	defer func() {
		cancel()
		wg.Wait()
		c.watches.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case cfg := <-configs:
			c.apply(ctx, cfg)
		case e := <-c.handedOff:
			c.endHandoff(ctx, e)
		case <-c.hangups:
			c.forwardHangup()
		case ch := <-c.exits:
			if ch.expected {
				continue
			}
			if sleep(ctx, exitGrace); ctx.Err() != nil {
				return nil
			}
			if l := c.leaving[ch.spec.Name]; l != nil && l.ch == ch {
				c.forget(ch.spec.Name) // nothing left to watch
			}
			c.reportExit(ch)
			if len(live(c.children)) == 0 {
				return ErrAllExited
			}
		}
	}
}

// forwardHangup passes SIGHUP on to every running child: each reopens its
// log file (VARDIR/<name>.log), so logrotate can rotate them all through
// tako-cluster's pid.
func (c *cluster) forwardHangup() {
	running := live(c.children)
	for _, ch := range running {
		ch.signal(syscall.SIGHUP)
	}
	fmt.Fprintf(c.o.Out, "tako-cluster: SIGHUP passed on to %d processes (they reopen their logs)\n", len(running))
}

// watch sends every configuration that differs from started on configs,
// until ctx ends. It follows what the nodes follow: started's coordinators
// when there are any (so a node started for a new configuration finds it
// served), else the file. It runs in its own goroutine and shares nothing
// with the cluster but configs.
func watch(ctx context.Context, o Options, started *config.Config, configs chan<- *config.Config) {
	so := configsource.Options{Poll: o.Poll, Logger: o.Logger, Token: o.token, CAFile: coordinatorCA(started, o.ConfigPath)}
	for _, id := range coordinatorIDs(started) {
		so.Coordinators = append(so.Coordinators, started.Coordinators[id].String())
	}
	if len(so.Coordinators) == 0 {
		so.File = o.ConfigPath
	}
	src, first, err := configsource.Open(ctx, so)
	if err != nil {
		if ctx.Err() == nil {
			o.Logger.Error("cannot follow the configuration: nodes it adds will not be started", "err", err)
		}
		return
	}
	deliver := func(cfg *config.Config) {
		select {
		case configs <- cfg:
		case <-ctx.Done():
		}
	}
	if first.Version != started.Version { // edited while the cluster was starting
		deliver(first)
	}
	src.Watch(ctx, deliver)
}

// apply makes the running nodes those cfg names: the nodes no live
// deployment (active or target) names any more leave (they keep running
// until they have handed off what they hold, see leave), leavers cfg names
// again stay, then those it names that are not running start, exactly as
// at start-up. Coordinators and proxies are left as they are. A node that
// fails to start is reported and the rest of the cluster keeps running;
// the next configuration retries it.
func (c *cluster) apply(ctx context.Context, cfg *config.Config) {
	old := c.cfg
	c.cfg = cfg
	for _, id := range sortedIDs(c.leaving) {
		if _, named := cfg.FindNode(id); named {
			ch := c.forget(id)
			c.nodes[id] = ch
			fmt.Fprintf(c.o.Out, "tako-cluster: configuration %s names %s (pid %d) again: it keeps running\n", cfg.Version, id, ch.pid())
		}
	}
	for _, id := range sortedIDs(c.nodes) {
		ch := c.nodes[id]
		if _, named := cfg.FindNode(id); named {
			continue
		}
		delete(c.nodes, id)
		if ch.exited() {
			continue
		}
		n, _ := old.FindNode(id)
		fmt.Fprintf(c.o.Out, "tako-cluster: configuration %s no longer names %s (pid %d): it stops once it has handed off what it holds (at most %v)\n",
			cfg.Version, id, ch.pid(), c.o.HandoffTimeout)
		c.leave(ctx, ch, n)
	}
	c.startNamed(ctx, cfg)
	if ctx.Err() == nil {
		fmt.Fprintf(c.o.Out, "tako-cluster: configuration %s in use (%s); nodes running: %s%s\n",
			cfg.Version, deployments(cfg), strings.Join(c.runningNodes(), ", "), c.handingOff())
	}
}

// sortedIDs returns m's keys in natural order, so reports read in order.
func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, config.NaturalCompare)
	return ids
}

// handingOff ends the "in use" line with the leavers, if any.
func (c *cluster) handingOff() string {
	if len(c.leaving) == 0 {
		return ""
	}
	return "; handing off: " + strings.Join(sortedIDs(c.leaving), ", ")
}

// deployments says which deployments are live: "active d, target t".
func deployments(cfg *config.Config) string {
	if cfg.Target == "" {
		return "active " + cfg.Active
	}
	return "active " + cfg.Active + ", target " + cfg.Target
}

func (c *cluster) runningNodes() []string {
	var ids []string
	for _, id := range sortedIDs(c.nodes) {
		if !c.nodes[id].exited() {
			ids = append(ids, id)
		}
	}
	return ids
}

// startNamed starts the nodes cfg names that have no running process
// (minus -s), waits for them and prints them as the start-up table does.
// A node that would listen where a leaver does waits for it to stop.
func (c *cluster) startNamed(ctx context.Context, cfg *config.Config) {
	var nodes []config.Node
	var specs []Spec
	for _, n := range cfg.Nodes() {
		if ch := c.nodes[n.ID]; (ch != nil && !ch.exited()) || slices.Contains(c.o.Skip, n.ID) {
			continue
		}
		if l := c.leaverAt(n); l != nil {
			fmt.Fprintf(c.o.Out, "tako-cluster: %s starts once %s, which listens where it will, has handed off\n", n.ID, l.node.ID)
			continue
		}
		nodes = append(nodes, n)
		specs = append(specs, c.plan.node(n))
	}
	if len(specs) == 0 {
		return
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	fmt.Fprintf(c.o.Out, "tako-cluster: configuration %s names %s: starting\n", cfg.Version, strings.Join(names, ", "))
	if err := checkFree(nodeAddrs(nodes)); err != nil {
		fmt.Fprintf(c.o.Out, "tako-cluster: not starting %s: %v\n", strings.Join(names, ", "), err)
		return
	}
	started, err := c.start(ctx, Node, specs)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		fmt.Fprintf(c.o.Out, "tako-cluster: %v\n", err)
	}
	if running := live(started); len(running) > 0 {
		fmt.Fprintf(c.o.Out, "tako-cluster: %d processes running (configuration %s)\n", len(live(c.children)), cfg.Version)
		c.printTable(running)
	}
}
