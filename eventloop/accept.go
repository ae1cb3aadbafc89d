package eventloop

import (
	"context"
	"errors"
	"net"
	"os"
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
		if s.cfg.TLS != nil {
			s.tlsConns.Add(1)
			go s.enrollTLS(nc)
			continue
		}
		s.enroll(nc)
	}
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
// descriptor and closes nc in every case.
func (s *Server) enroll(nc net.Conn) {
	s.register(context.Background(), nc, nc.RemoteAddr().String())
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
