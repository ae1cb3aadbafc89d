package chaos

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Network modes (Config.Network, or the TAKO_CHAOS_NETWORK environment variable).
const (
	NetworkAuto     = ""         // namespaces where they work, else loopback
	NetworkLoopback = "loopback" // 127.0.0.x hosts behind the interposer
	NetworkNetns    = "netns"    // namespaces, or fail
)

// NetworkEnv overrides Config.Network when that is empty (for tako-bench and go test).
const NetworkEnv = "TAKO_CHAOS_NETWORK"

// hostPlan says at which address each host of the cluster is configured.
type hostPlan interface {
	nodeHost(i int) string // node i, 1-based
	coordHost() string
}

// loopbackHosts puts node i at 127.0.0.(10+i) and the coordinator at 127.0.3.10.
type loopbackHosts struct{}

func (loopbackHosts) nodeHost(i int) string { return "127.0.0." + strconv.Itoa(10+i) }
func (loopbackHosts) coordHost() string     { return "127.0.3.10" }

// chooseNetwork decides the mode: it returns a usable netns for n nodes, or nil and why
// loopback is used. A mode asked for explicitly that cannot be had is an error.
func chooseNetwork(mode string, n int, log *slog.Logger) (*netns, string, error) {
	if mode == NetworkAuto {
		mode = os.Getenv(NetworkEnv)
	}
	switch mode {
	case NetworkLoopback:
		return nil, "loopback asked for", nil
	case NetworkAuto, NetworkNetns:
	default:
		return nil, "", fmt.Errorf("chaos: network mode %q (want %q, %q or empty)", mode, NetworkLoopback, NetworkNetns)
	}
	why := netnsUnavailable()
	if why == "" {
		ns, err := newNetns(n, log)
		if err == nil {
			return ns, "", nil
		}
		why = err.Error()
	}
	if mode == NetworkNetns {
		return nil, "", fmt.Errorf("chaos: network namespaces asked for: %s", why)
	}
	return nil, why, nil
}

// netnsUnavailable says why namespaces cannot be used here ("" if they can): not root, or
// `ip netns add` fails (no ip, no CAP_SYS_ADMIN in a container, no /run/netns).
func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	probe := "tako-probe-" + randHex(4)
	if err := ipCmd("netns", "add", probe); err != nil {
		return err.Error()
	}
	if err := ipCmd("netns", "del", probe); err != nil {
		return err.Error()
	}
	return ""
}

// netns is a cluster's network of namespaces: a bridge tkb<sfx> at 10.a.b.1/24 in the root
// namespace, and for node i a namespace tk<sfx>n<i> whose eth0 (a veth pair, the other end
// on the bridge) is 10.a.b.(10+i). The proxies, the coordinator and the harness's own
// clients stay in the root namespace and reach the nodes over the bridge, so their packets
// to a node come from 10.a.b.1. Everything it creates carries the random suffix, and close
// removes exactly that. Safe for concurrent use.
type netns struct {
	sfx    string
	prefix string // "10.a.b."
	n      int
	log    *slog.Logger

	mu     sync.Mutex
	routes map[[2]int]bool // blackholes: in namespace of node [0], to node [1] (0: the bridge)
	made   []func() error  // undo steps, in creation order
}

const netnsCmdWait = 10 * time.Second

// ipCmd runs ip with args, bounded, and wraps a failure with its output.
func ipCmd(args ...string) error {
	cmd := exec.Command("ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: ip %s: %w", strings.Join(args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("chaos: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return nil
	case <-time.After(netnsCmdWait):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("chaos: ip %s: no answer in %v", strings.Join(args, " "), netnsCmdWait)
	}
}

func randHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newNetns creates the bridge and n namespaces. On error whatever it made is removed.
func newNetns(n int, log *slog.Logger) (_ *netns, err error) {
	prefix, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	ns := &netns{sfx: randHex(4), prefix: prefix, n: n, log: log, routes: map[[2]int]bool{}}
	defer func() {
		if err != nil {
			ns.close()
		}
	}()
	br := ns.bridge()
	if err := ns.make([]string{"link", "add", br, "type", "bridge"}, []string{"link", "del", br}); err != nil {
		return nil, err
	}
	for _, args := range [][]string{{"addr", "add", prefix + "1/24", "dev", br}, {"link", "set", br, "up"}} {
		if err := ipCmd(args...); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= n; i++ {
		if err := ns.addHost(i); err != nil {
			return nil, err
		}
	}
	if err := ns.checkBridged(); err != nil {
		return nil, err
	}
	return ns, nil
}

// bridgeWait bounds the connect of checkBridged.
const bridgeWait = 2 * time.Second

// checkBridged proves that node 1 reaches node 2 over the bridge: with br_netfilter loaded
// and an iptables FORWARD policy of DROP (a host running Docker, say), bridged packets
// between namespaces are dropped, and the nodes would never hear each other while the
// harness, whose packets are not forwarded, still reached every one.
func (ns *netns) checkBridged() error {
	if ns.n < 2 {
		return nil
	}
	var ln net.Listener
	if err := ns.inNamespace(2, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(ns.nodeHost(2), "0"))
		return err
	}); err != nil {
		return fmt.Errorf("chaos: listen in %s: %w", ns.name(2), err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	return ns.inNamespace(1, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), bridgeWait)
		if err != nil {
			return fmt.Errorf("chaos: %s cannot reach %s over bridge %s (bridged traffic filtered? see net.bridge.bridge-nf-call-iptables): %w",
				ns.name(1), ln.Addr(), ns.bridge(), err)
		}
		return c.Close()
	})
}

