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
	self string
	log  *slog.Logger

	mu      sync.Mutex
	clients map[string]*eventloop.Client
}

func newPeerPool(self string, log *slog.Logger) *peerPool {
	return &peerPool{self: self, log: log, clients: make(map[string]*eventloop.Client)}
}

func (p *peerPool) replica(n config.Node) Replica {
	addr := n.PeerAddr()
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[addr]
	if !ok {
		c = eventloop.NewClient(eventloop.ClientConfig{Addr: addr, NodeID: p.self, Logger: p.log})
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
