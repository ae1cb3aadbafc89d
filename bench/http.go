package bench

import (
	"crypto/tls"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tako-kv/tako/httpproxy"
)

// HTTPTarget speaks Tako's HTTP API (POST/GET /values/<key>) over one keep-alive connection.
// GET and POST use separate pre-built requests: a reused request would carry the previous
// POST's Content-Length into a GET.
type HTTPTarget struct {
	c    *fasthttp.HostClient
	get  *fasthttp.Request
	set  *fasthttp.Request
	resp *fasthttp.Response
	uri  []byte
	// prefix starts every request URI: the path, or under TLS an https URL (fasthttp's
	// HostClient refuses a request whose scheme is not its own).
	prefix string
}

// newHostClient is the one fasthttp client configuration of the harness: one connection,
// keep-alive, paths sent as built (keys are percent-encoded by appendPathEscaped).
func newHostClient(addr string, timeout time.Duration) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      1,
		ReadTimeout:                   timeout,
		WriteTimeout:                  timeout,
		ReadBufferSize:                64 << 10,
		WriteBufferSize:               64 << 10,
		MaxIdemponentCallAttempts:     1,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
	}
}

// newRequest returns a request for method against c's host.
func newRequest(c *fasthttp.HostClient, method string) *fasthttp.Request {
	r := fasthttp.AcquireRequest()
	r.Header.SetMethod(method)
	r.Header.SetHost(c.Addr)
	return r
}

// NewHTTPTarget returns a Target for a Tako node, proxy or the bare server at addr.
func NewHTTPTarget(addr string, timeout time.Duration) *HTTPTarget {
	c := newHostClient(addr, timeout)
	return &HTTPTarget{
		c:      c,
		get:    newRequest(c, fasthttp.MethodGet),
		set:    newRequest(c, fasthttp.MethodPost),
		resp:   fasthttp.AcquireResponse(),
		prefix: "/values/",
	}
}

// useTLS makes t speak HTTPS, verifying the server with cfg.
func (t *HTTPTarget) useTLS(cfg *tls.Config) {
	t.c.IsTLS, t.c.TLSConfig = true, cfg
	t.prefix = "https://" + t.c.Addr + "/values/"
}

// authorize makes t send token as a bearer token with every request (http_tokens_file):
// set once on the pre-built requests, so requests still allocate nothing.
func (t *HTTPTarget) authorize(token string) {
	for _, r := range []*fasthttp.Request{t.get, t.set} {
		r.Header.Set("Authorization", httpproxy.BearerHeader(token))
	}
}

func (t *HTTPTarget) do(req *fasthttp.Request, key []byte) error {
	t.uri = appendPathEscaped(append(t.uri[:0], t.prefix...), key)
	req.SetRequestURIBytes(t.uri)
	return doStatus(t.c, req, t.resp)
}

// doStatus runs one request and turns a non-2xx status into a *StatusError.
func doStatus(c *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) error {
	if err := c.Do(req, resp); err != nil {
		return err
	}
	if code := resp.StatusCode(); code < 200 || code > 299 {
		return &StatusError{Code: code}
	}
	return nil
}

// Get issues GET /values/<key>; the returned slice is the response body.
func (t *HTTPTarget) Get(key, _ []byte) ([]byte, error) {
	if err := t.do(t.get, key); err != nil {
		return nil, err
	}
	return t.resp.Body(), nil
}

// Set issues POST /values/<key> with value as body.
func (t *HTTPTarget) Set(key, value []byte) error {
	t.set.SetBodyRaw(value)
	return t.do(t.set, key)
}

// Close drops the connection and returns the request objects to their pools.
func (t *HTTPTarget) Close() error {
	t.c.CloseIdleConnections()
	fasthttp.ReleaseRequest(t.get)
	fasthttp.ReleaseRequest(t.set)
	fasthttp.ReleaseResponse(t.resp)
	t.get, t.set, t.resp = nil, nil, nil
	return nil
}

// appendPathEscaped percent-encodes everything but RFC 3986 unreserved bytes, so any file
// basename survives as one path segment.
func appendPathEscaped(dst, s []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range s {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}
