package launcher

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/tako-kv/tako/server/config"
)

// listenAddr is an address a child will listen on and who that child is.
type listenAddr struct {
	addr, owner string
}

// clusterAddrs lists every address the whole cluster listens on.
func clusterAddrs(cfg *config.Config, proxyPorts []int, skip []string) []listenAddr {
	var as []listenAddr
	for _, id := range coordinatorIDs(cfg) {
		as = append(as, listenAddr{cfg.Coordinators[id].String(), "coordinator " + id})
	}
	var nodes []config.Node
	for _, n := range cfg.Nodes() {
		if !slices.Contains(skip, n.ID) {
			nodes = append(nodes, n)
		}
	}
	as = append(as, nodeAddrs(nodes)...)
	for _, p := range proxyPorts {
		as = append(as, listenAddr{fmt.Sprintf(":%d", p), fmt.Sprintf("proxy -p %d", p)})
	}
	return as
}

func nodeAddrs(nodes []config.Node) []listenAddr {
	var as []listenAddr
	for _, n := range nodes {
		as = append(as, listenAddr{n.HTTPAddr(), "node " + n.ID + " http"}, listenAddr{n.PeerAddr(), "node " + n.ID + " peer"})
	}
	return as
}

// checkFree binds every address for a moment, so a leftover process (from
// an earlier run, or anything else) is reported clearly instead of
// answering health checks in a new child's place.
func checkFree(addrs []listenAddr) error {
	var busy []string
	inUse := false
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			busy = append(busy, fmt.Sprintf("%s (%s): %v", a.addr, a.owner, errors.Unwrap(err)))
			inUse = inUse || errors.Is(err, syscall.EADDRINUSE)
			continue
		}
		ln.Close()
	}
	if len(busy) == 0 {
		return nil
	}
	hint := " (tako-cluster runs every process on this machine: every host must be local)"
	if inUse {
		hint = " (is another cluster running?)"
	}
	if len(busy) > 10 {
		busy = append(busy[:10], fmt.Sprintf("and %d more", len(busy)-10))
	}
	return fmt.Errorf("cannot listen where the cluster needs to%s:\n  %s", hint, strings.Join(busy, "\n  "))
}
