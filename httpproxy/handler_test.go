package httpproxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/metrics"
)

// storeBackend is the simplest Backend: one local store.
type storeBackend struct{ *kv.Store }

func (b storeBackend) Apply(key []byte, rec kv.Record, _ Acks) (kv.Result, error) {
	return b.Store.Apply(key, rec)
}

func newStore(t testing.TB) *kv.Store {
	t.Helper()
	s, err := kv.Open("db", kv.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startServer serves a Handler over a fresh store on 127.0.0.1 and returns
// its base URL.
func startServer(t *testing.T, maxValue int) string {
	t.Helper()
	s := newStore(t)
	return serveConfig(t, Config{Backend: storeBackend{s}, Local: s, MaxValueBytes: maxValue})
}

// serveConfig serves a Handler of cfg on 127.0.0.1 and returns its base URL.
func serveConfig(t *testing.T, cfg Config) string {
	t.Helper()
	h := NewHandler(cfg)
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.NewServer()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

type reply struct {
	status int
	body   []byte
	header http.Header
}

func do(t *testing.T, method, url string, body []byte, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, b, resp.Header}
}

func TestValuesRoundTrip(t *testing.T) {
	base := startServer(t, 16<<20)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 31 >> 7)
	}
	f := func(path, wantKey string, val []byte) {
		t.Helper()
		if r := do(t, "POST", base+"/values/"+path, val); r.status != 200 || r.header.Get("X-Timestamp") == "" {
			t.Fatalf("POST %s: %d %s", path, r.status, r.body)
		}
		r := do(t, "GET", base+"/values/"+path, nil)
		if r.status != 200 || !bytes.Equal(r.body, val) {
			t.Fatalf("GET %s: %d, %d bytes (want %d)", path, r.status, len(r.body), len(val))
		}
		if r.header.Get("Content-Type") != "application/octet-stream" || r.header.Get("Last-Modified") == "" {
			t.Errorf("GET %s headers %v", path, r.header)
		}
		// The stored key is the decoded one: reading it re-encoded works too.
		enc := string(AppendEscapedKey(nil, []byte(wantKey)))
		if r := do(t, "GET", base+"/values/"+enc, nil); !bytes.Equal(r.body, val) {
			t.Errorf("GET re-encoded %s: %d", enc, r.status)
		}
	}
	f("all-bytes", "all-bytes", all)
	f("empty", "empty", []byte{})
	f("big", "big", big)
	f("a%2Fb", "a/b", []byte("slash"))
	f("dir/sub//x", "dir/sub//x", []byte("raw slashes are kept"))
	f("%E3%82%BF%E3%82%B3", "タコ", []byte("unicode"))
	f("plus+sign", "plus+sign", []byte("plus"))
}

func TestTimestampsAndDelete(t *testing.T) {
	base := startServer(t, 1<<20)
	k := base + "/values/k"
	if r := do(t, "PUT", k, []byte("new"), "X-Timestamp", "2000"); r.status != 200 || r.header.Get("X-Timestamp") != "2000" {
		t.Fatalf("put: %d %v", r.status, r.header)
	}
	// An older write loses and says so, with the stored timestamp.
	if r := do(t, "POST", k, []byte("old"), "X-Timestamp", "1000"); r.status != 200 || r.header.Get("X-Timestamp") != "2000" ||
		r.header.Get("X-Applied") != "no" {
		t.Fatalf("older post: %d %v", r.status, r.header)
	}
	if r := do(t, "GET", k, nil); string(r.body) != "new" {
		t.Fatalf("get after older write: %q", r.body)
	}
	if r := do(t, "HEAD", k, nil); r.status != 200 || r.header.Get("Content-Length") != "3" || len(r.body) != 0 {
		t.Fatalf("head: %d %v %q", r.status, r.header, r.body)
	}
	if r := do(t, "GET", base+"/stat/k", nil); r.status != 200 || string(r.body) != "2000\n" {
		t.Fatalf("stat: %d %q", r.status, r.body)
	}
	if r := do(t, "DELETE", k, nil, "X-Timestamp", "3000"); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	// A 404 for a deleted key carries the tombstone's timestamp, so a
	// client can order the delete against its writes.
	for _, p := range []string{k, base + "/stat/k", base + "/replica/k"} {
		if r := do(t, "GET", p, nil); r.status != 404 || r.header.Get("X-Timestamp") != "3000" || r.header.Get("X-Tombstone") != "yes" {
			t.Fatalf("GET %s after delete: %d %v", p, r.status, r.header)
		}
	}
	if r := do(t, "GET", base+"/values/never", nil); r.status != 404 || r.header.Get("X-Timestamp") != "" {
		t.Fatalf("GET of a key never written: %d %v", r.status, r.header)
	}
	// Without X-Timestamp the clock stamps the write: with the wall clock
	// here, since nothing seen is ahead of it.
	before := time.Now().UnixMicro()
	r := do(t, "POST", base+"/values/c", []byte("x"))
	ts, err := strconv.ParseInt(r.header.Get("X-Timestamp"), 10, 64)
	if err != nil || ts < before || ts > time.Now().UnixMicro() || r.header.Get("X-Applied") != "" {
		t.Fatalf("clock stamp: %v", r.header)
	}
	if r := do(t, "GET", base+"/replica/c", nil); r.status != 200 || string(r.body) != "x" || r.header.Get("X-Timestamp") != strconv.FormatInt(ts, 10) {
		t.Fatalf("GET /replica/c: %d %q %v", r.status, r.body, r.header)
	}
}

