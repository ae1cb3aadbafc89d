package chaos

import (
	"cmp"
	"context"
	"errors"
	"os"
	"slices"
	"time"
)

// Scenario is a named fault pattern on a cluster layout.
type Scenario struct {
	Name    string
	About   string
	Layout  Layout
	Default time.Duration // duration when Config.Duration is 0
	// Needs returns why the binaries cannot run the scenario ("" when they can).
	Needs func(Features) string
	Run   func(ctx context.Context, e *Env) error
}

func (s Scenario) unsupported(f Features) string {
	if s.Needs == nil {
		return ""
	}
	return s.Needs(f)
}

const healEvery = 3 * time.Second // background_healing_interval of every scenario

// layout is the shape most scenarios vary: write_acks quorum, healing every healEvery, and
// one proxy per clock offset given.
func layout(buckets, mirrors, perKey int, proxyOffsets ...time.Duration) Layout {
	return Layout{Buckets: buckets, Mirrors: mirrors, PerKey: perKey, WriteAcks: "quorum", HealEvery: healEvery, Proxies: proxyOffsets}
}

// mirrored is the small layout most scenarios use: 2 buckets × 2 mirrors, every key on all
// four nodes, one proxy.
func mirrored() Layout { return layout(2, 2, 2, 0) }

// standaloneOnTmpfs is one node whose var dir is a tmpfs, no proxy.
func standaloneOnTmpfs() Layout {
	l := layout(1, 1, 1)
	l.TmpfsNode = "n1"
	return l
}

// growing is mirrored with a coordinator and a migration to a third bucket.
func growing() Layout {
	l := mirrored()
	l.Grow = 1
	return l
}

// shortGrace is mirrored with tombstones purged 4 s after a delete (it must exceed the
// healing interval).
func shortGrace() Layout {
	l := mirrored()
	l.TombstoneGrace = 4 * time.Second
	return l
}

// secured is mirrored with TLS, a cluster secret and bearer tokens.
func secured() Layout {
	l := mirrored()
	l.Secure = true
	return l
}

// nodeBehind is mirrored with n1's clock 2 s behind.
func nodeBehind() Layout {
	l := mirrored()
	l.NodeClockOffsets = map[string]time.Duration{"n1": -2 * time.Second}
	return l
}

