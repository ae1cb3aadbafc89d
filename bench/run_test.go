package bench

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// shortConfig is a 1-second, 4-connection run of workload w.
func shortConfig(w string) Config {
	cfg := DefaultConfig()
	cfg.Workload, _ = ParseWorkload(w)
	cfg.Conns, cfg.Keys, cfg.Duration, cfg.Timeout = 4, 200, time.Second, 2*time.Second
	return cfg
}

func TestRunAgainstInProcessServer(t *testing.T) {
	addr, _ := newMemStore(t)
	var progress bytes.Buffer
	cfg := shortConfig("a")
	cfg.Dist = "zipfian"
	cfg.Progress = &progress // written by the progress goroutine, read after Run joined it
	res, err := Run(context.Background(), cfg, Endpoint{Name: "mem", Proto: ProtoHTTP, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.ErrorCount != 0 {
		t.Fatalf("ops %d errors %v", res.Ops, res.Errors)
	}
	if res.Reads == 0 || res.Writes == 0 || res.Reads+res.Writes != res.Ops {
		t.Fatalf("reads %d writes %d ops %d", res.Reads, res.Writes, res.Ops)
	}
	if res.Bytes != res.Ops*100 || res.OpsPerSec <= 0 || res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 {
		t.Fatalf("bad figures: %+v", res)
	}
	if res.ElapsedSecs < 0.9 || res.ElapsedSecs > 5 {
		t.Fatalf("elapsed %.2fs for a 1s run", res.ElapsedSecs)
	}
	if !strings.Contains(progress.String(), "mem ") || !strings.Contains(progress.String(), "ops/s") {
		t.Errorf("no progress line: %q", progress.String())
	}
}

func TestRunCountsHTTPErrors(t *testing.T) {
	addr := serveHTTP(t, func(ctx *fasthttp.RequestCtx) { ctx.Error("boom", fasthttp.StatusInternalServerError) })
	cfg := shortConfig("ingest")
	cfg.Duration, cfg.Ops = 0, 500
	res, err := Run(context.Background(), cfg, Endpoint{Name: "500", Proto: ProtoHTTP, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 0 || res.ErrorCount != 500 || res.Errors["http 500"] != 500 {
		t.Fatalf("ops %d errors %v, want 500 × http 500", res.Ops, res.Errors)
	}
	if !strings.Contains(res.ErrorSummary(), "http 500=500") {
		t.Fatalf("summary %q", res.ErrorSummary())
	}
}

func TestRunDetectsMismatchAndMissingKeys(t *testing.T) {
	// The server answers every GET with 3 bytes: with 100-byte values that is a mismatch.
	addr := serveHTTP(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("abc") })
	cfg := shortConfig("c")
	cfg.Duration, cfg.Ops = 0, 100
	res, err := Run(context.Background(), cfg, Endpoint{Name: "x", Addr: addr})
	if err != nil || res.Errors["mismatch"] != 100 {
		t.Fatalf("errors %v, %v; want 100 mismatches", res.Errors, err)
	}
	// Without preload every read misses.
	mem, _ := newMemStore(t)
	cfg.NoPreload = true
	res, err = Run(context.Background(), cfg, Endpoint{Name: "x", Addr: mem})
	if err != nil || res.Errors["http 404"] != 100 {
		t.Fatalf("errors %v, %v; want 100 × http 404", res.Errors, err)
	}
}

func TestRunConnRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg := shortConfig("ingest")
	cfg.Conns, cfg.Duration, cfg.Ops = 1, 0, 3
	res, err := Run(context.Background(), cfg, Endpoint{Name: "gone", Addr: addr})
	if err != nil || res.Errors["conn refused"] != 3 {
		t.Fatalf("errors %v, %v; want 3 conn refused", res.Errors, err)
	}
	if _, err := Run(context.Background(), cfg, Endpoint{Name: "gone", Proto: ProtoRedis, Addr: addr}); ErrorKind(err) != "conn refused" {
		t.Fatalf("redis dial error %v classified %q", err, ErrorKind(err))
	}
}

func TestRunFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"plain.txt": "hello", "with space & %.bin": "\x00\x01\xff", "ünï": strings.Repeat("x", 70000)}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	addr, store := newMemStore(t)
	cfg := shortConfig("b")
	cfg.FilesDir, cfg.Duration, cfg.Ops = dir, 0, 300
	res, err := Run(context.Background(), cfg, Endpoint{Name: "files", Addr: addr})
	if err != nil || res.Ops != 300 || res.ErrorCount != 0 || res.Keys != 3 {
		t.Fatalf("ops %d keys %d errors %v, %v", res.Ops, res.Keys, res.Errors, err)
	}
	for name, body := range files {
		if got := store.m["/values/"+name]; string(got) != body {
			t.Errorf("stored %q = %d bytes, want %d", name, len(got), len(body))
		}
	}
	if _, err := LoadFilesDataset(t.TempDir()); !errors.Is(err, ErrNoFiles) {
		t.Errorf("empty dir: %v", err)
	}
}

