package eventloop

import (
	"bytes"
	"context"
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

// benchModes runs each transport benchmark twice, side by side: unauthenticated, and with
// a cluster secret (whose cost is in the handshake only; see BenchmarkHandshake).
var benchModes = []struct {
	suffix  string
	secrets [][]byte
}{{"", nil}, {"-secret", [][]byte{secretA}}}

func benchClient(b *testing.B, value []byte, secrets [][]byte) *Client {
	// Default loop count: the benchmark's client shares the machine, as peers do in a node.
	srv := startServer(b, &nullHandler{value: value}, "", func(cfg *ServerConfig) { cfg.NumLoops = 0; cfg.Secrets = secrets })
	c := newTestClient(b, srv.Addr().String(), func(cfg *ClientConfig) { cfg.Secrets = secrets })
	if err := c.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkHandshake is the cost of opening one connection: dial, handshake, close, with
// and without the cluster secret's challenge-response (one more round trip, four HMACs).
func BenchmarkHandshake(b *testing.B) {
	for _, m := range benchModes {
		b.Run("hello"+m.suffix, func(b *testing.B) {
			srv := startServer(b, &nullHandler{}, "", func(cfg *ServerConfig) { cfg.Secrets = m.secrets })
			cfg := ClientConfig{Addr: srv.Addr().String(), NodeID: "client-1", Secrets: m.secrets}
			cfg.setDefaults()
			b.ReportAllocs()
			for b.Loop() {
				nc, err := net.Dial("tcp", cfg.Addr)
				if err != nil {
					b.Fatal(err)
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
			c := benchClient(b, value, m.secrets)
			runParallel(b, 64, func() error {
				resp, err := c.Get(ctx, key)
				resp.Release()
				return err
			})
		})
		b.Run("set100B"+m.suffix, func(b *testing.B) {
			c := benchClient(b, nil, m.secrets)
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
			c := benchClient(b, nil, m.secrets)
			b.SetBytes(int64(len(value)))
			runParallel(b, 4, func() error {
				_, err := c.Set(ctx, key, 1, 0, value)
				return err
			})
		})
		b.Run("get180KiB"+m.suffix, func(b *testing.B) {
			c := benchClient(b, value, m.secrets)
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
// reader that discards them, on 1 and on 2 connections (the client's default).
func BenchmarkRawTCP(b *testing.B) {
	for _, conns := range []int{1, 2} {
		b.Run(map[int]string{1: "180KiB-1conn", 2: "180KiB-2conns"}[conns], func(b *testing.B) {
			rawTCP(b, conns, 180<<10)
		})
	}
}

func rawTCP(b *testing.B, conns, size int) {
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
	res := testing.Benchmark(func(b *testing.B) { rawTCP(b, 2, 1024) })
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
