package httpproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tako-kv/tako/kv/lww"
)

// sliceLister lists a sorted set of keys; unanswered and err are returned
// as they are.
type sliceLister struct {
	keys       []string
	unanswered []string
	err        error
}

func (l sliceLister) ListKeys(_ context.Context, start, end []byte, limit int, emit func([]byte) bool) ([]string, error) {
	if l.err != nil {
		return nil, l.err
	}
	for _, k := range l.keys {
		if k >= string(start) && (end == nil || k < string(end)) && !emit([]byte(k)) {
			break
		}
	}
	return l.unanswered, nil
}

func startKeysServer(t *testing.T, l Lister) string {
	t.Helper()
	return serveConfig(t, Config{Backend: storeBackend{newStore(t)}, Keys: l})
}

type keysReply struct {
	Keys       []string `json:"keys"`
	Next       string   `json:"next"`
	Unanswered []string `json:"unanswered"`
}

// unescape decodes a key of a listing.
func unescape(t *testing.T, s string) string {
	t.Helper()
	k, err := decodeKey(nil, []byte(s))
	if err != nil {
		t.Fatalf("listed key %q: %v", s, err)
	}
	return string(k)
}

func getKeys(t *testing.T, base, query string) keysReply {
	t.Helper()
	r := do(t, "GET", base+"/keys?"+query, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /keys?%s: %d %s", query, r.status, r.body)
	}
	var kr keysReply
	if err := json.Unmarshal(r.body, &kr); err != nil {
		t.Fatalf("GET /keys?%s: %v in %s", query, err, r.body)
	}
	for i, k := range kr.Keys {
		kr.Keys[i] = unescape(t, k)
	}
	return kr
}

func TestKeysPages(t *testing.T) {
	keys := []string{"a", "a+b", "a/b", "a%", "ab", "b", "b\x00", "b\xff", "c\n\"", "\xff\xff"}
	slices.Sort(keys)
	base := startKeysServer(t, sliceLister{keys: keys})
	page := func(query string, want []string, wantNext string) {
		t.Helper()
		kr := getKeys(t, base, query)
		if !slices.Equal(kr.Keys, want) || unescape(t, kr.Next) != wantNext {
			t.Errorf("?%s: %q next %q, want %q next %q", query, kr.Keys, kr.Next, want, wantNext)
		}
	}
	page("", keys, "")
	page("limit=3", keys[:3], keys[2])
	page("limit=10", keys, "")
	page("prefix=a", []string{"a", "a%", "a+b", "a/b", "ab"}, "")
	page("prefix=a&after=a%25", []string{"a+b", "a/b", "ab"}, "")
	page("prefix=a&after=a+b&limit=1", []string{"a/b"}, "a/b") // '+' is a plus sign
	page("after=b", []string{"b\x00", "b\xff", "c\n\"", "\xff\xff"}, "")
	page("after=0", keys, "") // before the first key
	page("prefix=b&after=a", []string{"b", "b\x00", "b\xff"}, "")
	page("prefix=b&after=c", nil, "")
	page("prefix=%FF", []string{"\xff\xff"}, "")
	page("prefix=%FF%FF", []string{"\xff\xff"}, "")
	page("prefix=zz", nil, "")
	page("&&limit=2&", keys[:2], keys[1])

	// Paging with next returns every key once.
	var all []string
	after := ""
	for range len(keys) + 1 {
		kr := getKeys(t, base, "limit=3&after="+url.QueryEscape(after))
		all = append(all, kr.Keys...)
		if kr.Next == "" {
			break
		}
		after = unescape(t, kr.Next)
	}
	if !slices.Equal(all, keys) {
		t.Errorf("paged: %q, want %q", all, keys)
	}
}

func TestKeysReplyBytesBounded(t *testing.T) {
	var keys []string
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("%03d", i)+strings.Repeat("k", 64<<10-3))
	}
	base := startKeysServer(t, sliceLister{keys: keys})
	kr := getKeys(t, base, "limit=100")
	if len(kr.Keys) == 0 || len(kr.Keys) == 100 || kr.Next == "" || kr.Keys[len(kr.Keys)-1] != unescape(t, kr.Next) {
		t.Fatalf("100 keys of 64 KiB: a page of %d, next %.8q", len(kr.Keys), kr.Next)
	}
}

