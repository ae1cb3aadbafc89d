// Package httpproxy is Tako's HTTP API on fasthttp, served both by every
// node (over its local store or the cluster) and by tako-proxy (over the
// cluster): one Handler, any Backend.
//
// # API
//
//	POST|PUT /values/<key>   body is the value; optional X-Timestamp (µs,
//	                         positive, at most max_clock_skew ahead: else 400);
//	                         optional X-Write-Acks: one|quorum|all (any
//	                         case, as every header value read here).
//	                         200 with X-Timestamp of the record now current;
//	                         X-Applied: no when a newer record won.
//	GET|HEAD /values/<key>   200 value (application/octet-stream), X-Timestamp,
//	                         Last-Modified; X-Read-Quorum: no when served
//	                         without a read quorum; 404 when absent or deleted
//	                         (a tombstone's 404 has its X-Timestamp and
//	                         X-Tombstone: yes).
//	DELETE   /values/<key>   writes a tombstone; 200 with X-Timestamp.
//	GET      /stat/<key>     200 with the timestamp as body and headers; 404.
//	GET|HEAD /replica/<key>  a node's own record (Config.Local), no routing.
//	GET      /health         200 "ok" (liveness).
//	GET|HEAD /keys           keys holding a value, in byte order (Config.Keys:
//	                         a node's own, or the cluster's behind a proxy):
//	                         ?prefix=P&after=K&limit=N (limit 1..10000,
//	                         default 1000); {"keys":[...],"next":"K"}, next
//	                         empty when the listing is complete. Keys are
//	                         percent-encoded as in a /values/ path
//	                         (AppendEscapedKey: all but A-Z a-z 0-9 - _ . ~),
//	                         and query values are decoded like paths ('+' is
//	                         a plus sign), so a listed key goes back as
//	                         after= or into /values/ as it is. A page ends
//	                         early past 4 MiB of keys; "unanswered" names the
//	                         nodes that could not be asked.
//
// Processes add paths of their own through Config.Routes: a node's /status
// and /repair, and on nodes and proxies /ready (readiness) and /metrics
// (package server/metrics). Every request, whatever its path, is counted
// by method and status code with its duration (Config.Metrics).
//
// Timestamps come from a hybrid logical clock (kv/hlc): a write without
// X-Timestamp is stamped above every timestamp the handler has seen in a
// reply, so a read-then-write through any process keeps the later write.
//
// The key is the raw rest of the path, percent-decoded by this package (not
// fasthttp's normalised path, which would fold "//" and "/../" and corrupt
// keys). Errors are a status and a one-line text reason in plain words (the
// Go package prefixes of wrapped errors are dropped; the log keeps them): 400
// bad input, 401 no known bearer token, 403 a read-only token writing, 404,
// 405, 408 headers not received in time, 413 value too large, 414 key too
// long, 503 replicas unavailable or the body budget full (with Retry-After),
// 507 disk full.
//
// # Limits
//
// A server from NewServer bounds what a client can hold (Limits): a
// connection's first byte and each request's headers must arrive within
// HeaderTimeout (10s; a 408 then), a body within HeaderTimeout plus its
// length at MinRate (1 MiB/s), a response likewise sized for the largest
// value; keep-alive connections idle for IdleTimeout (2m) are closed; one
// address holds at most MaxConnsPerIP (1024) connections. Request bodies are
// streamed and read by the handler under a budget of bytes in flight
// (BodyBudgetBytes, twice the largest value, at least 128 MiB): over it, a
// write is answered 503 with Retry-After: 1 and its body is read and
// dropped rather than buffered. RetryAccept keeps a listener accepting
// through descriptor exhaustion (EMFILE), backing off up to 1s.
//
// # Access
//
// With Config.Tokens holding a tokens file (ParseTokens: one `TOKEN
// read-only|read-write` per line, # comments), every path but /health and
// Config.OpenPaths (a node's /ready) needs
// `Authorization: Bearer TOKEN`: GET and HEAD a read-only or read-write
// token, other methods a read-write one. Without a known token: 401 with
// `WWW-Authenticate: Bearer realm="tako"`; a read-only token that writes:
// 403 (error="insufficient_scope"); each with a one-line reason. Only
// SHA-256 sums of the tokens are kept; a request's token is hashed and
// compared with every sum in constant time (crypto/subtle), without
// allocating. TokenGuard swaps the set whole when the file is read again.
// RequireTokens applies the same rules to a net/http handler (the
// coordinator's). Files holding tokens must be private, like the cluster
// secret (eventloop.ReadPrivateFile).
//
// # Concurrency and allocation
//
// fasthttp runs Serve on one goroutine per connection; Handler holds no
// per-request state of its own. The GET path does not allocate: the value is
// read into the response's own body buffer (Response.SwapBody), header
// values are formatted into stack buffers, and the request metrics are
// series resolved ahead.
package httpproxy