// A client timestamp far in the future would lock the key forever: every
// later write and delete would lose. Such a timestamp, zero or a negative
// one is refused; one within max_clock_skew is taken.
func TestTimestampBounds(t *testing.T) {
	base := startServer(t, 1<<20)
	k := base + "/values/k"
	for _, ts := range []string{"32503680000000000", "9223372036854775807", "0", "-1",
		strconv.FormatInt(time.Now().Add(2*time.Minute).UnixMicro(), 10)} {
		if r := do(t, "POST", k, []byte("v"), "X-Timestamp", ts); r.status != 400 || !strings.Contains(string(r.body), "X-Timestamp") {
			t.Errorf("X-Timestamp %s: %d %q", ts, r.status, r.body)
		}
		if r := do(t, "DELETE", k, nil, "X-Timestamp", ts); r.status != 400 {
			t.Errorf("DELETE X-Timestamp %s: %d %q", ts, r.status, r.body)
		}
	}
	if r := do(t, "GET", k, nil); r.status != 404 {
		t.Fatalf("a refused write was stored: %d %q", r.status, r.body)
	}
	ahead := strconv.FormatInt(time.Now().Add(30*time.Second).UnixMicro(), 10)
	if r := do(t, "POST", k, []byte("soon"), "X-Timestamp", ahead); r.status != 200 {
		t.Fatalf("X-Timestamp 30s ahead: %d %q", r.status, r.body)
	}
	// The clock saw that record: a write stamped by this process now wins.
	if r := do(t, "POST", k, []byte("later")); r.status != 200 || r.header.Get("X-Applied") != "" {
		t.Fatalf("write after a record from the future: %d %v", r.status, r.header)
	}
	if r := do(t, "GET", k, nil); string(r.body) != "later" {
		t.Fatalf("read %q", r.body)
	}
}

// weakBackend answers every read with a record and ErrNoReadQuorum, or with
// err when set.
type weakBackend struct {
	storeBackend
	err error
}

func (b weakBackend) Get(key, dst []byte) (kv.Record, error) {
	if b.err != nil {
		return kv.Record{}, b.err
	}
	return kv.Record{TS: 42, Value: append(dst[:0], "weak"...)}, ErrNoReadQuorum
}

func (b weakBackend) Stat(key []byte) (kv.Meta, error) {
	if b.err != nil {
		return kv.Meta{}, b.err
	}
	return kv.Meta{TS: 42}, ErrNoReadQuorum
}

func TestReadQuorumMarked(t *testing.T) {
	serve := func(b Backend) string { return serveConfig(t, Config{Backend: b}) }
	base := serve(weakBackend{storeBackend: storeBackend{newStore(t)}})
	for _, p := range []string{"/values/k", "/stat/k"} {
		if r := do(t, "GET", base+p, nil); r.status != 200 || r.header.Get("X-Read-Quorum") != "no" || r.header.Get("X-Timestamp") != "42" {
			t.Errorf("GET %s: %d %v", p, r.status, r.header)
		}
	}
	base = serve(weakBackend{storeBackend: storeBackend{newStore(t)}, err: fmt.Errorf("%w: 1 of 4 answered", ErrUnavailable)})
	if r := do(t, "GET", base+"/values/k", nil); r.status != 503 || !strings.Contains(string(r.body), "1 of 4") {
		t.Errorf("unavailable: %d %q", r.status, r.body)
	}
	// Only nodes serve /replica/.
	if r := do(t, "GET", base+"/replica/k", nil); r.status != 404 || !strings.Contains(string(r.body), "no such path") {
		t.Errorf("/replica/ without a local store: %d %q", r.status, r.body)
	}
}

