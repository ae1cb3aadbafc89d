package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/tlsconf"
)

// Target is one client connection to a store. Each worker goroutine owns one and issues
// requests on it sequentially, so implementations need no locking.
type Target interface {
	// Get reads key. It returns the value appended to dst[:0] or an internal buffer, valid
	// until the next call on this Target. A missing key is ErrNotFound or a *StatusError(404).
	Get(key, dst []byte) ([]byte, error)
	// Set stores value under key and returns once the store acknowledged it.
	Set(key, value []byte) error
	// Close releases the connection.
	Close() error
}

// Sentinel errors of the load loop.
var (
	ErrNotFound  = errors.New("bench: key not found")
	ErrMismatch  = errors.New("bench: value read back differs")
	ErrBadReply  = errors.New("bench: malformed reply")
	ErrBadTarget = errors.New("bench: unknown protocol")
)

// StatusError is a non-2xx HTTP reply.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return "bench: http status " + strconv.Itoa(e.Code) }

// Protocols are the Endpoint.Proto values NewTarget understands.
const (
	ProtoHTTP  = "http"  // Tako HTTP API (node, proxy) and the bare server
	ProtoEtcd  = "etcd"  // etcd v3 JSON gateway
	ProtoRedis = "redis" // RESP
	// ProtoRedisWait is RESP to a primary, every SET followed by WAIT 1 (a replica acknowledged it).
	ProtoRedisWait = "redis-wait"
	ProtoPeer      = "peer" // Tako binary peer protocol (see peer.go)
)

// NewTarget opens one connection speaking ep.Proto to ep.Addr (host:port).
func NewTarget(ep Endpoint, timeout time.Duration) (Target, error) {
	proto, addr := ep.Proto, ep.Addr
	tlsCfg, err := ep.clientTLS(proto == ProtoPeer)
	if err != nil {
		return nil, err
	}
	switch proto {
	case ProtoHTTP, "":
		t := NewHTTPTarget(addr, timeout)
		if tlsCfg != nil {
			t.useTLS(tlsCfg)
		}
		if ep.TokenFile != "" {
			token, err := httpproxy.ReadClientToken(ep.TokenFile)
			if err != nil {
				t.Close()
				return nil, fmt.Errorf("bench: -token-file: %w", err)
			}
			t.authorize(token)
		}
		return t, nil
	case ProtoEtcd:
		return NewEtcdTarget(addr, timeout), nil
	case ProtoRedis:
		return DialRESP(addr, timeout)
	case ProtoRedisWait:
		return DialRESPWait(addr, timeout, 1)
	case ProtoPeer:
		return dialPeer(addr, ep.SecretFile, tlsCfg, timeout)
	}
	if tlsCfg != nil {
		return nil, fmt.Errorf("%w: TLS with -proto %s", ErrBadTarget, proto)
	}
	return nil, fmt.Errorf("%w %q", ErrBadTarget, proto)
}

// clientTLS is ep's client TLS configuration (nil without a CA file): the server verified
// against TLSCAFile, under the address's host name, presenting TLSCertFile when set,
// which a peer target must.
func (ep Endpoint) clientTLS(peer bool) (*tls.Config, error) {
	switch {
	case ep.TLSCAFile == "" && ep.TLSCertFile == "" && ep.TLSKeyFile == "":
		return nil, nil
	case ep.TLSCAFile == "":
		return nil, errors.New("bench: a TLS client certificate needs -tls-ca to verify the server")
	case ep.TLSCertFile == "" && peer:
		return nil, errors.New("bench: -proto peer over TLS needs -tls-cert and -tls-key: the peer port asks for a client certificate")
	}
	var c *tls.Config
	if ep.TLSCertFile == "" {
		pool, err := tlsconf.LoadCA("-tls-ca", ep.TLSCAFile)
		if err != nil {
			return nil, err
		}
		c = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	} else {
		set, err := tlsconf.Load(config.TLSFiles{Cert: ep.TLSCertFile, Key: ep.TLSKeyFile, CA: ep.TLSCAFile})
		if err != nil {
			return nil, err
		}
		c = set.PeerClient()
	}
	if host, _, err := net.SplitHostPort(ep.Addr); err == nil {
		c.ServerName = host
	}
	return c, nil
}

// statusKinds caches "http NNN" so counting status errors does not allocate.
var statusKinds = func() (k [600]string) {
	for i := range k {
		k[i] = "http " + strconv.Itoa(i)
	}
	return k
}()

// ErrorKind names the class of err for the errors-by-kind report.
func ErrorKind(err error) string {
	var se *StatusError
	var re RESPError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		if se.Code >= 0 && se.Code < len(statusKinds) {
			return statusKinds[se.Code]
		}
		return "http other"
	case errors.Is(err, ErrMismatch):
		return "mismatch"
	case errors.Is(err, ErrNotFound):
		return "not found"
	case errors.As(err, &re):
		return "redis error"
	case errors.Is(err, ErrNotReplicated):
		return "not replicated"
	case errors.Is(err, ErrBadReply):
		return "bad reply"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "conn reset"
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, net.ErrClosed):
		return "conn closed"
	}
	return "other"
}

// transportError reports errors after which the connection is likely broken, so the worker backs
// off briefly instead of spinning on e.g. a refused connection.
func transportError(err error) bool {
	var se *StatusError
	return !errors.As(err, &se) && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrNotFound) &&
		!errors.Is(err, ErrNotReplicated)
}
