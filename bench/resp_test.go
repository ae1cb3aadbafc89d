package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRESP is a tiny RESP server for SET and GET; any other command gets an error reply.
func fakeRESP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	data := map[string][]byte{}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					args, err := readCommand(r)
					if err != nil {
						return
					}
					mu.Lock()
					switch {
					case len(args) == 3 && string(args[0]) == "SET":
						data[string(args[1])] = args[2]
						w.WriteString("+OK\r\n")
					case len(args) == 2 && string(args[0]) == "GET":
						if v, ok := data[string(args[1])]; ok {
							fmt.Fprintf(w, "$%d\r\n%s\r\n", len(v), v)
						} else {
							w.WriteString("$-1\r\n")
						}
					default:
						w.WriteString("-ERR unknown command\r\n")
					}
					mu.Unlock()
					if r.Buffered() == 0 { // reply to a pipelined batch at once
						if w.Flush() != nil {
							return
						}
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// readCommand parses one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([][]byte, error) {
	line, err := r.ReadString('\n')
	if err != nil || len(line) < 3 || line[0] != '*' {
		return nil, errors.Join(err, io.ErrUnexpectedEOF)
	}
	n, _ := strconv.Atoi(line[1 : len(line)-2])
	args := make([][]byte, n)
	for i := range args {
		if line, err = r.ReadString('\n'); err != nil {
			return nil, err
		}
		l, _ := strconv.Atoi(line[1 : len(line)-2])
		args[i] = make([]byte, l+2)
		if _, err := io.ReadFull(r, args[i]); err != nil {
			return nil, err
		}
		args[i] = args[i][:l]
	}
	return args, nil
}

func TestRESPClient(t *testing.T) {
	c, err := DialRESP(fakeRESP(t), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := bytes.Repeat([]byte("0123456789\r\n"), 20000) // 240 KB, CRLFs inside
	for _, kv := range []struct{ k, v []byte }{{[]byte("a"), []byte("1")}, {[]byte("empty"), nil}, {[]byte("big"), big}} {
		if err := c.Set(kv.k, kv.v); err != nil {
			t.Fatalf("SET %s: %v", kv.k, err)
		}
		got, err := c.Get(kv.k, nil)
		if err != nil || !bytes.Equal(got, kv.v) {
			t.Fatalf("GET %s: %d bytes, %v", kv.k, len(got), err)
		}
	}
	if _, err := c.Get([]byte("missing"), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	// Pipelined: queue many, flush once, read in order.
	for i := range 100 {
		c.WriteSet([]byte("p"+strconv.Itoa(i)), []byte(strconv.Itoa(i*i)))
	}
	for i := range 100 {
		c.WriteGet([]byte("p" + strconv.Itoa(i)))
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := c.ReadStatus(); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 0, 16)
	for i := range 100 {
		got, err := c.ReadBulk(buf)
		if err != nil || string(got) != strconv.Itoa(i*i) {
			t.Fatalf("pipelined GET p%d = %q, %v", i, got, err)
		}
	}
	// An error reply surfaces as RESPError and classifies as "redis error".
	c.w.WriteString("*1\r\n$4\r\nPING\r\n")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	err = c.ReadStatus()
	var re RESPError
	if !errors.As(err, &re) || ErrorKind(err) != "redis error" {
		t.Fatalf("error reply: %v (%s)", err, ErrorKind(err))
	}
}

// replies is a client that reads the given server replies.
func replies(b []byte) *RESPClient {
	c := NewRESPClient(nopConn{}, 0)
	c.r = bufio.NewReader(bytes.NewReader(b))
	return c
}

func TestRESPReplyParsing(t *testing.T) {
	parse := func(reply string) ([]byte, error) { return replies([]byte(reply)).ReadBulk(nil) }
	for reply, want := range map[string]string{"$3\r\nabc\r\n": "abc", "$0\r\n\r\n": ""} {
		if got, err := parse(reply); err != nil || string(got) != want {
			t.Errorf("%q: %q, %v", reply, got, err)
		}
	}
	for _, reply := range []string{"$999999999999\r\n", "$3\r\nabcd\r\n", "$x\r\n", "+OK\r\n", "$-2\r\n", "$3\nabc\r\n", "$5\r\nab"} {
		if _, err := parse(reply); err == nil {
			t.Errorf("%q accepted", reply)
		}
	}
}

func FuzzRESPReadBulk(f *testing.F) {
	for _, s := range []string{"$3\r\nabc\r\n", "$-1\r\n", "-ERR x\r\n", "$0\r\n\r\n", "$99999999999\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := replies(b)
		c.maxBulk = 1 << 16
		got, err := c.ReadBulk(nil)
		if err == nil && len(got) > len(b) {
			t.Fatalf("value longer than input")
		}
	})
}

// nopConn satisfies net.Conn for parser tests that replace the reader.
type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }

