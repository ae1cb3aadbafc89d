package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
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

func TestRESPReplyParsing(t *testing.T) {
	parse := func(reply string) ([]byte, error) {
		c := NewRESPClient(nopConn{}, 0)
		c.r = bufio.NewReader(bytes.NewBufferString(reply))
		return c.ReadBulk(nil)
	}
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
		c := NewRESPClient(nopConn{}, 0)
		c.maxBulk = 1 << 16
		c.r = bufio.NewReader(bytes.NewReader(b))
		got, err := c.ReadBulk(nil)
		if err == nil && len(got) > len(b) {
			t.Fatalf("value longer than input")
		}
	})
}

// nopConn satisfies net.Conn for parser tests that replace the reader.
type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }
