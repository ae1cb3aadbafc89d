package eventloop

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// TLS on the peer port (doc.go, "TLS"). gnet reads and writes raw descriptors, so it
// cannot run crypto/tls itself. With ServerConfig.TLS set, each accepted connection does
// its TLS handshake in a goroutine of its own (within HandshakeTimeout of accept), and is
// then bridged to the event loops: a Unix socketpair whose one end gnet serves exactly like
// a plaintext TCP connection (framing, the Hello and cluster secret handshake, limits,
// backpressure, zero-copy replies into the socketpair), while two goroutines copy between
// the other end and the tls.Conn. The plaintext path does not change.
//
// Backpressure carries through: a peer that stops reading stalls the copy into TLS, the
// socketpair fills, and gnet's outbound buffer grows as for a TCP peer that stops reading
// (MaxOutbound, WriteTimeout). Each copy into TLS must finish within WriteTimeout, so a
// bridge never outlives its peer's silence by more than that. Either side ending closes
// both: gnet closing its end (a bad frame, an unproven secret, Stop) ends the TLS
// connection, and the TLS connection ending is an EOF on gnet's side.

// Sizes of a bridge's copy buffers: into gnet, one TLS record (16 KiB of plaintext) is read
// at a time; out of gnet, replies are taken up to 256 KiB at a time and crypto/tls cuts
// them into records.
const (
	bridgeInBuf   = 64 << 10
	bridgeOutBuf  = 256 << 10
	bridgeSockBuf = 1 << 20
)

// tlsRemote is the context gnet hands OnOpen for a bridged connection: the TLS
// connection's remote address (gnet sees only the socketpair).
type tlsRemote string

// enrollTLS runs the TLS handshake of an accepted connection and hands the connection to
// the loops over a bridge. It runs in its own goroutine (s.tlsConns): a slow handshake does
// not hold up accepting.
func (s *Server) enrollTLS(nc net.Conn, ip netip.Addr) {
	defer s.tlsConns.Done()
	registered := false
	defer func() {
		if !registered {
			s.perIP.give(ip)
		}
	}()
	remote := nc.RemoteAddr().String()
	tc := tls.Server(nc, s.cfg.TLS)
	ctx, cancel := context.WithTimeout(s.stopCtx, s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		tc.Close()
		s.authLog.log(s.log, "closing peer connection: TLS handshake failed", "remote", remote, "err", err)
		return
	}
	inner, outer, err := socketPair()
	if err != nil {
		tc.Close()
		s.acceptLog.log(s.log, "peer connection not bridged", "remote", remote, "err", err)
		return
	}
	s.tlsConns.Add(2)
	go s.bridgeOut(tc, outer)
	go s.bridgeIn(tc, outer)
	registered = s.register(gnet.NewContext(context.Background(), tlsRemote(remote)), inner, remote)
}

// register hands nc to one of gnet's loops and waits until it is registered (OnOpen has
// run). gnet dups the descriptor and closes nc in every case. It reports whether the
// connection was registered (then OnClose will see it).
func (s *Server) register(ctx context.Context, nc net.Conn, remote string) bool {
	res, err := s.eng.Register(gnet.NewNetConnContext(ctx, nc))
	if err != nil {
		nc.Close()
		s.acceptLog.log(s.log, "peer connection not registered", "remote", remote, "err", err)
		return false
	}
	if r, ok := <-res; ok && r.Err != nil {
		s.acceptLog.log(s.log, "peer connection not registered", "remote", remote, "err", r.Err)
		return false
	}
	return true
}

// bridgeIn copies what the TLS peer sends into gnet's end of the socketpair.
func (s *Server) bridgeIn(tc *tls.Conn, outer net.Conn) {
	defer s.tlsConns.Done()
	defer closeBoth(tc, outer)
	buf := make([]byte, bridgeInBuf)
	for {
		n, err := tc.Read(buf)
		if n > 0 {
			if _, werr := outer.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// bridgeOut copies gnet's replies to the TLS peer; each write must finish within
// WriteTimeout.
func (s *Server) bridgeOut(tc *tls.Conn, outer net.Conn) {
	defer s.tlsConns.Done()
	defer closeBoth(tc, outer)
	buf := make([]byte, bridgeOutBuf)
	for {
		n, err := outer.Read(buf)
		if n > 0 {
			if tc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)) != nil {
				return
			}
			if _, werr := tc.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// closeBoth ends a bridge: the TLS connection and our end of the socketpair.
func closeBoth(tc *tls.Conn, outer net.Conn) {
	// No close_notify: the peer protocol frames its own messages, and a peer that stopped
	// reading would block it.
	_ = tc.NetConn().Close()
	_ = outer.Close()
}

// socketPair returns the two ends of a connected Unix stream socketpair as net.Conns.
func socketPair() (inner, outer net.Conn, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		// Larger than the 208 KiB default, so that a large frame crosses in fewer turns.
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, bridgeSockBuf)
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, bridgeSockBuf)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "tako-tls-bridge")
		conns[i], err = net.FileConn(f) // dups the descriptor
		f.Close()
		if err != nil {
			if i == 0 {
				syscall.Close(fds[1])
			} else {
				conns[0].Close()
			}
			return nil, nil, fmt.Errorf("socketpair: %w", err)
		}
	}
	return conns[0], conns[1], nil
}

// remoteOf is the address a connection's log lines name: the TLS peer's for a bridged
// connection, else gnet's remote address.
func remoteOf(c gnet.Conn) string {
	if r, ok := c.Context().(tlsRemote); ok {
		return string(r)
	}
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// dialTLS runs the client side of the TLS handshake on nc within ctx.
func dialTLS(ctx context.Context, nc net.Conn, cfg *tls.Config) (net.Conn, error) {
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

// clientTLS returns cfg for dialling addr: a clone naming addr's host as the server to
// verify, unless cfg names one. nil stays nil.
func clientTLS(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil || cfg.ServerName != "" {
		return cfg
	}
	c := cfg.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		c.ServerName = host
	}
	return c
}

// gatherMax is how much a TLS client gathers before one write: crypto/tls writes each
// Write as records of its own, so the small frames a writev would carry together are
// copied into one buffer first.
const (
	gatherMax   = 64 << 10
	gatherLarge = 16 << 10 // buffers this large are written as they are
)

// writeBuffers writes bufs to w: with one writev on a plaintext connection (scratch nil),
// else gathering small buffers in *scratch. It consumes bufs like net.Buffers.WriteTo.
func writeBuffers(w net.Conn, bufs *net.Buffers, scratch *[]byte) error {
	if scratch == nil {
		_, err := bufs.WriteTo(w)
		return err
	}
	g := (*scratch)[:0]
	flush := func() error {
		if len(g) == 0 {
			return nil
		}
		_, err := w.Write(g)
		g = g[:0]
		return err
	}
	var err error
	for _, b := range *bufs {
		switch {
		case len(b) >= gatherLarge:
			if err = flush(); err == nil {
				_, err = w.Write(b)
			}
		case len(g)+len(b) > gatherMax:
			if err = flush(); err == nil {
				g = append(g, b...)
			}
		default:
			g = append(g, b...)
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = flush()
	}
	*scratch = g[:0]
	*bufs = (*bufs)[len(*bufs):]
	return err
}