func TestKeysErrors(t *testing.T) {
	base := startKeysServer(t, sliceLister{keys: []string{"a"}, unanswered: []string{"n3"}})
	if kr := getKeys(t, base, ""); !slices.Equal(kr.Unanswered, []string{"n3"}) || len(kr.Keys) != 1 {
		t.Errorf("unanswered: %+v", kr)
	}
	bad := []struct{ query, reason string }{
		{"limit=0", "limit"},
		{"limit=10001", "limit"},
		{"limit=-1", "limit"},
		{"limit=+5", "limit"},
		{"limit=x", "limit"},
		{"limit=", "limit"},
		{"limit=1&limit=2", "twice"},
		{"prefx=a", "unknown parameter"},
		{"after=%zz", "percent-encoding"},
		{"prefix=" + strings.Repeat("k", 64<<10+1), "longer"},
	}
	for _, c := range bad {
		r := do(t, "GET", base+"/keys?"+c.query, nil)
		if r.status != 400 || !strings.Contains(string(r.body), c.reason) || strings.Contains(string(r.body), "httpproxy") {
			t.Errorf("?%.40s: %d %q, want 400 naming %q", c.query, r.status, r.body, c.reason)
		}
	}
	if r := do(t, "POST", base+"/keys", nil); r.status != 405 {
		t.Errorf("POST /keys: %d", r.status)
	}
	down := startKeysServer(t, sliceLister{err: fmt.Errorf("%w: no node of bucket b1 answered", ErrUnavailable)})
	if r := do(t, "GET", down+"/keys", nil); r.status != 503 || !strings.Contains(string(r.body), "b1") {
		t.Errorf("unavailable: %d %s", r.status, r.body)
	}
	// Without a Lister (the coordinator's kind of server) there is no /keys.
	if r := do(t, "GET", startServer(t, 1<<20)+"/keys", nil); r.status != 404 {
		t.Errorf("no lister: %d", r.status)
	}
}

func FuzzParseKeysQuery(f *testing.F) {
	for _, s := range []string{"", "prefix=a&after=b&limit=5", "limit=10000", "after=%FF%00", "prefix=%FF&limit=1",
		"x=1", "limit=1&limit=1", "&&", "prefix", "after=%2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := ParseKeysQuery(raw)
		if err != nil {
			return
		}
		if q.Limit < 1 || q.Limit > MaxKeysLimit || len(q.Prefix) > lww.MaxKeyLen || len(q.After) > lww.MaxKeyLen {
			t.Fatalf("%q: out of bounds %+v", raw, q)
		}
		// What a listing prints parses back to the same query.
		again := "prefix=" + string(AppendEscapedKey(nil, q.Prefix)) + "&after=" + string(AppendEscapedKey(nil, q.After)) +
			"&limit=" + strconv.Itoa(q.Limit)
		q2, err := ParseKeysQuery([]byte(again))
		if err != nil || !bytes.Equal(q2.Prefix, q.Prefix) || !bytes.Equal(q2.After, q.After) || q2.Limit != q.Limit {
			t.Fatalf("%q: re-encoded %q parses to %+v %v", raw, again, q2, err)
		}
		start, end, ok := q.Range()
		if !ok {
			return
		}
		if !bytes.HasPrefix(start, q.Prefix) && bytes.Compare(start, q.Prefix) < 0 {
			t.Fatalf("%q: start %q before the prefix", raw, start)
		}
		if len(q.After) > 0 && bytes.Compare(start, q.After) <= 0 {
			t.Fatalf("%q: start %q not after %q", raw, start, q.After)
		}
		if end != nil && (bytes.Compare(start, end) >= 0 || bytes.HasPrefix(end, q.Prefix)) {
			t.Fatalf("%q: end %q: not past the prefix's keys, or not after start %q", raw, end, start)
		}
	})
}