// TestAbsoluteFormTarget: a request target in absolute form (what a client
// sends through a forward proxy; RFC 9112 requires servers to accept it)
// reaches the same key as the origin form.
func TestAbsoluteFormTarget(t *testing.T) {
	base := startServer(t, 1024)
	if r := rawDo(t, base, "POST", "http://tako.example:8080/values/a%2Fb", []byte("v")); r.status != 200 {
		t.Fatalf("absolute-form POST: %d %q", r.status, r.body)
	}
	if r := rawDo(t, base, "GET", "/values/a%2Fb", nil); r.status != 200 || string(r.body) != "v" {
		t.Fatalf("origin-form GET of the key: %d %q", r.status, r.body)
	}
	for _, target := range []string{"http://tako.example/values/a%2Fb", "https://tako.example:1/values/a%2Fb"} {
		if r := rawDo(t, base, "GET", target, nil); r.status != 200 || string(r.body) != "v" {
			t.Errorf("GET %s: %d %q", target, r.status, r.body)
		}
	}
	for target, want := range map[string]string{"http://h": "/", "http://h?x=1": "/?x=1", "http://h/health": "/health", "/values/k": "/values/k", "*": "*"} {
		if got := string(originForm([]byte(target))); got != want {
			t.Errorf("originForm(%q) = %q, want %q", target, got, want)
		}
	}
}

// rawDo sends one request as written, for URLs net/http refuses to send.
func rawDo(t *testing.T, base, method, path string, body []byte, hdr ...string) reply {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", method, path, len(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&req, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	req.WriteString("Connection: close\r\n\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b, resp.Header}
}

func TestBadRequests(t *testing.T) {
	base := startServer(t, 1024)
	f := func(method, path string, body []byte, status int, reason string, hdr ...string) {
		t.Helper()
		r := rawDo(t, base, method, path, body, hdr...)
		if r.status != status || !strings.Contains(string(r.body), reason) {
			t.Errorf("%s %s: %d %q, want %d containing %q", method, path, r.status, r.body, status, reason)
		}
	}
	f("POST", "/values/k", nil, 400, "bad X-Timestamp", "X-Timestamp", "yesterday")
	f("POST", "/values/k", nil, 400, "bad X-Timestamp", "X-Timestamp", "99999999999999999999")
	f("POST", "/values/k", nil, 400, "write acks", "X-Write-Acks", "most")
	f("POST", "/values/k", make([]byte, 2048), 413, "larger than")
	f("GET", "/values/", nil, 400, "empty key")
	f("GET", "/values/a%zz", nil, 400, "percent-encoding")
	f("GET", "/values/a%2", nil, 400, "percent-encoding")
	f("GET", "/values/missing", nil, 404, "not found")
	f("GET", "/nothing", nil, 404, "no such path")
	f("PATCH", "/values/k", nil, 405, "method not allowed")
	f("POST", "/stat/k", nil, 405, "method not allowed")
	f("GET", "/values/"+strings.Repeat("k", kv.MaxKeyLen+1), nil, 414, "key longer")
	f("GET", "/values/"+strings.Repeat("%41", kv.MaxKeyLen+1), nil, 414, "")
	f("GET", "/health", nil, 200, "ok")
}

func TestGetDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under -race")
	}
	s := newStore(t)
	if _, err := s.Apply([]byte("key"), kv.Record{TS: 1, Value: make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	// Instrumented as in a node: metrics registered for scraping.
	h := NewHandler(Config{Backend: storeBackend{s}, Metrics: metrics.NewHTTP(metrics.NewRegistry())})
	ctx := newCtx("GET", "/values/key")
	h.Serve(ctx)
	if ctx.Response.StatusCode() != 200 || len(ctx.Response.Body()) != 100 {
		t.Fatalf("setup GET: %d", ctx.Response.StatusCode())
	}
	allocs := testing.AllocsPerRun(200, func() {
		ctx.Response.Reset()
		h.Serve(ctx)
	})
	if allocs != 0 {
		t.Fatalf("GET allocates %.1f per request", allocs)
	}
}

func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{"abc", "a%2Fb", "%", "%4", "%zz", "%E3%82%BF", "+"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		key, err := decodeKey(nil, raw)
		if err == nil && len(key) > len(raw) {
			t.Fatalf("decoded key longer than input")
		}
		enc := AppendEscapedKey(nil, raw)
		back, err := decodeKey(nil, enc)
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("escape round trip of %q: %q, %v", raw, back, err)
		}
	})
}

