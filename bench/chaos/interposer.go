package chaos

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/tako-kv/tako/codec"
)

// Partition is a set of blocked node pairs: every node of Isolated is cut off from every node
// outside it, in both directions. Clients (proxies and HTTP clients, which send an empty node
// id) reach every node unless CutClients is set: then they stand with the majority and cannot
// reach the isolated nodes either. The zero Partition blocks nothing.
type Partition struct {
	Isolated   []string
	CutClients bool
}

// Blocks reports whether a connection from src to dst is dropped; src "" is a client.
func (p Partition) Blocks(src, dst string) bool {
	in := func(id string) bool { return slices.Contains(p.Isolated, id) }
	if src == "" {
		return p.CutClients && in(dst)
	}
	return in(src) != in(dst)
}

func (p Partition) String() string {
	if len(p.Isolated) == 0 {
		return "none"
	}
	s := fmt.Sprintf("%v isolated from the other nodes", p.Isolated)
	if p.CutClients {
		s += " and from the clients"
	}
	return s
}

// Interposer forwards TCP from the address each node is configured at to the address it
// really listens on (tako-node -listen), so that it can drop the connections a Partition
// blocks. On a peer port it reads the first frame, the Hello, to learn which node connects.
//
// When a partition starts, forwarded connections it blocks are closed, and new ones are
// blackholed: accepted, read and discarded, never answered, closed after blackholeFor, so the
// connecting side sees timeouts rather than refusals. Healing closes the blackholed ones too,
// so clients reconnect at once. Safe for concurrent use.
type Interposer struct {
	log *slog.Logger

	mu    sync.Mutex
	part  Partition
	links map[*link]struct{}
	lns   []net.Listener
	done  chan struct{}
	wg    sync.WaitGroup
}

// link is one accepted connection: forwarded (up set) or blackholed (up nil).
type link struct {
	src, dst   string // node ids; src "" for a client
	down, up   net.Conn
	blackholed bool
}

func (l *link) close() {
	_ = l.down.Close()
	if l.up != nil {
		_ = l.up.Close()
	}
}

const (
	helloWait    = 5 * time.Second  // for the first frame of a peer connection
	dialWait     = time.Second      // to the real address
	blackholeFor = 30 * time.Second // before a blackholed connection is closed
)

// NewInterposer returns an interposer that forwards nothing yet (see Forward).
func NewInterposer(log *slog.Logger) *Interposer {
	return &Interposer{log: log, links: map[*link]struct{}{}, done: make(chan struct{})}
}

// Forward listens on from and forwards to to, the node dst's real address; peer says that
// the port speaks the peer protocol (its first frame names the connecting node).
func (ip *Interposer) Forward(from, to, dst string, peer bool) error {
	ln, err := net.Listen("tcp", from)
	if err != nil {
		return fmt.Errorf("chaos: interpose %s: %w", from, err)
	}
	ip.mu.Lock()
	ip.lns = append(ip.lns, ln)
	ip.mu.Unlock()
	ip.wg.Add(1)
	go func() {
		defer ip.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			ip.wg.Add(1)
			go func() { defer ip.wg.Done(); ip.serve(c, to, dst, peer) }()
		}
	}()
	return nil
}

// SetPartition replaces the current partition (the zero Partition heals everything) and
// closes the connections whose fate changed.
func (ip *Interposer) SetPartition(p Partition) {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	ip.part = p
	for l := range ip.links {
		if l.blackholed != p.Blocks(l.src, l.dst) {
			l.close()
		}
	}
}

// Close stops listening, closes every connection and waits for the forwarding goroutines.
func (ip *Interposer) Close() {
	ip.mu.Lock()
	select {
	case <-ip.done:
	default:
		close(ip.done)
	}
	for _, ln := range ip.lns {
		_ = ln.Close()
	}
	for l := range ip.links {
		l.close()
	}
	ip.mu.Unlock()
	ip.wg.Wait()
}

func (ip *Interposer) serve(c net.Conn, to, dst string, peer bool) {
	l := &link{dst: dst, down: c}
	var first []byte
	if peer {
		var err error
		if first, l.src, err = readHello(c); err != nil {
			ip.log.Debug("interposer: no hello", "to", dst, "err", err)
			_ = c.Close()
			return
		}
	}
	if !ip.register(l, to) {
		return
	}
	defer ip.unregister(l)
	if l.blackholed {
		ip.blackhole(l)
		return
	}
	if _, err := l.up.Write(first); err != nil {
		return
	}
	pipe(l)
}

// register decides l's fate under the current partition, dials the real address for a
// forwarded link, and records it so that SetPartition and Close can reach it. It reports
// false, with c closed, when there is nothing to serve.
func (ip *Interposer) register(l *link, to string) bool {
	ip.mu.Lock()
	blocked := ip.part.Blocks(l.src, l.dst)
	ip.mu.Unlock()
	if !blocked {
		up, err := net.DialTimeout("tcp", to, dialWait)
		if err != nil {
			_ = l.down.Close() // the node is down: the client sees a refusal, as it would
			return false
		}
		l.up = up
	}
	ip.mu.Lock()
	defer ip.mu.Unlock()
	select {
	case <-ip.done:
		l.close()
		return false
	default:
	}
	// The partition may have changed while dialling: decide again.
	if ip.part.Blocks(l.src, l.dst) != blocked {
		l.close()
		return false
	}
	l.blackholed = blocked
	ip.links[l] = struct{}{}
	return true
}

func (ip *Interposer) unregister(l *link) {
	ip.mu.Lock()
	delete(ip.links, l)
	ip.mu.Unlock()
	l.close()
}

// blackhole reads and discards what the client sends until blackholeFor passes or the link
// is closed.
func (ip *Interposer) blackhole(l *link) {
	_ = l.down.SetReadDeadline(time.Now().Add(blackholeFor))
	_, _ = io.Copy(io.Discard, l.down)
}

// pipe copies both ways until either side ends, then closes both.
func pipe(l *link) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(l.up, l.down)
		l.close()
	}()
	_, _ = io.Copy(l.down, l.up)
	l.close()
	wg.Wait()
}

// errNotHello reports a peer connection whose first frame is not a Hello.
var errNotHello = errors.New("chaos: first frame is not a hello")

// readHello reads the first frame of a peer connection and returns its bytes (to be sent on)
// and the node id it names ("" for a proxy or another client).
func readHello(c net.Conn) ([]byte, string, error) {
	_ = c.SetReadDeadline(time.Now().Add(helloWait))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	frame := make([]byte, codec.HeaderSize, 256)
	if _, err := io.ReadFull(c, frame); err != nil {
		return nil, "", err
	}
	h, err := codec.ParseHeader(frame, codec.DefaultMaxFrame)
	if err != nil {
		return nil, "", err
	}
	if h.Op != codec.OpHello || h.FrameLen() > 64<<10 {
		return nil, "", fmt.Errorf("%w: op %v, %d bytes", errNotHello, h.Op, h.FrameLen())
	}
	frame = append(frame, make([]byte, h.FrameLen()-codec.HeaderSize)...)
	if _, err := io.ReadFull(c, frame[codec.HeaderSize:]); err != nil {
		return nil, "", err
	}
	var req codec.Request
	if err := codec.DecodeRequest(frame, &req); err != nil {
		return nil, "", err
	}
	return frame, string(req.NodeID), nil
}
