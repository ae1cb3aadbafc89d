package eventloop

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// The server accepts connections itself and enrolls them with gnet's engine (Engine.Register
// with a net.Conn; gnet dups the descriptor and closes ours), because gnet v2.9.7 treats
// every accept error other than EAGAIN, EINTR, ECONNRESET and ECONNABORTED as fatal: its
// acceptor returns ErrAcceptSocket and the whole engine shuts down. EMFILE is such an
// error, so a flood of connections at the descriptor limit used to take the peer port
// away for good while the rest of the node stayed up.
//
// On EMFILE or ENFILE the loop gives up its reserve descriptor (a /dev/null opened at
// Start), accepts one pending connection and closes it at once, then takes the reserve
// again: the peer at the head of the backlog learns it was refused instead of waiting, and
// the loop does not spin on a listener that stays readable. It then backs off (5ms doubling
// to 500ms) and tries again; connections are served again as soon as descriptors free up.

const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = 500 * time.Millisecond
)

// acceptLoop accepts connections until Stop closes the listener.
func (s *Server) acceptLoop() {
	defer s.loops.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
			shed := false
			if isFDExhausted(err) {
				shed = s.shed()
			}
			s.acceptLog.log(s.log, "peer accept failed; backing off", "err", err, "backoff", backoff, "shed", shed)
			select {
			case <-s.stopping:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		ip := remoteIP(nc.RemoteAddr())
		if !s.perIP.take(ip, s.cfg.MaxConnsPerIP) {
			nc.Close()
			s.capLog.log(s.log, "closing peer connection: too many connections from its address",
				"remote", nc.RemoteAddr(), "limit", s.cfg.MaxConnsPerIP)
			continue
		}
		if s.cfg.TLS != nil {
			s.tlsConns.Add(1)
			go s.enrollTLS(nc, ip)
			continue
		}
		if !s.enroll(nc) {
			s.perIP.give(ip)
		}
	}
}

// ipConns counts the open connections of each remote address: taken by the accept loop,
// given back by OnClose (or by the accept loop when a connection was not enrolled).
type ipConns struct {
	mu   sync.Mutex
	open map[netip.Addr]int
}

// take counts a connection from ip unless ip holds limit already.
func (c *ipConns) take(ip netip.Addr, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[ip] >= limit {
		return false
	}
	c.open[ip]++
	return true
}

func (c *ipConns) give(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[ip]--; c.open[ip] <= 0 {
		delete(c.open, ip)
	}
}

// ip is the connection's remote IP, as the per-IP cap counted it at accept (for a TLS
// connection, its TCP address, not the bridge's): without the zone an IPv6 link-local
// address carries in pc.remote, which remoteIP never has.
func (pc *peerConn) ip() netip.Addr {
	ap, err := netip.ParseAddrPort(pc.remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// remoteIP is a connection's remote IP address (IPv4-mapped addresses unmapped); the zero
// Addr for other kinds of address, which then share one count.
func remoteIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// isFDExhausted reports whether err is the process's or the system's descriptor limit.
func isFDExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// shed frees the reserve descriptor, accepts one pending connection with it and closes it,
// then takes the reserve again. It reports whether a connection was shed. Accept loop only.
func (s *Server) shed() bool {
	if s.reserve == nil {
		s.reserve, _ = os.Open(os.DevNull) // descriptors may have come back meanwhile
		return false
	}
	s.reserve.Close()
	s.reserve = nil
	shed := false
	if tl, ok := s.ln.(*net.TCPListener); ok {
		// The listener is readable (that is why Accept failed), so this does not wait long;
		// the deadline makes sure of it.
		_ = tl.SetDeadline(time.Now().Add(10 * time.Millisecond))
		if nc, err := tl.Accept(); err == nil {
			nc.Close()
			shed = true
		}
		_ = tl.SetDeadline(time.Time{})
	}
	s.reserve, _ = os.Open(os.DevNull)
	return shed
}

// enroll hands an accepted connection to one of gnet's loops and waits until it is
// registered (OnOpen has run), so that accepting is paced by the loops. gnet dups the
// descriptor and closes nc in every case. It reports whether the connection was
// registered (then OnClose will see it).
func (s *Server) enroll(nc net.Conn) bool {
	return s.register(context.Background(), nc, nc.RemoteAddr().String())
}

// releaseFiles closes the reserve descriptor and removes gnet's socket directory (Stop,
// or a failed Start).
func (s *Server) releaseFiles() {
	if s.reserve != nil {
		s.reserve.Close()
		s.reserve = nil
	}
	if s.sockDir != "" {
		_ = os.RemoveAll(s.sockDir)
	}
}
