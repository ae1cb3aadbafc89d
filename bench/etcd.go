package bench

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"
)

// EtcdTarget talks to etcd's v3 JSON gateway (grpc-gateway, etcd ≥ 3.4): POST /v3/kv/put and
// /v3/kv/range with base64 keys and values.
type EtcdTarget struct {
	c    *fasthttp.HostClient
	req  *fasthttp.Request
	resp *fasthttp.Response
	body []byte
}

// NewEtcdTarget returns a Target for the etcd client URL host:port.
func NewEtcdTarget(addr string, timeout time.Duration) *EtcdTarget {
	c := newHostClient(addr, timeout)
	t := &EtcdTarget{c: c, req: newRequest(c, fasthttp.MethodPost), resp: fasthttp.AcquireResponse()}
	t.req.Header.SetContentType("application/json")
	return t
}

var (
	etcdValueField = []byte(`"value":"`)
	etcdKvsField   = []byte(`"kvs":`)
)

func (t *EtcdTarget) call(path string) error {
	t.req.SetRequestURI(path)
	t.req.SetBodyRaw(t.body)
	return doStatus(t.c, t.req, t.resp)
}

// appendB64Field appends "name":"<base64 v>".
func appendB64Field(dst []byte, name string, v []byte) []byte {
	dst = append(dst, '"')
	dst = append(dst, name...)
	dst = append(dst, `":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, '"')
}

// Set puts key=value.
func (t *EtcdTarget) Set(key, value []byte) error {
	t.body = append(appendB64Field(append(t.body[:0], '{'), "key", key), ',')
	t.body = append(appendB64Field(t.body, "value", value), '}')
	return t.call("/v3/kv/put")
}

// Get ranges over exactly key and decodes the first kv's value into dst.
func (t *EtcdTarget) Get(key, dst []byte) ([]byte, error) {
	t.body = append(appendB64Field(append(t.body[:0], '{'), "key", key), '}')
	if err := t.call("/v3/kv/range"); err != nil {
		return nil, err
	}
	return decodeEtcdValue(t.resp.Body(), dst)
}

// decodeEtcdValue extracts kvs[0].value from a range reply. The gateway omits "kvs" when the
// key is absent and omits "value" when it is empty.
func decodeEtcdValue(body, dst []byte) ([]byte, error) {
	k := bytes.Index(body, etcdKvsField)
	if k < 0 {
		return nil, ErrNotFound
	}
	rest := body[k:]
	i := bytes.Index(rest, etcdValueField)
	if i < 0 {
		return dst[:0], nil
	}
	rest = rest[i+len(etcdValueField):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, fmt.Errorf("%w: unterminated etcd value", ErrBadReply)
	}
	out, err := base64.StdEncoding.AppendDecode(dst[:0], rest[:j])
	if err != nil {
		return nil, fmt.Errorf("%w: etcd value: %w", ErrBadReply, err)
	}
	return out, nil
}

// Close drops the connection.
func (t *EtcdTarget) Close() error {
	t.c.CloseIdleConnections()
	fasthttp.ReleaseRequest(t.req)
	fasthttp.ReleaseResponse(t.resp)
	t.req, t.resp = nil, nil
	return nil
}
