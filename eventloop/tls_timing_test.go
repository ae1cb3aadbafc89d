package eventloop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/tako-kv/tako/codec"
)

// directTLSServer is the alternative to the bridge (doc.go, "TLS"), reduced to what the
// benchmarks need: a goroutine per connection reading frames from the tls.Conn and
// answering them like nullHandler, with none of the Server's limits, parking or timeouts.
// It bounds what serving TLS connections outside gnet could gain.
type directTLSServer struct {
	ln    net.Listener
	value []byte
	wg    sync.WaitGroup
}

func startDirectTLS(b *testing.B, cfg *tls.Config, value []byte) string {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		b.Fatal(err)
	}
	s := &directTLSServer{ln: ln, value: value}
	s.wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(nc) })
		}
	})
	b.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return ln.Addr().String()
}

// serve answers frames until the connection ends; replies are buffered and flushed when
// no more input is buffered, so pipelined requests share writes as they do on the loop.
func (s *directTLSServer) serve(nc net.Conn) {
	defer nc.Close()
	r := bufio.NewReaderSize(nc, 64<<10)
	w := bufio.NewWriterSize(nc, 64<<10)
	frame := make([]byte, 0, 256<<10)
	var req codec.Request
	for {
		hdr, err := r.Peek(codec.HeaderSize)
		if err != nil {
			return
		}
		h, err := codec.ParseHeader(hdr, codec.DefaultMaxFrame)
		if err != nil {
			return
		}
		frame = frame[:h.FrameLen()]
		if _, err := io.ReadFull(r, frame); err != nil {
			return
		}
		if codec.DecodeRequest(frame, &req) != nil {
			return
		}
		var out []byte
		switch req.Op {
		case codec.OpHello:
			out = codec.AppendHelloReply(nil, req.ID, codec.MaxVersion, []byte("direct"))
		case codec.OpSet:
			out = codec.AppendSetReply(w.AvailableBuffer(), req.ID, codec.StatusApplied, req.TS)
		case codec.OpGet:
			out = codec.AppendGetReplyHead(w.AvailableBuffer(), req.ID, codec.StatusOK, 1, 0, len(s.value))
		}
		_, _ = w.Write(out)
		if req.Op == codec.OpGet {
			_, _ = w.Write(s.value)
		}
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
	}
}

// BenchmarkTLSDirect runs BenchmarkPipelined's, BenchmarkSequential's and BenchmarkLarge's
// TLS workloads against directTLSServer: compare with their -tls runs (the bridge) and
// BenchmarkRawTCP/tls-*.
func BenchmarkTLSDirect(b *testing.B) {
	tt := sharedTLS(b)
	ctx := context.Background()
	key := []byte("user:0000000042")
	b.Run("sequential-get100B", func(b *testing.B) {
		addr := startDirectTLS(b, tt.server, bytes.Repeat([]byte{'v'}, 100))
		sequentialGets(b, newTestClient(b, addr, withClientTLS(tt.client)), key)
	})
	for _, c := range []struct {
		name      string
		size, par int
		get       bool
	}{{"get100B", 100, 64, true}, {"set100B", 100, 64, false}, {"set180KiB", 180 << 10, 4, false}, {"get180KiB", 180 << 10, 4, true}} {
		b.Run(c.name, func(b *testing.B) {
			value := bytes.Repeat([]byte{'v'}, c.size)
			addr := startDirectTLS(b, tt.server, value)
			cl := newTestClient(b, addr, withClientTLS(tt.client))
			if c.size > 1000 {
				b.SetBytes(int64(c.size))
			}
			runParallel(b, c.par, func() error {
				if c.get {
					resp, err := cl.Get(ctx, key)
					resp.Release()
					return err
				}
				_, err := cl.Set(ctx, key, 1, 0, value)
				return err
			})
		})
	}
}
