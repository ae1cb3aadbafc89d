package bench

import (
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestDecodeEtcdValue(t *testing.T) {
	hello := base64.StdEncoding.EncodeToString([]byte("hello"))
	ok := func(body, want string) {
		t.Helper()
		got, err := decodeEtcdValue([]byte(body), nil)
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", body, got, err)
		}
	}
	ok(`{"header":{"revision":"5"},"kvs":[{"key":"aw==","create_revision":"2","mod_revision":"5","version":"4","value":"`+hello+`"}],"count":"1"}`, "hello")
	ok(`{"header":{},"kvs":[{"key":"aw==","version":"1"}],"count":"1"}`, "") // empty value is omitted
	if _, err := decodeEtcdValue([]byte(`{"header":{"revision":"5"}}`), nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent key: %v", err)
	}
	for _, bad := range []string{`{"kvs":[{"value":"aGVsbG8`, `{"kvs":[{"value":"!!!!"}]}`} {
		if _, err := decodeEtcdValue([]byte(bad), nil); !errors.Is(err, ErrBadReply) {
			t.Errorf("%s: %v, want ErrBadReply", bad, err)
		}
	}
}

func FuzzDecodeEtcdValue(f *testing.F) {
	f.Add([]byte(`{"kvs":[{"value":"aGVsbG8="}]}`))
	f.Add([]byte(`{"header":{}}`))
	f.Add([]byte(`"kvs":"value":"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeEtcdValue(b, nil)
		if err == nil && len(got) > len(b) {
			t.Fatal("decoded value longer than the reply")
		}
	})
}

// TestEtcdTarget runs the client against a fake gateway that stores the JSON bodies it gets.
func TestEtcdTarget(t *testing.T) {
	var mu sync.Mutex
	var stored []byte
	addr := serveHTTP(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		defer mu.Unlock()
		switch string(ctx.Path()) {
		case "/v3/kv/put":
			stored = append(stored[:0], ctx.PostBody()...)
			ctx.SetBodyString(`{"header":{"revision":"2"}}`)
		case "/v3/kv/range":
			if stored == nil {
				ctx.SetBodyString(`{"header":{}}`)
				return
			}
			// Echo the stored put body as the kv: it has "key" and "value" fields.
			ctx.SetBodyString(`{"header":{},"kvs":[` + string(stored) + `],"count":"1"}`)
		default:
			ctx.SetStatusCode(404)
		}
	})
	tg := NewEtcdTarget(addr, 2*time.Second)
	defer tg.Close()
	if _, err := tg.Get([]byte("k"), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get before put: %v", err)
	}
	if err := tg.Set([]byte("k"), []byte("v\x00\xff")); err != nil {
		t.Fatal(err)
	}
	want := `{"key":"aw==","value":"dgD/"}`
	mu.Lock()
	defer mu.Unlock()
	if string(stored) != want {
		t.Fatalf("put body %s, want %s", stored, want)
	}
	mu.Unlock()
	got, err := tg.Get([]byte("k"), nil)
	mu.Lock()
	if err != nil || string(got) != "v\x00\xff" {
		t.Fatalf("get: %q, %v", got, err)
	}
}
