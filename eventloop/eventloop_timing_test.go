package eventloop

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
)

// nullHandler answers without storing anything, so that benchmarks measure the transport:
// Set is always applied, Get returns a fixed value (zero-copy when large).
type nullHandler struct{ value []byte }

func (h *nullHandler) Handle(req *codec.Request, rw *ReplyWriter) {
	switch req.Op {
	case codec.OpSet:
		_ = rw.Set(codec.StatusApplied, req.TS)
	case codec.OpGet:
		if len(h.value) >= 8<<10 {
			_ = rw.GetRef(codec.StatusOK, 1, 0, h.value, nil)
		} else {
			_ = rw.Get(codec.StatusOK, 1, 0, h.value)
		}
	default:
		_ = rw.Error(codec.StatusUnsupported, "")
	}
}

// benchMode is one way of running the peer protocol.
type benchMode struct {
	suffix  string
	secrets [][]byte
	tls     bool
}

// benchModes runs each transport benchmark three times, side by side: unauthenticated,
// with a cluster secret (whose cost is in the handshake only; see BenchmarkHandshake), and
// with the secret inside mutual TLS (tls.go's bridge).
var benchModes = []benchMode{{"", nil, false}, {"-secret", [][]byte{secretA}, false}, {"-tls", [][]byte{secretA}, true}}

// tlsConfigs returns the server and client TLS configurations of m (nil without TLS).
func (m benchMode) tlsConfigs(b testing.TB) (server, client *tls.Config) {
	if !m.tls {
		return nil, nil
	}
	tt := sharedTLS(b)
	return tt.server, tt.client
}

