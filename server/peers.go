package server

import (
	"log/slog"
	"sync"
	"time"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/server/config"
)

// peerPool keeps one pipelined client per peer address, shared by every
// configuration this process goes through, so a configuration change does
// not drop connections.
type peerPool struct {
	self     string
	maxFrame int
	log      *slog.Logger

	mu      sync.Mutex
	clients map[string]*eventloop.Client
	retired map[*eventloop.Client]*time.Timer // dropped by a configuration, closed later
}

// retireDelay is how long the client of a peer that a new configuration
// dropped stays open: requests that loaded the previous topology may still
// be using it, and each finishes within its peer request timeout.
const retireDelay = 30 * time.Second

func newPeerPool(self string, maxFrame int, log *slog.Logger) *peerPool {
	return &peerPool{self: self, maxFrame: maxFrame, log: log,
		clients: make(map[string]*eventloop.Client), retired: make(map[*eventloop.Client]*time.Timer)}
}

func (p *peerPool) replica(n config.Node) Replica {
	addr := n.PeerAddr()
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[addr]
	if !ok {
		// One pipelined connection per peer: requests from every client
		// goroutine coalesce into fewer, larger writes and reads (measured
		// +10% proxy reads, and no loss on 180 KiB ingest, against two).
		c = eventloop.NewClient(eventloop.ClientConfig{Addr: addr, NodeID: p.self, Conns: 1, MaxFrame: p.maxFrame, Logger: p.log})
		p.clients[addr] = c
	}
	return peerReplica{c}
}

func (p *peerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.Close()
	}
	clear(p.clients)
	for c, timer := range p.retired {
		timer.Stop()
		c.Close()
	}
	clear(p.retired)
}

// retain retires the clients of peers that cfg no longer lists: each is
// closed retireDelay later, so a node removed from the cluster leaves no
// connections or goroutines behind, and no request in flight loses its
// connection. A peer listed again meanwhile gets a new client.
func (p *peerPool) retain(cfg *config.Config) {
	keep := make(map[string]bool)
	for _, n := range cfg.Nodes() {
		keep[n.PeerAddr()] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.clients {
		if keep[addr] {
			continue
		}
		delete(p.clients, addr)
		p.retired[c] = time.AfterFunc(retireDelay, func() {
			p.mu.Lock()
			_, ok := p.retired[c]
			delete(p.retired, c)
			p.mu.Unlock()
			if ok {
				c.Close()
			}
		})
	}
}