func TestRESPWait(t *testing.T) {
	for _, tc := range []struct {
		acks    string
		wait    time.Duration
		wantCmd string
		wantErr error
	}{
		{acks: "1", wait: 1500 * time.Millisecond, wantCmd: "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$4\r\n1500\r\n"},
		{acks: "2", wait: 100 * time.Microsecond, wantCmd: "$1\r\n1\r\n"}, // rounded up to 1 ms
		{acks: "0", wait: time.Second, wantErr: ErrNotReplicated},
		{acks: "x", wait: time.Second, wantErr: ErrBadReply},
	} {
		conn := &recordingRESP{cannedRESP: cannedRESP{acks: tc.acks}}
		c := NewRESPWait(NewRESPClient(conn, time.Second), tc.wait, 1)
		err := c.Set([]byte("k"), []byte("v"))
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Errorf("acks %s: %v, want %v", tc.acks, err, tc.wantErr)
		}
		if !strings.HasPrefix(conn.sent, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*3\r\n$4\r\nWAIT\r\n") || !strings.Contains(conn.sent, tc.wantCmd) {
			t.Errorf("acks %s: sent %q in one write, want SET then %q", tc.acks, conn.sent, tc.wantCmd)
		}
		if tc.acks == "0" && ErrorKind(err) != "not replicated" {
			t.Errorf("classified %q", ErrorKind(err))
		}
	}
	// SET's own error reply wins, and WAIT's reply is still consumed.
	c := NewRESPWait(NewRESPClient(&cannedRESP{}, 0), time.Second, 1)
	c.r = bufio.NewReader(bytes.NewBufferString("-OOM no memory\r\n:0\r\n+OK\r\n"))
	var re RESPError
	if err := c.Set([]byte("k"), nil); !errors.As(err, &re) {
		t.Fatalf("SET error reply: %v", err)
	}
	if err := c.ReadStatus(); err != nil {
		t.Fatalf("out of step after an error reply: %v", err)
	}
}

// recordingRESP is a cannedRESP that keeps what the last write sent.
type recordingRESP struct {
	cannedRESP
	sent string
}

func (c *recordingRESP) Write(p []byte) (int, error) {
	c.sent = string(p)
	return c.cannedRESP.Write(p)
}

func TestRESPReadInt(t *testing.T) {
	parse := func(reply string) (int64, error) { return replies([]byte(reply)).ReadInt() }
	for reply, want := range map[string]int64{":0\r\n": 0, ":3\r\n": 3, ":-1\r\n": -1} {
		if got, err := parse(reply); err != nil || got != want {
			t.Errorf("%q: %d, %v", reply, got, err)
		}
	}
	for _, reply := range []string{":\r\n", ":1x\r\n", "+OK\r\n", "$1\r\n1\r\n", ":1\n", ":99999999999999999999\r\n"} {
		if _, err := parse(reply); err == nil {
			t.Errorf("%q accepted", reply)
		}
	}
	var re RESPError
	if _, err := parse("-NOREPLICAS\r\n"); !errors.As(err, &re) {
		t.Errorf("error reply: %v", err)
	}
}

func FuzzRESPReadInt(f *testing.F) {
	for _, s := range []string{":1\r\n", ":-1\r\n", "-ERR x\r\n", ":\r\n", "$1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := replies(b).ReadInt()
		if line, _, ok := bytes.Cut(b, []byte("\r\n")); err == nil && (!ok || line[0] != ':' || len(line) > 21) {
			t.Fatalf("%q parsed as %d", b, n)
		}
	})
}