func FuzzServe(f *testing.F) {
	for _, s := range []string{"/values/a", "/stat/a%20b", "/values/%", "/health", "/values/?x", "/keys?prefix=a&after=a%00&limit=1"} {
		f.Add("GET", s)
		f.Add("POST", s)
	}
	s := newStore(f)
	h := NewHandler(Config{Backend: storeBackend{s}, Keys: sliceLister{keys: []string{"a", "a\x00", "a/b", "b\xff"}}})
	f.Fuzz(func(t *testing.T, method, uri string) {
		ctx := newCtx(method, uri)
		h.Serve(ctx)
		code := ctx.Response.StatusCode()
		if code < 200 || code > 599 {
			t.Fatalf("status %d", code)
		}
		if code == 200 && strings.HasPrefix(uri, "/keys?") && !json.Valid(ctx.Response.Body()) {
			t.Fatalf("%s: invalid JSON %q", uri, ctx.Response.Body())
		}
	})
}

func TestPlainReason(t *testing.T) {
	for in, want := range map[string]string{
		"not found": "not found",
		"httpproxy: write acks \"most\": want one, quorum or all": "write acks \"most\": want one, quorum or all",
		"replicas unavailable: 1 of 4 replicas acknowledged (eventloop: peer unavailable: 127.0.0.1:1: eventloop: dial 127.0.0.1:1: connect: connection refused)": "replicas unavailable: 1 of 4 replicas acknowledged (peer unavailable: 127.0.0.1:1: dial 127.0.0.1:1: connect: connection refused)",
		"kv: disk nearly full":          "disk nearly full",
		"bad X-Timestamp: hlc: too far": "bad X-Timestamp: too far",
		"sharkv: x, kv:y, kv":           "sharkv: x, kv:y, kv", // not a prefix
		"timestamp out of range: kv: a": "timestamp out of range: a",
	} {
		if got := plainReason(in); got != want {
			t.Errorf("plainReason(%q) = %q, want %q", in, got, want)
		}
	}
}

// Error bodies are plain words; the log keeps the whole error.
func TestErrorBodiesPlain(t *testing.T) {
	var logs bytes.Buffer
	cause := fmt.Errorf("eventloop: peer unavailable: 127.0.0.1:1: eventloop: dial 127.0.0.1:1: connection refused")
	base := serveConfig(t, Config{Backend: weakBackend{storeBackend: storeBackend{newStore(t)}, err: fmt.Errorf("%w: 1 of 4 answered (%w)", ErrUnavailable, cause)},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r := do(t, "GET", base+"/values/k", nil)
	if r.status != 503 || strings.Contains(string(r.body), "eventloop:") || !strings.Contains(string(r.body), "1 of 4 answered (peer unavailable: 127.0.0.1:1: dial") {
		t.Errorf("503 body %q", r.body)
	}
	if !strings.Contains(logs.String(), "eventloop: dial 127.0.0.1:1") {
		t.Errorf("the log lost the error's context:\n%s", logs.String())
	}
	if r := do(t, "POST", base+"/values/k", nil, "X-Write-Acks", "most"); r.status != 400 || strings.Contains(string(r.body), "httpproxy") {
		t.Errorf("bad X-Write-Acks: %d %q", r.status, r.body)
	}
	if r := do(t, "POST", base+"/values/k", nil, "X-Timestamp", strconv.FormatInt(time.Now().Add(time.Hour).UnixMicro(), 10)); r.status != 400 || strings.Contains(string(r.body), "hlc:") {
		t.Errorf("X-Timestamp ahead: %d %q", r.status, r.body)
	}
}

func TestHeaderValuesCaseInsensitive(t *testing.T) {
	for in, want := range map[string]Acks{"": AcksDefault, "one": AcksOne, "ONE": AcksOne, "Quorum": AcksQuorum, "ALL": AcksAll, "aLl": AcksAll} {
		if got, err := ParseAcks(in); err != nil || got != want {
			t.Errorf("ParseAcks(%q) = %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"al", "all ", "most", "1"} {
		if _, err := ParseAcks(bad); err == nil {
			t.Errorf("ParseAcks(%q) accepted", bad)
		}
	}
	base := startServer(t, 1024)
	if r := do(t, "POST", base+"/values/k", []byte("v"), "X-Write-Acks", "ALL"); r.status != 200 {
		t.Errorf("X-Write-Acks: ALL: %d %q", r.status, r.body)
	}
}
