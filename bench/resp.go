package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// RESPError is an error reply ("-ERR …") from a RESP server.
type RESPError string

func (e RESPError) Error() string { return "bench: redis: " + string(e) }

// RESPClient is a minimal RESP2 client for SET and GET over one connection. Commands can be
// pipelined: queue any number with WriteSet/WriteGet, Flush, then read the replies in order with
// ReadStatus/ReadBulk. Get and Set do one round trip each. Not safe for concurrent use.
type RESPClient struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
	num     []byte
	maxBulk int // longest bulk reply accepted, so a corrupt length cannot allocate gigabytes
}

// DefaultMaxBulk is Redis's own proto-max-bulk-len default.
const DefaultMaxBulk = 512 << 20

// DialRESP connects to a RESP server at addr; timeout bounds the dial and every round trip
// (0: none).
func DialRESP(addr string, timeout time.Duration) (*RESPClient, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("bench: dial redis: %w", err)
	}
	return NewRESPClient(conn, timeout), nil
}

// NewRESPClient wraps an established connection.
func NewRESPClient(conn net.Conn, timeout time.Duration) *RESPClient {
	return &RESPClient{
		conn:    conn,
		r:       bufio.NewReaderSize(conn, 64<<10),
		w:       bufio.NewWriterSize(conn, 64<<10),
		timeout: timeout,
		maxBulk: DefaultMaxBulk,
	}
}

func (c *RESPClient) writeBulk(b []byte) {
	c.num = strconv.AppendInt(append(c.num[:0], '$'), int64(len(b)), 10)
	c.num = append(c.num, '\r', '\n')
	_, _ = c.w.Write(c.num)
	_, _ = c.w.Write(b)
	_, _ = c.w.WriteString("\r\n")
}

// WriteSet queues SET key value (errors surface at Flush).
func (c *RESPClient) WriteSet(key, value []byte) {
	_, _ = c.w.WriteString("*3\r\n$3\r\nSET\r\n")
	c.writeBulk(key)
	c.writeBulk(value)
}

// WriteGet queues GET key.
func (c *RESPClient) WriteGet(key []byte) {
	_, _ = c.w.WriteString("*2\r\n$3\r\nGET\r\n")
	c.writeBulk(key)
}

// Flush sends the queued commands.
func (c *RESPClient) Flush() error {
	if c.timeout > 0 {
		_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	}
	return c.w.Flush()
}

// readLine returns the next reply line without CRLF; valid until the next read.
func (c *RESPClient) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: redis line %q", ErrBadReply, line)
	}
	return line[:len(line)-2], nil
}

// ReadStatus reads a simple-string reply (+OK); an error reply is a RESPError.
func (c *RESPClient) ReadStatus() error {
	line, err := c.readLine()
	if err != nil {
		return err
	}
	switch line[0] {
	case '+':
		return nil
	case '-':
		return RESPError(line[1:])
	}
	return fmt.Errorf("%w: redis status %q", ErrBadReply, line)
}

// ReadInt reads an integer reply (:N); an error reply is a RESPError.
func (c *RESPClient) ReadInt() (int64, error) {
	line, err := c.readLine()
	if err != nil {
		return 0, err
	}
	switch line[0] {
	case ':':
	case '-':
		return 0, RESPError(line[1:])
	default:
		return 0, fmt.Errorf("%w: redis integer %q", ErrBadReply, line)
	}
	n, err := strconv.ParseInt(string(line[1:]), 10, 64) // no allocation: the conversion does not escape
	if err != nil {
		return 0, fmt.Errorf("%w: redis integer %q", ErrBadReply, line)
	}
	return n, nil
}

// ReadBulk reads a bulk-string reply into dst[:0]; a nil bulk ($-1) is ErrNotFound.
func (c *RESPClient) ReadBulk(dst []byte) ([]byte, error) {
	line, err := c.readLine()
	if err != nil {
		return nil, err
	}
	switch line[0] {
	case '$':
	case '-':
		return nil, RESPError(line[1:])
	default:
		return nil, fmt.Errorf("%w: redis bulk %q", ErrBadReply, line)
	}
	n, err := strconv.Atoi(string(line[1:])) // no allocation: the conversion does not escape
	if err != nil || n < -1 || n > c.maxBulk {
		return nil, fmt.Errorf("%w: redis bulk length %q", ErrBadReply, line)
	}
	if n == -1 {
		return nil, ErrNotFound
	}
	if cap(dst) < n+2 {
		dst = make([]byte, n+2)
	}
	dst = dst[:n+2]
	if _, err := io.ReadFull(c.r, dst); err != nil {
		return nil, err
	}
	if dst[n] != '\r' || dst[n+1] != '\n' {
		return nil, fmt.Errorf("%w: redis bulk not CRLF-terminated", ErrBadReply)
	}
	return dst[:n], nil
}

// Set runs SET key value.
func (c *RESPClient) Set(key, value []byte) error {
	c.WriteSet(key, value)
	if err := c.Flush(); err != nil {
		return err
	}
	return c.ReadStatus()
}

// Get runs GET key.
func (c *RESPClient) Get(key, dst []byte) ([]byte, error) {
	c.WriteGet(key)
	if err := c.Flush(); err != nil {
		return nil, err
	}
	return c.ReadBulk(dst)
}

// Close closes the connection.
func (c *RESPClient) Close() error { return c.conn.Close() }

// ErrNotReplicated reports a write that fewer replicas acknowledged than asked for.
var ErrNotReplicated = errors.New("bench: write not acknowledged by the replicas")

// RESPWait is a Target for a Redis primary whose every SET is acknowledged by replicas: SET and
// WAIT go out in one flush and their replies are read together, one round trip per write as
// with RESPClient.Set. A WAIT reply below the replicas asked for is ErrNotReplicated.
type RESPWait struct {
	*RESPClient
	replicas int64
	wait     []byte // the whole WAIT command, built once
}

// DialRESPWait connects to a Redis primary at addr; every Set waits for replicas replicas.
// WAIT's own timeout is half of timeout (0: WAIT blocks until enough replicas acknowledged),
// so a replica that does not answer shows as ErrNotReplicated, not as a connection timeout.
func DialRESPWait(addr string, timeout time.Duration, replicas int) (*RESPWait, error) {
	c, err := DialRESP(addr, timeout)
	if err != nil {
		return nil, err
	}
	return NewRESPWait(c, timeout/2, replicas), nil
}

// NewRESPWait wraps c; wait is WAIT's timeout, rounded up to a millisecond (0: none).
func NewRESPWait(c *RESPClient, wait time.Duration, replicas int) *RESPWait {
	ms := strconv.FormatInt(int64((wait+time.Millisecond-1)/time.Millisecond), 10)
	n := strconv.Itoa(replicas)
	cmd := fmt.Sprintf("*3\r\n$4\r\nWAIT\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(n), n, len(ms), ms)
	return &RESPWait{RESPClient: c, replicas: int64(replicas), wait: []byte(cmd)}
}

// Set runs SET key value, then WAIT for the replicas, in one round trip.
func (c *RESPWait) Set(key, value []byte) error {
	c.WriteSet(key, value)
	_, _ = c.w.Write(c.wait)
	if err := c.Flush(); err != nil {
		return err
	}
	setErr := c.ReadStatus()
	n, err := c.ReadInt() // read both replies, so the connection stays in step
	switch {
	case setErr != nil:
		return setErr
	case err != nil:
		return fmt.Errorf("redis WAIT: %w", err)
	case n < c.replicas:
		return fmt.Errorf("%w: WAIT %d acknowledged by %d", ErrNotReplicated, c.replicas, n)
	}
	return nil
}
