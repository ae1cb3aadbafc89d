package bench

import (
	"context"
	"sync"
	"testing"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
)

// memPeer is a minimal peer-protocol server: an in-memory map behind a real
// eventloop.Server.
type memPeer struct {
	mu   sync.Mutex
	vals map[string][]byte
}

func (m *memPeer) Handle(req *codec.Request, rw *eventloop.ReplyWriter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch req.Op {
	case codec.OpSet:
		m.vals[string(req.Key)] = append([]byte(nil), req.Value...)
		rw.Set(codec.StatusApplied, req.TS)
	case codec.OpGet:
		v, ok := m.vals[string(req.Key)]
		if !ok {
			rw.Get(codec.StatusNotFound, 0, 0, nil)
			return
		}
		rw.Get(codec.StatusOK, 1, 0, v)
	default:
		rw.Error(codec.StatusUnsupported, "not here")
	}
}

func TestPeerTarget(t *testing.T) {
	srv := eventloop.NewServer(eventloop.ServerConfig{Addr: "127.0.0.1:0", Handler: &memPeer{vals: map[string][]byte{}}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	cfg := shortConfig("a")
	cfg.Conns = 4
	res, err := Run(context.Background(), cfg, Endpoint{Name: "peer", Proto: ProtoPeer, Addr: srv.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.ErrorCount != 0 || res.Reads == 0 || res.Writes == 0 {
		t.Fatalf("peer run: %d ops (%d reads, %d writes), errors %s", res.Ops, res.Reads, res.Writes, res.ErrorSummary())
	}
}
