package bench

import (
	"context"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// BareHandler is the do-nothing HTTP server that sets the machine's HTTP ceiling: GET and HEAD
// return a constant value of valueSize bytes, everything else 200 with an empty body, and
// /health answers "ok". It reads no state and allocates nothing per request.
func BareHandler(valueSize int) fasthttp.RequestHandler {
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	ok := []byte("ok")
	return func(ctx *fasthttp.RequestCtx) {
		switch {
		case string(ctx.Path()) == "/health":
			ctx.SetBody(ok)
		case ctx.IsGet() || ctx.IsHead():
			ctx.SetContentType("application/octet-stream")
			ctx.Response.SetBodyRaw(value)
		}
	}
}

// ServeBare serves BareHandler on ln until ctx is done.
func ServeBare(ctx context.Context, ln net.Listener, valueSize int) error {
	s := &fasthttp.Server{
		Handler:                       BareHandler(valueSize),
		Name:                          "tako-bench-bare",
		MaxRequestBodySize:            1 << 30,
		ReadBufferSize:                64 << 10,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
		ReadTimeout:                   time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.ShutdownWithContext(sctx)
		<-errc
		return nil
	}
}
