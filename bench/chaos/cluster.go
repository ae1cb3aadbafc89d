package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tako-kv/tako/bench"
	"github.com/tako-kv/tako/server/config"
)

// Layout is the shape of the cluster a scenario runs on.
type Layout struct {
	Buckets, Mirrors int // buckets of Mirrors nodes each
	PerKey           int // hash.buckets_per_key
	WriteAcks        string
	HealEvery        time.Duration // background_healing_interval
	TombstoneGrace   time.Duration // tombstone_grace (0 for the default, 10 days)
	MinFreeBytes     string        // storage.min_free_bytes ("" for 12MiB)
	// Proxies lists one entry per proxy: its -clock-offset (0 for none).
	Proxies []time.Duration
	// NodeClockOffsets gives chosen nodes a -clock-offset.
	NodeClockOffsets map[string]time.Duration
	// TmpfsNode names a node whose var dir is a tmpfs the harness mounts (disk-full).
	TmpfsNode string
	// Grow > 0 gives the cluster a coordinator, which every process takes its configuration
	// from, and a migration (SetPhase) to a deployment with Grow more buckets.
	Grow int
	// Secure runs the cluster with TLS on every port, a cluster secret and bearer tokens
	// (secure.go); the harness's clients use all three.
	Secure bool
}

// Node is one tako-node of the cluster.
type Node struct {
	ID, Bucket string
	HTTP, Peer string // configured addresses (through the interposer in loopback mode)
	// RealHTTP and RealPeer are where the process listens (HTTP, Peer in direct mode).
	RealHTTP, RealPeer string
	VarDir             string
	proc               *process
}

// Proxy is one tako-proxy.
type Proxy struct {
	Addr string
	proc *process
}

// Cluster is a running Tako cluster of separate hosts on loopback (see the package doc).
type Cluster struct {
	Dir     string // temp dir of configs, var dirs and logs
	CfgPath string
	Cfg     *config.Config
	Nodes   []*Node
	Proxies []*Proxy
	// Interposer is nil in namespace mode, and in direct mode, when tako-node has no
	// -listen flag: the nodes then listen on their configured addresses (and in direct
	// mode partitions are unavailable).
	Interposer *Interposer

	hosts hostPlan // where the nodes and the coordinator are configured
	netns *netns   // nil in loopback mode
	why   string   // why loopback mode, when namespaces were not used

	layout             Layout
	sec                *security // nil unless layout.Secure
	httpPort, peerPort int       // of every node
	coord              *process  // nil without a migration
	log                *slog.Logger
	tmpfs              string // mounted dir, "" if none

	mu    sync.Mutex // guards the configuration below, which SetPhase replaces
	live  []placement
	phase Phase
}

// Mode names how the hosts are separated.
func (c *Cluster) Mode() string {
	switch {
	case c.netns != nil:
		return c.netns.String()
	case c.Interposer == nil:
		return "loopback-direct (no -listen: no partitions; " + c.why + ")"
	}
	if c.sec != nil {
		return "loopback (127.0.0.x hosts, interposer on 127.0.1.x; TLS: no partitions; " + c.why + ")"
	}
	return "loopback (127.0.0.x hosts, interposer on 127.0.1.x; " + c.why + ")"
}

// CanPartition reports whether the nemesis can partition this cluster: in namespaces, or
// behind the interposer unless TLS hides the peers' Hellos from it.
func (c *Cluster) CanPartition() bool {
	return c.netns != nil || (c.Interposer != nil && c.sec == nil)
}

func realHost(i int) string  { return "127.0.1." + strconv.Itoa(10+i) }
func proxyHost(i int) string { return "127.0.2." + strconv.Itoa(10+i) }

// coordAddr is the coordinator's address; it listens on the nodes' HTTP port.
func (c *Cluster) coordAddr() string {
	return net.JoinHostPort(c.hosts.coordHost(), strconv.Itoa(c.httpPort))
}

// clusterSpec is what StartCluster needs besides the layout.
type clusterSpec struct {
	layout Layout
	bins   *binaries
	dir    string
	log    *slog.Logger
	net    string // Config.Network
}