// inNamespace runs f on an OS thread that has entered node i's network namespace, so that
// the sockets f opens belong to it (and keep to it afterwards, on any thread). The thread is
// never unlocked: it exits with the goroutine rather than go back to run others in the
// wrong namespace.
func (ns *netns) inNamespace(i int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns.name(i), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("chaos: open namespace %s: %w", ns.name(i), err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("chaos: enter namespace %s: %w", ns.name(i), err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// make runs ip args and, once it worked, remembers undo for close.
func (ns *netns) make(args, undo []string) error {
	if err := ipCmd(args...); err != nil {
		return err
	}
	ns.made = append(ns.made, func() error { return ipCmd(undo...) })
	return nil
}

// addHost makes node i's namespace and joins it to the bridge.
func (ns *netns) addHost(i int) error {
	name, host := ns.name(i), fmt.Sprintf("tk%sh%d", ns.sfx, i) // host end; ≤ 15 bytes
	if err := ns.make([]string{"netns", "add", name}, []string{"netns", "del", name}); err != nil {
		return err
	}
	// Deleting the namespace deletes its end of the pair, and so the host end; this undo
	// covers a failure before the move.
	if err := ns.make([]string{"link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name},
		[]string{"link", "del", host}); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "set", host, "master", ns.bridge(), "up"},
		{"-n", name, "addr", "add", ns.nodeHost(i) + "/24", "dev", "eth0"},
		{"-n", name, "link", "set", "eth0", "up"},
		{"-n", name, "link", "set", "lo", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return err
		}
	}
	return nil
}

// freeSubnet picks a random 10.a.b.0/24 that no interface's IPv4 address is inside.
func freeSubnet() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("chaos: interface addresses: %w", err)
	}
	for range 50 {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.%d.%d.0/24", b[0], b[1]))
		used := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (subnet.Contains(ipn.IP) || ipn.Contains(subnet.IP)) {
				used = true
			}
		}
		if !used {
			return fmt.Sprintf("10.%d.%d.", b[0], b[1]), nil
		}
	}
	return "", errors.New("chaos: no free /24 in 10.0.0.0/8")
}

func (ns *netns) bridge() string        { return "tkb" + ns.sfx }
func (ns *netns) name(i int) string     { return fmt.Sprintf("tk%sn%d", ns.sfx, i) }
func (ns *netns) bridgeIP() string      { return ns.prefix + "1" }
func (ns *netns) nodeHost(i int) string { return ns.prefix + strconv.Itoa(10+i) }

// The coordinator stays in the root namespace, on the bridge's address, which the nodes reach.
func (ns *netns) coordHost() string { return ns.bridgeIP() }

// wrap returns the command that runs bin with args inside node i's namespace. ip netns exec
// execs bin in its own process, so the pid, and the signals the nemesis sends, are bin's.
func (ns *netns) wrap(i int, bin string, args []string) (string, []string) {
	return "ip", append([]string{"netns", "exec", ns.name(i), bin}, args...)
}

func (ns *netns) String() string {
	return fmt.Sprintf("network namespaces %s..%d, bridge %s at %s1/24", ns.name(1), ns.n, ns.bridge(), ns.prefix)
}

// setPartition replaces the blackhole routes with those of p; ids[i-1] is node i's id.
// A node cut from another gets a blackhole to its address, both ways; a node cut from the
// clients one to the bridge address, where every root-namespace client's packets come from.
// Nothing is reset: established connections stall, as in a real partition. A connect from
// inside a namespace to a blackholed address fails at once (EINVAL); a client's connect to
// a node cut from the clients times out, since the node's replies are what is dropped.
func (ns *netns) setPartition(p Partition, ids []string) error {
	want := map[[2]int]bool{}
	for a := 1; a <= len(ids); a++ {
		if p.Blocks("", ids[a-1]) {
			want[[2]int{a, 0}] = true
		}
		for b := 1; b <= len(ids); b++ {
			if a != b && p.Blocks(ids[a-1], ids[b-1]) {
				want[[2]int{a, b}] = true
			}
		}
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var errs []error
	for r := range ns.routes {
		if !want[r] {
			if err := ns.route("del", r); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(ns.routes, r)
		}
	}
	for r := range want {
		if !ns.routes[r] {
			if err := ns.route("add", r); err != nil {
				errs = append(errs, err)
				continue
			}
			ns.routes[r] = true
		}
	}
	return errors.Join(errs...)
}

func (ns *netns) route(verb string, r [2]int) error {
	dst := ns.bridgeIP()
	if r[1] > 0 {
		dst = ns.nodeHost(r[1])
	}
	return ipCmd("-n", ns.name(r[0]), "route", verb, "blackhole", dst+"/32")
}

// close removes what newNetns made, newest first; the processes in the namespaces must
// have been killed. Failures are logged. Safe to call more than once.
func (ns *netns) close() {
	ns.mu.Lock()
	made := ns.made
	ns.made = nil
	ns.mu.Unlock()
	for i := len(made) - 1; i >= 0; i-- {
		if err := made[i](); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			ns.log.Warn("chaos: network clean-up", "err", err)
		}
	}
}
