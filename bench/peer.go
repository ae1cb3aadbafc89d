package bench

import (
	"errors"
	"time"
)

// ErrNoPeerClient is returned for -proto peer until the peer-protocol client is wired in.
var ErrNoPeerClient = errors.New("bench: peer protocol client not wired in yet (eventloop.Client)")

// dialPeer is the hook for Tako's binary peer protocol. To wire it: wrap one eventloop.Client
// connection in a type with Get(key, dst) / Set(key, value) / Close (Target) and return it here.
// Each worker calls dialPeer once and issues requests sequentially, like the HTTP targets; a
// pipelined variant can keep several requests in flight per worker later.
func dialPeer(addr string, timeout time.Duration) (Target, error) {
	_, _ = addr, timeout
	return nil, ErrNoPeerClient
}