func benchClient(b *testing.B, value []byte, m benchMode) *Client {
	st, ct := m.tlsConfigs(b)
	// Default loop count: the benchmark's client shares the machine, as peers do in a node.
	srv := startServer(b, &nullHandler{value: value}, "", func(cfg *ServerConfig) { cfg.NumLoops = 0; cfg.Secrets = m.secrets; cfg.TLS = st })
	c := newTestClient(b, srv.Addr().String(), func(cfg *ClientConfig) { cfg.Secrets = m.secrets; cfg.TLS = ct })
	if err := c.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkHandshake is the cost of opening one connection: dial, handshake, close, with
// and without the cluster secret's challenge-response (one more round trip, four HMACs),
// and with a mutual TLS handshake (ECDSA P-256 certificates, TLS 1.3) under it.
func BenchmarkHandshake(b *testing.B) {
	for _, m := range benchModes {
		b.Run("hello"+m.suffix, func(b *testing.B) {
			st, ct := m.tlsConfigs(b)
			srv := startServer(b, &nullHandler{}, "", func(cfg *ServerConfig) { cfg.Secrets = m.secrets; cfg.TLS = st })
			cfg := ClientConfig{Addr: srv.Addr().String(), NodeID: "client-1", Secrets: m.secrets}
			cfg.setDefaults()
			ct = clientTLS(ct, cfg.Addr)
			b.ReportAllocs()
			for b.Loop() {
				nc, err := net.Dial("tcp", cfg.Addr)
				if err != nil {
					b.Fatal(err)
				}
				if ct != nil {
					if nc, err = dialTLS(context.Background(), nc, ct); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := handshake(nc, time.Now().Add(time.Second), &cfg); err != nil {
					b.Fatal(err)
				}
				nc.Close()
			}
		})
	}
}

// runParallel runs op from parallelism*GOMAXPROCS goroutines and reports ops/s.
func runParallel(b *testing.B, parallelism int, op func() error) {
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkPipelined: many goroutines sharing one client (2 connections), 100 B values.
func BenchmarkPipelined(b *testing.B) {
	key := []byte("user:0000000042")
	value := bytes.Repeat([]byte{'v'}, 100)
	ctx := context.Background()
	for _, m := range benchModes {
		b.Run("get100B"+m.suffix, func(b *testing.B) {
			c := benchClient(b, value, m)
			runParallel(b, 64, func() error {
				resp, err := c.Get(ctx, key)
				resp.Release()
				return err
			})
		})
		b.Run("set100B"+m.suffix, func(b *testing.B) {
			c := benchClient(b, nil, m)
			runParallel(b, 64, func() error {
				_, err := c.Set(ctx, key, 1, 0, value)
				return err
			})
		})
	}
}

// BenchmarkLarge moves 180 KiB values; compare MB/s with BenchmarkRawTCP.
func BenchmarkLarge(b *testing.B) {
	key := []byte("user:0000000042")
	value := bytes.Repeat([]byte{'v'}, 180<<10)
	ctx := context.Background()
	for _, m := range benchModes {
		b.Run("set180KiB"+m.suffix, func(b *testing.B) {
			c := benchClient(b, nil, m)
			b.SetBytes(int64(len(value)))
			runParallel(b, 4, func() error {
				_, err := c.Set(ctx, key, 1, 0, value)
				return err
			})
		})
		b.Run("get180KiB"+m.suffix, func(b *testing.B) {
			c := benchClient(b, value, m)
			b.SetBytes(int64(len(value)))
			runParallel(b, 4, func() error {
				resp, err := c.Get(ctx, key)
				resp.Release()
				return err
			})
		})
	}
}

// BenchmarkRawTCP is the ceiling for BenchmarkLarge: 180 KiB writes over loopback TCP to a
// reader that discards them, on 1 and on 2 connections (the client's default); and the
// same over TLS (tls-*), the ceiling for BenchmarkLarge's -tls runs: what a TLS server
// without the bridge (a goroutine per connection reading tls.Conn) could at best reach.
func BenchmarkRawTCP(b *testing.B) {
	for _, m := range []benchMode{{}, {suffix: "tls-", tls: true}} {
		for _, conns := range []int{1, 2} {
			b.Run(m.suffix+map[int]string{1: "180KiB-1conn", 2: "180KiB-2conns"}[conns], func(b *testing.B) {
				st, ct := m.tlsConfigs(b)
				rawTCP(b, conns, 180<<10, st, ct)
			})
		}
	}
}

// rawTCP writes size bytes at a time on conns connections to readers that discard them;
// with st and ct, under TLS.
func rawTCP(b *testing.B, conns, size int, st, ct *tls.Config) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var readers sync.WaitGroup
	writers := make(chan net.Conn, conns)
	for range conns {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		if st != nil {
			sc = tls.Server(sc, st)
			nc = tls.Client(nc, clientTLS(ct, ln.Addr().String()))
		}
		readers.Go(func() {
			defer sc.Close()
			buf := make([]byte, 1<<20)
			for {
				if _, err := sc.Read(buf); err != nil {
					return
				}
			}
		})
		writers <- nc
	}
	chunk := bytes.Repeat([]byte{'v'}, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.SetParallelism(max(1, conns/2))
	var failed atomic.Bool
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc := <-writers
		defer func() { writers <- nc }()
		for pb.Next() {
			if _, err := nc.Write(chunk); err != nil && !failed.Swap(true) {
				b.Error(err)
			}
		}
	})
	b.StopTimer()
	close(writers)
	for nc := range writers {
		nc.Close()
	}
	readers.Wait()
}

// TestRawTCPHelper keeps the raw benchmark's plumbing honest (it must not hang).
func TestRawTCPHelper(t *testing.T) {
	res := testing.Benchmark(func(b *testing.B) { rawTCP(b, 2, 1024, nil, nil) })
	if res.N == 0 {
		t.Fatal("raw TCP benchmark did not run")
	}
}

// TestRoundTripAllocs proves a request/reply round trip (client and server together)
// allocates nothing once the pools are warm.
func TestRoundTripAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	srv := startServer(t, &nullHandler{value: bytes.Repeat([]byte{'v'}, 100)}, "")
	c := newTestClient(t, srv.Addr().String())
	ctx := context.Background()
	key, value := []byte("key"), bytes.Repeat([]byte{'v'}, 100)
	big := bytes.Repeat([]byte{'v'}, 180<<10)
	op := func() {
		if _, err := c.Set(ctx, key, 1, 0, value); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Set(ctx, key, 1, 0, big); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		resp.Release()
	}
	for range 100 {
		op()
	}
	if n := testing.AllocsPerRun(200, op); n > 0 {
		t.Fatalf("%v allocations per Set+Set+Get", n)
	}
}
