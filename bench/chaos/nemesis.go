package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Event is one fault the nemesis injected or removed.
type Event struct {
	Time time.Time     `json:"time"`
	At   time.Duration `json:"at"` // since the run started
	What string        `json:"what"`
}

func (e Event) String() string {
	return fmt.Sprintf("%s +%6.2fs  %s", e.Time.Format("15:04:05.000"), e.At.Seconds(), e.What)
}

// Nemesis injects faults into a Cluster and logs each with its time. It remembers what it
// broke so that HealAll can undo all of it before the checker runs. Safe for concurrent use.
type Nemesis struct {
	c     *Cluster
	start time.Time
	out   io.Writer // each event as it happens; nil for none

	mu     sync.Mutex
	events []Event
	part   Partition
	filled map[string]bool // nodes whose disk holds a filler
}

func newNemesis(c *Cluster, out io.Writer) *Nemesis {
	return &Nemesis{c: c, start: time.Now(), out: out, filled: map[string]bool{}}
}

func (n *Nemesis) logf(format string, args ...any) {
	now := time.Now()
	e := Event{Time: now, At: now.Sub(n.start), What: fmt.Sprintf(format, args...)}
	n.mu.Lock()
	n.events = append(n.events, e)
	n.mu.Unlock()
	if n.out != nil {
		fmt.Fprintln(n.out, "chaos:", e)
	}
}

// Events returns what was injected so far.
func (n *Nemesis) Events() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Event(nil), n.events...)
}

// Kill sends SIGKILL to the nodes (all at once) and reaps them.
func (n *Nemesis) Kill(nodes ...*Node) error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, nd := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = nd.proc.stop(syscall.SIGKILL) }()
	}
	wg.Wait()
	n.logf("SIGKILL %s", ids(nodes))
	return errors.Join(errs...)
}

// Restart starts killed nodes again and waits until they answer.
func (n *Nemesis) Restart(ctx context.Context, nodes ...*Node) error {
	for _, nd := range nodes {
		if err := nd.proc.start(); err != nil {
			return err
		}
	}
	for _, nd := range nodes {
		if err := n.c.waitHealthy(ctx, nd.proc, nd.RealHTTP); err != nil {
			return err
		}
	}
	n.logf("restarted %s", ids(nodes))
	return nil
}

// Wipe empties a stopped node's var dir, as if its disk had been replaced.
func (n *Nemesis) Wipe(nd *Node) error {
	if nd.proc.running() {
		return fmt.Errorf("chaos: wipe %s: still running", nd.ID)
	}
	ents, err := os.ReadDir(nd.VarDir)
	if err != nil {
		return fmt.Errorf("chaos: wipe %s: %w", nd.ID, err)
	}
	for _, ent := range ents {
		if err := os.RemoveAll(filepath.Join(nd.VarDir, ent.Name())); err != nil {
			return fmt.Errorf("chaos: wipe %s: %w", nd.ID, err)
		}
	}
	n.logf("var dir of %s emptied", nd.ID)
	return nil
}

// Migrate moves the cluster's migration to phase p (see Cluster.SetPhase).
func (n *Nemesis) Migrate(ctx context.Context, p Phase) error {
	before := len(n.c.Members())
	if err := n.c.SetPhase(ctx, p); err != nil {
		return err
	}
	n.logf("configuration %v served everywhere (%d nodes, %d before)", p, len(n.c.Members()), before)
	return nil
}

// Pause sends SIGSTOP; Resume SIGCONT.
func (n *Nemesis) Pause(nd *Node) error {
	if err := nd.proc.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	n.logf("SIGSTOP %s", nd.ID)
	return nil
}

func (n *Nemesis) Resume(nd *Node) error {
	if err := nd.proc.signal(syscall.SIGCONT); err != nil {
		return err
	}
	n.logf("SIGCONT %s", nd.ID)
	return nil
}

// ErrNoPartitions reports a cluster without an interposer.
var ErrNoPartitions = errors.New("chaos: partitions need network namespaces or the interposer (tako-node -listen)")

// Partition replaces the current partition; the zero Partition heals it.
func (n *Nemesis) Partition(p Partition) error {
	switch {
	case n.c.netns != nil:
		var ids []string
		for _, nd := range n.c.Nodes {
			ids = append(ids, nd.ID)
		}
		if err := n.c.netns.setPartition(p, ids); err != nil {
			return err
		}
	case n.c.Interposer != nil:
		n.c.Interposer.SetPartition(p)
	default:
		return ErrNoPartitions
	}
	n.mu.Lock()
	n.part = p
	n.mu.Unlock()
	if len(p.Isolated) == 0 {
		n.logf("partition healed")
	} else {
		n.logf("partition: %v", p)
	}
	return nil
}

// FillDisk fills the tmpfs under nd until leave bytes are free.
func (n *Nemesis) FillDisk(nd *Node, leave int64) error {
	wrote, err := fillDisk(nd.VarDir, leave)
	n.mu.Lock()
	n.filled[nd.ID] = true
	n.mu.Unlock()
	n.logf("disk of %s filled: %d MiB filler, %d MiB left free", nd.ID, wrote>>20, leave>>20)
	return err
}

// FreeDisk removes the filler under nd.
func (n *Nemesis) FreeDisk(nd *Node) error {
	if err := freeDisk(nd.VarDir); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.filled, nd.ID)
	n.mu.Unlock()
	n.logf("disk of %s freed", nd.ID)
	return nil
}

// HealAll undoes every fault: continues paused nodes, heals the partition, frees disks and
// restarts member nodes that are down (killed or crashed), then waits until every process answers.
func (n *Nemesis) HealAll(ctx context.Context) error {
	var errs []error
	for _, nd := range n.c.Nodes {
		if nd.proc.isPaused() {
			errs = append(errs, n.Resume(nd))
		}
	}
	n.mu.Lock()
	part, filled := n.part, maps.Clone(n.filled)
	n.mu.Unlock()
	if len(part.Isolated) > 0 {
		errs = append(errs, n.Partition(Partition{}))
	}
	for _, nd := range n.c.Nodes {
		if filled[nd.ID] {
			errs = append(errs, n.FreeDisk(nd))
		}
	}
	var down []*Node
	for _, nd := range n.c.Members() {
		if !nd.proc.running() {
			down = append(down, nd)
		}
	}
	if len(down) > 0 {
		errs = append(errs, n.Restart(ctx, down...))
	}
	errs = append(errs, n.c.StartAll(ctx)) // proxies too, should one have died
	return errors.Join(errs...)
}

func ids(nodes []*Node) string {
	s := ""
	for i, nd := range nodes {
		if i > 0 {
			s += ","
		}
		s += nd.ID
	}
	return s
}
