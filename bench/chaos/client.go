package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// errTimeout is Op.Err for a request that got no reply in time.
const errTimeout = "timeout"

// client is one sequential HTTP client; every operation it does lands in the history.
type client struct {
	id      int
	hc      *http.Client
	sec     *security
	hist    *History
	timeout time.Duration
}

func newClient(id int, hist *History, timeout time.Duration, sec *security) *client {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 2,
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
	}
	return &client{id: id, hc: sec.httpClient(tr, 0), sec: sec, hist: hist, timeout: timeout}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// do sends one operation to entry (host:port) and records it. value is the body of a write;
// acks, if set, goes in X-Write-Acks.
func (c *client) do(ctx context.Context, kind, entry, key, value, acks string) Op {
	op := Op{Client: c.id, Kind: kind, Key: key, Entry: entry, Acks: acks, Start: time.Now()}
	if kind == OpWrite {
		op.Value = value
	}
	c.send(ctx, &op)
	op.End = time.Now()
	c.hist.Add(op)
	return op
}

func (c *client) send(ctx context.Context, op *Op) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	method, body := "GET", io.Reader(nil)
	switch op.Kind {
	case OpWrite:
		method, body = "POST", strings.NewReader(op.Value)
	case OpDelete:
		method = "DELETE"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.sec.url(op.Entry, "/values/"+url.PathEscape(op.Key)), body)
	if err != nil {
		op.Err = err.Error()
		return
	}
	if op.Acks != "" {
		req.Header.Set("X-Write-Acks", op.Acks)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		op.Err = errText(err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		op.Err = errText(err)
		return
	}
	op.Status = resp.StatusCode
	op.TS, _ = strconv.ParseInt(resp.Header.Get("X-Timestamp"), 10, 64)
	op.Applied = resp.Header.Get("X-Applied")
	op.ReadQuorum = resp.Header.Get("X-Read-Quorum")
	if op.Kind == OpRead && op.Status == 200 {
		op.Value = string(b)
	}
}

func errText(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return errTimeout
	}
	return err.Error()
}
