package server

import (
	"context"
	"errors"
	"net"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/hints"
	"github.com/tako-kv/tako/server/metrics"
)

// errorKind classifies a failed replica call for tako_replica_errors_total.
func errorKind(err error) string {
	var status *eventloop.StatusError
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return metrics.KindTimeout
	case errors.Is(err, eventloop.ErrConnLost):
		return metrics.KindConnLost
	case errors.Is(err, eventloop.ErrUnavailable), errors.Is(err, eventloop.ErrHandshake),
		errors.Is(err, eventloop.ErrClosed), errors.As(err, &op) && op.Op == "dial":
		return metrics.KindUnreachable
	case errors.As(err, &status):
		return metrics.KindErrorReply
	}
	return metrics.KindOther
}

// countError counts a failed call to node made outside the fan-out (whose
// tasks count their own).
func (c *Cluster) countError(node string, err error) {
	if !errors.Is(err, kv.ErrNotFound) {
		c.metrics.ReplicaError(node, errorKind(err))
	}
}

// processMetrics registers what a node and a proxy share: the hints, the
// peer connections and the configuration version.
func processMetrics(reg *metrics.Registry, c *Cluster, hs *hints.Store, peers *peerPool, served func() int) {
	reg.Hints(hs.Stats)
	reg.Peers(peers.conns, served)
	reg.Config(func() string { return c.Config().Version })
}

// conns reports the connections open to each peer the configuration in use
// names (nodes as this pool knows them, by address).
func (p *peerPool) conns() []metrics.PeerConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]metrics.PeerConn, 0, len(p.clients))
	for addr, c := range p.clients {
		out = append(out, metrics.PeerConn{Node: p.names[addr], Conns: c.Conns()})
	}
	return out
}

// metrics is the healer's account for tako_healing_*.
func (h *healer) metrics() metrics.Healing {
	return metrics.Healing{Passes: h.passes.Load(), PushedRecords: h.pushed.Load(), ExchangedBytes: h.exchanged.Load(), Last: h.lastPass()}
}