// startCluster writes the configuration and starts every node and proxy. On error
// everything started is stopped (the caller removes dir).
func startCluster(ctx context.Context, s clusterSpec) (c *Cluster, err error) {
	l := s.layout
	n := (l.Buckets + l.Grow) * l.Mirrors
	ns, why, err := chooseNetwork(s.net, n, s.log)
	if err != nil {
		return nil, err
	}
	c = &Cluster{Dir: s.dir, CfgPath: filepath.Join(s.dir, "tako.yaml"), layout: l, log: s.log, hosts: loopbackHosts{}, why: why}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if ns != nil {
		c.netns, c.hosts = ns, ns
		s.log.Info("chaos: network mode", "mode", ns.String())
	} else {
		s.log.Info("chaos: network mode loopback", "why", why)
	}
	// Hosts in the root namespace must have the ports free; a node's namespace is new.
	var hosts []string
	for i := 1; i <= n && ns == nil; i++ {
		hosts = append(hosts, c.hosts.nodeHost(i), realHost(i))
	}
	for i := range l.Proxies {
		hosts = append(hosts, proxyHost(i+1))
	}
	if l.Grow > 0 {
		hosts = append(hosts, c.hosts.coordHost())
	}
	ports, err := bench.SharedPorts(hosts, 2)
	if err != nil {
		return nil, err
	}
	c.httpPort, c.peerPort = ports[0], ports[1]
	if l.Secure {
		if c.sec, err = newSecurity(s.dir, c.tlsHosts(n)); err != nil {
			return nil, err
		}
	}
	if s.bins.Listen && ns == nil {
		c.Interposer = NewInterposer(s.log)
	}
	if err := c.writeConfig(PhaseInitial); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		c.Nodes = append(c.Nodes, &Node{ID: fmt.Sprintf("n%d", i), Bucket: fmt.Sprintf("b%d", (i-1)/l.Mirrors+1),
			HTTP:     net.JoinHostPort(c.hosts.nodeHost(i), strconv.Itoa(c.httpPort)),
			Peer:     net.JoinHostPort(c.hosts.nodeHost(i), strconv.Itoa(c.peerPort)),
			RealHTTP: net.JoinHostPort(c.hosts.nodeHost(i), strconv.Itoa(c.httpPort)),
			RealPeer: net.JoinHostPort(c.hosts.nodeHost(i), strconv.Itoa(c.peerPort)),
			VarDir:   filepath.Join(c.Dir, fmt.Sprintf("var-n%d", i))})
	}
	if err := c.mountTmpfs(l.TmpfsNode); err != nil {
		return nil, err
	}
	if l.Grow > 0 {
		c.addCoordinator(s.bins)
	}
	for i, nd := range c.Nodes {
		if err := c.addNode(s.bins, i+1, nd, l.NodeClockOffsets[nd.ID]); err != nil {
			return nil, err
		}
	}
	for i, off := range l.Proxies {
		c.addProxy(s.bins, proxyHost(i+1)+":"+strconv.Itoa(ports[0]), off)
	}
	if err := c.StartAll(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// tlsHosts is every address a process of a cluster of n nodes may be reached at.
func (c *Cluster) tlsHosts(n int) []string {
	var hosts []string
	for i := 1; i <= n; i++ {
		hosts = append(hosts, c.hosts.nodeHost(i), realHost(i))
	}
	for i := range c.layout.Proxies {
		hosts = append(hosts, proxyHost(i+1))
	}
	return append(hosts, c.hosts.coordHost())
}

// source returns the flags that tell a process where its configuration comes from.
func (c *Cluster) source() []string {
	if c.coord != nil {
		return []string{"-c", c.coordAddr()}
	}
	return []string{"-cfg", c.CfgPath}
}

func (c *Cluster) addCoordinator(bins *binaries) {
	c.coord = &process{name: "coordinator", bin: bins.coord, out: filepath.Join(c.Dir, "coordinator.out"),
		args: []string{"-id", "c1", "-cfg", c.CfgPath, "-v", filepath.Join(c.Dir, "var-coordinator"),
			"-l", filepath.Join(c.Dir, "coordinator.log"), "-poll", "100ms"}}
}

// addNode prepares node i (1-based) and its forwarders; it does not start the process.
func (c *Cluster) addNode(bins *binaries, i int, nd *Node, offset time.Duration) error {
	args := append([]string{"-id", nd.ID, "-v", nd.VarDir, "-l", filepath.Join(c.Dir, nd.ID+".log")}, c.source()...)
	if offset != 0 {
		args = append(args, "-clock-offset", offset.String())
	}
	if c.Interposer != nil {
		nd.RealHTTP = swapHost(nd.HTTP, realHost(i))
		nd.RealPeer = swapHost(nd.Peer, realHost(i))
		args = append(args, "-listen", realHost(i))
		if err := c.Interposer.Forward(nd.HTTP, nd.RealHTTP, nd.ID, false); err != nil {
			return err
		}
		// The interposer tells peers apart by their Hello, which TLS hides: a secure
		// cluster's peer connections pass as a client's (and it cannot be partitioned).
		if err := c.Interposer.Forward(nd.Peer, nd.RealPeer, nd.ID, c.sec == nil); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(nd.VarDir, 0o755); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	bin := bins.node
	if c.netns != nil {
		bin, args = c.netns.wrap(i, bin, args)
	}
	nd.proc = &process{name: nd.ID, bin: bin, args: args, out: filepath.Join(c.Dir, nd.ID+".out")}
	return nil
}

func (c *Cluster) addProxy(bins *binaries, addr string, offset time.Duration) {
	host, port, _ := net.SplitHostPort(addr)
	name := "proxy-" + host
	args := append([]string{"-host", host, "-p", port, "-v", filepath.Join(c.Dir, "var-"+name),
		"-l", filepath.Join(c.Dir, name+".log")}, c.source()...)
	if offset != 0 {
		args = append(args, "-clock-offset", offset.String())
	}
	c.Proxies = append(c.Proxies, &Proxy{Addr: addr,
		proc: &process{name: name, bin: bins.proxy, args: args, out: filepath.Join(c.Dir, name+".out")}})
}

func swapHost(addr, host string) string {
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, port)
}

// StartAll starts the coordinator, every member node and every proxy that is not running,
// and waits until all answer.
func (c *Cluster) StartAll(ctx context.Context) error {
	if c.coord != nil && !c.coord.running() {
		if err := c.coord.start(); err != nil {
			return err
		}
		if err := c.waitHealthy(ctx, c.coord, c.coordAddr()); err != nil {
			return err
		}
	}
	members := c.Members()
	for _, nd := range members {
		if !nd.proc.running() {
			if err := nd.proc.start(); err != nil {
				return err
			}
		}
	}
	for _, nd := range members {
		if err := c.waitHealthy(ctx, nd.proc, nd.RealHTTP); err != nil {
			return err
		}
	}
	for _, p := range c.Proxies {
		if !p.proc.running() {
			if err := p.proc.start(); err != nil {
				return err
			}
		}
		if err := c.waitHealthy(ctx, p.proc, p.Addr); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotReady reports a process that did not answer /health in time or exited.
var ErrNotReady = errors.New("chaos: process not ready")

const readyWait = 20 * time.Second

// waitHealthy polls GET http://addr/health until it answers 200.
func (c *Cluster) waitHealthy(ctx context.Context, p *process, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	hc := c.sec.httpClient(nil, time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.sec.url(addr, "/health"), nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-p.exited():
			return fmt.Errorf("%w: %s exited; output:\n%s", ErrNotReady, p.name, tail(p.out, 15))
		case <-ctx.Done():
			return fmt.Errorf("%w: %s at %s after %v (%v)", ErrNotReady, p.name, addr, readyWait, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Node returns the node with id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, nd := range c.Nodes {
		if nd.ID == id {
			return nd
		}
	}
	return nil
}

// Bucket returns the nodes of bucket id.
func (c *Cluster) Bucket(id string) []*Node {
	var out []*Node
	for _, nd := range c.Nodes {
		if nd.Bucket == id {
			out = append(out, nd)
		}
	}
	return out
}

// peakRSS lists each node's peak resident memory (VmHWM since its last start).
func (c *Cluster) peakRSS() string {
	var b strings.Builder
	for i, nd := range c.Members() {
		if i > 0 {
			b.WriteString(" ")
		}
		st, err := bench.ReadProcStat(nd.proc.pid())
		if err != nil {
			fmt.Fprintf(&b, "%s ?", nd.ID)
			continue
		}
		fmt.Fprintf(&b, "%s %dMiB", nd.ID, st.PeakRSS>>20)
	}
	return b.String()
}

// Stop kills every process, closes the interposer, removes the namespaces and unmounts the
// tmpfs. Safe to call more than once.
func (c *Cluster) Stop() {
	for _, p := range c.Proxies {
		_ = p.proc.stop(syscall.SIGKILL)
	}
	for _, nd := range c.Nodes {
		if nd.proc != nil {
			_ = nd.proc.stop(syscall.SIGKILL)
		}
	}
	if c.coord != nil {
		_ = c.coord.stop(syscall.SIGKILL)
	}
	if c.Interposer != nil {
		c.Interposer.Close()
	}
	if c.netns != nil {
		c.netns.close() // after the kills: no process is left inside
	}
	c.unmountTmpfs()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
