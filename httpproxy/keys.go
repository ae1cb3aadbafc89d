package httpproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/tako-kv/tako/kv/lww"
	"github.com/valyala/fasthttp"
)

// Key listing: GET /keys?prefix=P&after=K&limit=N.

const (
	// DefaultKeysLimit is how many keys a page holds without limit=.
	DefaultKeysLimit = 1000
	// MaxKeysLimit bounds limit=.
	MaxKeysLimit = 10000
	// maxKeysReplyBytes ends a page early when its keys, escaped, pass it:
	// 10,000 keys of 64 KiB would otherwise make a reply of gigabytes.
	maxKeysReplyBytes = 4 << 20
)

// Lister lists keys for GET /keys: a node's own store, or the cluster behind
// a proxy. Implementations are safe for concurrent use.
type Lister interface {
	// ListKeys calls emit with each key in [start, end) (end nil: no upper
	// bound) whose current record holds a value, in key order, each once,
	// until emit returns false or the keys run out; key is valid only
	// during emit. limit is how many keys the caller expects to take: a
	// Lister reads ahead about that many from each source. unanswered names
	// the sources that could not be asked: the listing misses keys that
	// only they hold. An error wrapping ErrUnavailable means too few
	// sources answered to list at all.
	ListKeys(ctx context.Context, start, end []byte, limit int, emit func(key []byte) bool) (unanswered []string, err error)
}

// KeysQuery is a parsed GET /keys query: the keys that start with Prefix,
// after After, at most Limit of them.
type KeysQuery struct {
	Prefix, After []byte
	Limit         int
}

// ParseKeysQuery parses the raw query string of GET /keys (without the
// '?'). Values are percent-decoded as keys in paths are: '+' is a plus sign,
// so a key a listing returned (AppendEscapedKey) can be passed back as
// after= as it is. Unknown or repeated parameters are errors, so a typo is
// not a silent full listing.
func ParseKeysQuery(raw []byte) (KeysQuery, error) {
	q := KeysQuery{Limit: DefaultKeysLimit}
	seen := map[string]bool{}
	for len(raw) > 0 {
		var param []byte
		param, raw, _ = bytes.Cut(raw, []byte("&"))
		if len(param) == 0 {
			continue
		}
		name, value, _ := bytes.Cut(param, []byte("="))
		if seen[string(name)] {
			return KeysQuery{}, fmt.Errorf("parameter %.64q given twice", name)
		}
		seen[string(name)] = true
		var err error
		switch string(name) {
		case "prefix":
			q.Prefix, err = queryKey("prefix", value)
		case "after":
			q.After, err = queryKey("after", value)
		case "limit":
			q.Limit, err = queryLimit(value)
		default:
			return KeysQuery{}, fmt.Errorf("unknown parameter %.64q; use prefix, after and limit", name)
		}
		if err != nil {
			return KeysQuery{}, err
		}
	}
	return q, nil
}

func queryKey(name string, value []byte) ([]byte, error) {
	key, err := decodeKey(nil, value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(key) > lww.MaxKeyLen {
		return nil, fmt.Errorf("%s longer than %d bytes", name, lww.MaxKeyLen)
	}
	return key, nil
}

func queryLimit(value []byte) (int, error) {
	n, err := strconv.Atoi(string(value))
	if err != nil || n < 1 || n > MaxKeysLimit || value[0] == '+' {
		return 0, fmt.Errorf("limit %.32q: want a whole number from 1 to %d", value, MaxKeysLimit)
	}
	return n, nil
}

// Range returns the keys q lists, [start, end) (end nil: no upper bound):
// from Prefix, or from just after After when that is later, to the first key
// past every key that starts with Prefix. ok is false when the range is
// empty.
func (q KeysQuery) Range() (start, end []byte, ok bool) {
	start = q.Prefix
	if len(q.After) > 0 {
		// The least key greater than After.
		if next := append(bytes.Clone(q.After), 0); bytes.Compare(next, start) > 0 {
			start = next
		}
	}
	end = prefixEnd(q.Prefix)
	return start, end, end == nil || bytes.Compare(start, end) < 0
}

// prefixEnd returns the least key greater than every key that starts with
// prefix; nil when there is none (no prefix, or only 0xFF bytes).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

var pathKeys = []byte("/keys")

// serveKeys answers GET /keys: {"keys":[...],"next":"..."}, each key
// percent-encoded as in a /values/ path (AppendEscapedKey), next the key to
// pass as after= for the following page, empty when the listing is complete;
// "unanswered" names the sources that could not be asked, when some could
// not.
func (h *Handler) serveKeys(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		methodNotAllowed(ctx, "GET, HEAD")
		return
	}
	var raw []byte
	if _, query, ok := bytes.Cut(ctx.Request.Header.RequestURI(), []byte("?")); ok {
		raw = query
	}
	q, err := ParseKeysQuery(raw)
	if err != nil {
		textError(ctx, fasthttp.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	body := append(make([]byte, 0, 4096), `{"keys":[`...)
	n, more := 0, false
	var last, unanswered []byte
	if start, end, ok := q.Range(); ok {
		names, err := h.cfg.Keys.ListKeys(ctx, start, end, q.Limit+1, func(key []byte) bool {
			if n == q.Limit || len(body) >= maxKeysReplyBytes {
				more = true
				return false
			}
			if n > 0 {
				body = append(body, ',')
			}
			body = append(AppendEscapedKey(append(body, '"'), key), '"')
			last = append(last[:0], key...)
			n++
			return true
		})
		if err != nil {
			h.backendError(ctx, err)
			return
		}
		if len(names) > 0 {
			unanswered, _ = json.Marshal(names)
		}
	}
	body = append(body, `],"next":"`...)
	if more {
		body = AppendEscapedKey(body, last)
	}
	body = append(body, '"')
	if unanswered != nil {
		body = append(append(body, `,"unanswered":`...), unanswered...)
	}
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetBody(append(body, "}\n"...))
}
