package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/tako-kv/tako/httpproxy"
)

// keysPage is one reply of GET /keys (see httpproxy).
type keysPage struct {
	Keys       []string `json:"keys"` // percent-encoded
	Next       string   `json:"next"` // percent-encoded; empty: the last page
	Unanswered []string `json:"unanswered"`
}

// keysSource is where keys lists: -proxy for the whole cluster, else -node
// for that node's own keys.
func (e *env) keysSource() (string, error) {
	switch {
	case e.proxy != "":
		return e.proxy, nil
	case e.node != "":
		return e.node, nil
	}
	return "", usageErrorf("keys needs a proxy (-proxy HOST:PORT: every key of the cluster) or a node (-node HOST:HTTPPORT: its own keys)")
}

func runKeys(ctx context.Context, e *env, args []string) error {
	fs := e.command("keys")
	prefix := fs.String("prefix", "", "list only the keys that start with `P`")
	limit := fs.Int("limit", httpproxy.DefaultKeysLimit, "keys per request (1 to 10000)")
	if _, err := e.parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	addr, err := e.keysSource()
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > httpproxy.MaxKeysLimit {
		return usageErrorf("keys: -limit %d: want 1 to %d", *limit, httpproxy.MaxKeysLimit)
	}
	w := newKeysWriter(e.out, e.json)
	var unanswered []string
	err = e.pageKeys(ctx, addr, []byte(*prefix), *limit, func(p keysPage) error {
		for _, n := range p.Unanswered {
			if !slices.Contains(unanswered, n) {
				unanswered = append(unanswered, n)
			}
		}
		return w.page(p.Keys)
	})
	if err != nil {
		return err
	}
	if err := w.finish(unanswered); err != nil {
		return err
	}
	if len(unanswered) > 0 {
		return fmt.Errorf("%w: keys: nodes %v did not answer; keys only they hold are missing", errUnhealthy, unanswered)
	}
	return nil
}

// pageKeys asks addr for every key with prefix, limit a page, and calls fn
// with each page in order.
func (e *env) pageKeys(ctx context.Context, addr string, prefix []byte, limit int, fn func(keysPage) error) error {
	after := ""
	for {
		path := "/keys?prefix=" + string(httpproxy.AppendEscapedKey(nil, prefix)) + "&limit=" + strconv.Itoa(limit)
		if after != "" {
			path += "&after=" + after // as listed: percent-encoded already
		}
		var p keysPage
		if err := e.getJSON(ctx, addr, path, &p); err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		if p.Next == "" {
			return nil
		}
		if p.Next == after {
			return fmt.Errorf("%s GET %s: next %q does not move past after", addr, path, p.Next)
		}
		after = p.Next
	}
}

// keysWriter prints a listing as it comes: one key a line, or a JSON
// object {"keys":[...]} of the percent-encoded keys (and "unanswered").
type keysWriter struct {
	w     io.Writer
	json  bool
	count int
}

func newKeysWriter(w io.Writer, asJSON bool) *keysWriter { return &keysWriter{w: w, json: asJSON} }

func (k *keysWriter) page(keys []string) error {
	var b []byte
	for _, enc := range keys {
		switch {
		case k.json && k.count == 0:
			b = strconv.AppendQuote(append(b, `{"keys":[`...), enc)
		case k.json:
			b = strconv.AppendQuote(append(b, ','), enc)
		default:
			key, err := url.PathUnescape(enc)
			if err != nil {
				return fmt.Errorf("listed key %q: %w", enc, err)
			}
			b = append(appendKeyLine(b, key), '\n')
		}
		k.count++
	}
	_, err := k.w.Write(b)
	return err
}

// finish ends a JSON listing (text needs no end).
func (k *keysWriter) finish(unanswered []string) error {
	if !k.json {
		return nil
	}
	var b []byte
	if k.count == 0 {
		b = append(b, `{"keys":[`...)
	}
	b = append(b, ']')
	if len(unanswered) > 0 {
		names, err := json.Marshal(unanswered)
		if err != nil {
			return err
		}
		b = append(append(b, `,"unanswered":`...), names...)
	}
	_, err := k.w.Write(append(b, "}\n"...))
	return err
}

// appendKeyLine appends key as printed one a line: as it is when it is
// printable text without spaces, else Go-quoted ("a b", "\xff"), so every
// line is one key and a script can tell.
func appendKeyLine(b []byte, key string) []byte {
	if plainKey(key) {
		return append(b, key...)
	}
	return strconv.AppendQuote(b, key)
}

func plainKey(key string) bool {
	if !utf8.ValidString(key) || key == "" || key[0] == '"' {
		return false
	}
	return !bytes.ContainsFunc([]byte(key), func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) })
}
