package server

import (
	"log/slog"
	"sync"

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
}

func newPeerPool(self string, maxFrame int, log *slog.Logger) *peerPool {
	return &peerPool{self: self, maxFrame: maxFrame, log: log, clients: make(map[string]*eventloop.Client)}
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
}

// retain closes the clients of peers that cfg no longer lists, so a node
// removed from the cluster leaves no connections or goroutines behind.
func (p *peerPool) retain(cfg *config.Config) {
	keep := make(map[string]bool)
	for _, n := range cfg.Nodes() {
		keep[n.PeerAddr()] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.clients {
		if !keep[addr] {
			c.Close()
			delete(p.clients, addr)
		}
	}
}