// Scenarios lists every scenario, in the order "all" runs them.
var Scenarios = []Scenario{
	{Name: "kill", About: "SIGKILL a random node every few seconds under writes and deletes, restart it a moment later",
		Layout: mirrored(), Default: 10 * time.Second, Run: KillRotation},
	{Name: "kill-all", About: "SIGKILL every node at once under load, then restart them",
		Layout: mirrored(), Default: 10 * time.Second, Run: KillAll},
	{Name: "partition-mirror", About: "one mirror of one bucket cut off from the other nodes and the proxy, then healed",
		Layout: mirrored(), Default: 12 * time.Second, Needs: needListen, Run: PartitionMirror},
	{Name: "partition-bucket", About: "a whole bucket of a buckets_per_key 2 cluster (3 buckets) cut off, then healed",
		Layout: layout(3, 2, 2, 0), Default: 12 * time.Second, Needs: needListen, Run: PartitionBucket},
	{Name: "partition-entry", About: "one mirror cut off from the other nodes while clients still use its HTTP port",
		Layout: mirrored(), Default: 12 * time.Second, Needs: needListen, Run: PartitionEntry},
	{Name: "heal", About: "one mirror cut off during writes on 300 keys without reads (no read repair), then healed: healing alone converges them",
		Layout: mirrored(), Default: 8 * time.Second, Needs: needListen, Run: Heal},
	{Name: "wipe-node", About: "a node loses its disk mid-run (killed, var dir emptied, back after the writes stop): healing alone restores it",
		Layout: mirrored(), Default: 9 * time.Second, Run: WipeNode},
	{Name: "migrate", About: "a third bucket added by a live migration under writes, deletes and reads, beside cold keys only healing moves",
		Layout: growing(), Default: 15 * time.Second, Run: Migrate},
	{Name: "tombstone-gc", About: "tombstone_grace 4s: a node away longer than the grace comes back; purged deletes must stay deleted",
		Layout: shortGrace(), Default: 16 * time.Second, Run: TombstoneGC},
	{Name: "acks", About: "write_acks=all with one replica down, and write_acks=one with every replica down: 503",
		Layout: layout(2, 2, 1, 0), Default: 4 * time.Second, Run: Acks},
	{Name: "read-quorum", About: "quorum writes held by one mirror of each bucket, then that mirror down in one bucket and hung in the other: reads must not answer 404",
		Layout: mirrored(), Default: 2 * time.Second, Needs: needListen, Run: ReadQuorum},
	{Name: "applied-no", About: "a write whose only b2 ack comes from a replica holding a newer, unacknowledged write: its reply and a later read must agree",
		Layout: layout(2, 2, 2, -time.Second), Default: 2 * time.Second, Needs: needSkewAndListen, Run: AppliedNo},
	{Name: "clock-skew", About: "one proxy's clock 30s fast: read-then-write cycles through another proxy keep the later write",
		Layout: layout(2, 2, 2, 30*time.Second, 0), Default: 8 * time.Second, Needs: needProxySkew, Run: ClockSkew},
	{Name: "clock-behind", About: "one node's clock 2s behind: read-then-write cycles through it after writes through the proxy keep the later write",
		Layout: nodeBehind(), Default: 6 * time.Second, Needs: needNodeSkew, Run: NodeClockBehind},
	{Name: "hot-keys", About: "16 writers on 10 keys through the proxy and two nodes' HTTP ports",
		Layout: mirrored(), Default: 8 * time.Second, Run: HotKeys},
	{Name: "disk-full", About: "the disk under a standalone node fills: 507 for writes, reads served, writes resume once freed",
		Layout: standaloneOnTmpfs(), Default: 8 * time.Second, Needs: needRoot, Run: DiskFull},
	{Name: "pause", About: "SIGSTOP a random node for a while, SIGCONT, next",
		Layout: mirrored(), Default: 10 * time.Second, Run: PauseRotation},
	{Name: "mixed", About: "one random fault at a time on a random node: SIGKILL, SIGSTOP or a partition, held 1-3 s",
		Layout: mirrored(), Default: 12 * time.Second, Run: Mixed},
	{Name: "secure", About: "mixed faults (SIGKILL, SIGSTOP, partitions) on a cluster with TLS on every port, a cluster secret and bearer tokens",
		Layout: secured(), Default: 12 * time.Second, Run: Mixed},
	{Name: "soak", About: "mixed load through the proxy and two nodes' HTTP ports, a random node killed every tenth of the run (every minute with -d 10m); throughput and RSS each tenth",
		Layout: mirrored(), Default: time.Minute, Run: Soak},
}

// ErrUnknownScenario reports a name that is not in Scenarios.
var ErrUnknownScenario = errors.New("chaos: unknown scenario")

// ScenarioNames returns the names of Scenarios.
func ScenarioNames() []string {
	var out []string
	for _, s := range Scenarios {
		out = append(out, s.Name)
	}
	return out
}

func findScenario(name string) (Scenario, bool) {
	i := slices.IndexFunc(Scenarios, func(s Scenario) bool { return s.Name == name })
	if i < 0 {
		return Scenario{}, false
	}
	return Scenarios[i], true
}

func needListen(f Features) string {
	if !f.Listen {
		return "tako-node has no -listen flag: partitions need the interposer"
	}
	return ""
}

func needProxySkew(f Features) string {
	if !f.ProxyClockOffset {
		return "tako-proxy has no -clock-offset flag"
	}
	return ""
}

func needSkewAndListen(f Features) string {
	return cmp.Or(needListen(f), needProxySkew(f))
}

func needNodeSkew(f Features) string {
	if !f.NodeClockOffset {
		return "tako-node has no -clock-offset flag"
	}
	return ""
}

func needRoot(Features) string {
	if os.Geteuid() != 0 {
		return "not root: cannot mount a tmpfs"
	}
	return ""
}
