package chaos

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tako-kv/tako/codec"
)

func TestPartitionBlocks(t *testing.T) {
	f := func(p Partition, src, dst string, want bool) {
		t.Helper()
		if got := p.Blocks(src, dst); got != want {
			t.Errorf("%v: %q -> %q blocked %v, want %v", p, src, dst, got, want)
		}
	}
	p := Partition{Isolated: []string{"n1"}}
	f(p, "n1", "n2", true)
	f(p, "n2", "n1", true)
	f(p, "n2", "n3", false)
	f(p, "", "n1", false)
	p.CutClients = true
	f(p, "", "n1", true)
	f(p, "", "n2", false)
	f(Partition{}, "n1", "n2", false)
}

// echoServer accepts connections on addr and echoes what they send.
func echoServer(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// dialAs connects to addr, sends a Hello naming node id, and reports whether the echo of
// the hello came back within wait.
func dialAs(t *testing.T, addr, id string, wait time.Duration) (net.Conn, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hello := codec.AppendHello(nil, 0, codec.MinVersion, codec.MaxVersion, []byte(id))
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	return c, echoed(c, len(hello), wait)
}

func echoed(c net.Conn, n int, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.ReadFull(c, make([]byte, n))
	return err == nil
}

func TestInterposer(t *testing.T) {
	real := echoServer(t, "127.0.1.250:0")
	_, port, _ := net.SplitHostPort(real)
	from := net.JoinHostPort("127.0.0.250", port)
	ip := NewInterposer(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	defer ip.Close()
	if err := ip.Forward(from, real, "n2", true); err != nil {
		t.Fatal(err)
	}
	old, ok := dialAs(t, from, "n1", time.Second)
	if !ok {
		t.Fatal("n1 -> n2 not forwarded without a partition")
	}

	ip.SetPartition(Partition{Isolated: []string{"n1"}})
	_ = old.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := old.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the n1 -> n2 connection survived the partition: %v", err)
	}
	hole, ok := dialAs(t, from, "n1", 300*time.Millisecond)
	if ok {
		t.Error("n1 -> n2 forwarded during the partition")
	}
	if _, ok := dialAs(t, from, "n3", time.Second); !ok {
		t.Error("n3 -> n2 blocked, but only n1 is isolated")
	}
	if _, ok := dialAs(t, from, "", time.Second); !ok {
		t.Error("a client was blocked without CutClients")
	}

	ip.SetPartition(Partition{})
	_ = hole.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := hole.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("healing left the blackholed connection open")
	}
	if _, ok := dialAs(t, from, "n1", time.Second); !ok {
		t.Error("n1 -> n2 not forwarded after healing")
	}

	ip.SetPartition(Partition{Isolated: []string{"n2"}, CutClients: true})
	if _, ok := dialAs(t, from, "", 300*time.Millisecond); ok {
		t.Error("a client reached n2 although CutClients isolates it")
	}
}
