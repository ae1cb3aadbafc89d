package eventloop

import "sync"

// Pool holds one Client per peer address, created on first use with a shared configuration.
type Pool struct {
	cfg ClientConfig // Addr unused

	mu      sync.RWMutex
	clients map[string]*Client // REQUIRES: mu held
	closed  bool               // REQUIRES: mu held
}

// NewPool returns an empty pool; cfg applies to every client (cfg.Addr is ignored).
func NewPool(cfg ClientConfig) *Pool {
	return &Pool{cfg: cfg, clients: make(map[string]*Client)}
}

// Client returns the client for addr, creating it if needed. After Close it returns a
// closed client, whose requests fail with ErrClosed.
func (p *Pool) Client(addr string) *Client {
	p.mu.RLock()
	c, ok := p.clients[addr]
	p.mu.RUnlock()
	if ok {
		return c
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[addr]; ok {
		return c
	}
	cfg := p.cfg
	cfg.Addr = addr
	c = NewClient(cfg)
	if p.closed {
		c.Close()
		return c
	}
	p.clients[addr] = c
	return c
}

// Remove closes and forgets the client for addr (a peer that left the cluster).
func (p *Pool) Remove(addr string) {
	p.mu.Lock()
	c := p.clients[addr]
	delete(p.clients, addr)
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Close closes every client and waits for their goroutines to exit.
func (p *Pool) Close() error {
	p.mu.Lock()
	clients := p.clients
	p.clients, p.closed = map[string]*Client{}, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	return nil
}