func TestRunRedisAgainstFake(t *testing.T) {
	cfg := shortConfig("b")
	cfg.Duration, cfg.Ops = 0, 1000
	res, err := Run(context.Background(), cfg, Endpoint{Name: "fake-redis", Proto: ProtoRedis, Addr: fakeRESP(t)})
	if err != nil || res.Ops != 1000 || res.ErrorCount != 0 {
		t.Fatalf("ops %d errors %v, %v", res.Ops, res.Errors, err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	cfg := shortConfig("a")
	cfg.Conns = 0
	if _, err := Run(context.Background(), cfg, Endpoint{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("conns 0: %v", err)
	}
	cfg = shortConfig("a")
	cfg.Duration = 0
	if _, err := Run(context.Background(), cfg, Endpoint{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("no bound: %v", err)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race")
	}
	addr := serveHTTP(t, BareHandler(100))
	tg := NewHTTPTarget(addr, 2*time.Second)
	defer tg.Close()
	ds, _ := NewSyntheticDataset(100, 100, 1)
	kc, _ := NewKeyChooser("zipfian", 100)
	r := newRand(1, 0)
	var key []byte
	var h Histogram
	op := func() {
		i := kc.Next(r)
		key = ds.Key(key[:0], i)
		t0 := time.Now()
		if err := tg.Set(key, ds.Value(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := tg.Get(key, nil); err != nil {
			t.Fatal(err)
		}
		h.Record(int64(time.Since(t0)))
	}
	op() // warm up buffers and the connection
	if n := testing.AllocsPerRun(200, op); n != 0 {
		t.Fatalf("HTTP op allocates %v times", n)
	}
	rc := NewRESPClient(&cannedRESP{value: ds.Value(0)}, time.Second)
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(200, func() {
		if err := rc.Set(key, ds.Value(0)); err != nil {
			t.Fatal(err)
		}
		var err error
		if buf, err = rc.Get(key, buf[:0]); err != nil || len(buf) != 100 {
			t.Fatal(len(buf), err)
		}
	}); n != 0 {
		t.Fatalf("RESP op allocates %v times", n)
	}
	rw := NewRESPWait(NewRESPClient(&cannedRESP{acks: "1"}, time.Second), time.Second, 1)
	if n := testing.AllocsPerRun(200, func() {
		if err := rw.Set(key, ds.Value(0)); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("RESP SET+WAIT allocates %v times", n)
	}
}

// cannedRESP is an allocation-free in-memory RESP peer: every flushed SET is answered +OK,
// every GET with value.
type cannedRESP struct {
	net.Conn
	value []byte
	acks  string // reply to WAIT (":acks"), queued after SET's when both come in one flush
	out   []byte
	off   int
}

func (c *cannedRESP) Write(p []byte) (int, error) {
	c.out, c.off = c.out[:0], 0
	switch {
	case bytes.HasPrefix(p, []byte("*3\r\n$3\r\nSET")):
		c.out = append(c.out, "+OK\r\n"...)
		if bytes.Contains(p, []byte("\r\nWAIT\r\n")) {
			c.out = append(append(append(c.out, ':'), c.acks...), "\r\n"...)
		}
	case bytes.HasPrefix(p, []byte("*2\r\n$3\r\nGET")):
		c.out = append(strconv.AppendInt(append(c.out, '$'), int64(len(c.value)), 10), "\r\n"...)
		c.out = append(append(c.out, c.value...), "\r\n"...)
	}
	return len(p), nil
}

func (c *cannedRESP) Read(p []byte) (int, error) {
	n := copy(p, c.out[c.off:])
	c.off += n
	return n, nil
}

func (c *cannedRESP) SetDeadline(time.Time) error { return nil }

func TestDatasetKeys(t *testing.T) {
	ds, err := NewSyntheticDataset(10, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int]string{0: "k0000000000", 7: "k0000000007", 12: "k0000000012", 1234567890: "k1234567890"} {
		if got := string(ds.Key(nil, i)); got != want {
			t.Errorf("Key(%d) = %q, want %q", i, got, want)
		}
	}
	if !ds.Verify(3, make([]byte, 5)) || ds.Verify(3, make([]byte, 4)) {
		t.Error("synthetic Verify checks length")
	}
	if got := string(appendPathEscaped(nil, []byte("a b/ü%~"))); got != "a%20b%2F%C3%BC%25~" {
		t.Errorf("escaped %q", got)
	}
}
