package server

import (
	"encoding/json"

	"github.com/tako-kv/tako/server/hints"
	"github.com/tako-kv/tako/server/nodestatus"
	"github.com/valyala/fasthttp"
)

// statusHandler serves status() as JSON (nodestatus.Path).
func statusHandler(status func() nodestatus.Status) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsGet() && !ctx.IsHead() {
			ctx.Response.Header.Set("Allow", "GET, HEAD")
			ctx.Error("method not allowed; allowed: GET, HEAD\n", fasthttp.StatusMethodNotAllowed)
			return
		}
		body, err := json.Marshal(status())
		if err != nil {
			ctx.Error(err.Error()+"\n", fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(append(body, '\n'))
	}
}

// PathRepair is where an operator asks a node for an anti-entropy pass now
// (POST; tako-admin repair).
const PathRepair = "/repair"

// repairHandler starts a pass (poke) on POST /repair.
func repairHandler(poke func()) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			ctx.Error("method not allowed; allowed: POST\n", fasthttp.StatusMethodNotAllowed)
			return
		}
		poke()
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		ctx.SetBodyString("anti-entropy pass started; GET /status shows its report when done\n")
	}
}

// status is the node's report now.
func (h *healer) status(id string, hs *hints.Store) nodestatus.Status {
	cfg := h.cluster.Config()
	_, named := cfg.FindNode(id)
	st := hs.Stats()
	return nodestatus.Status{ID: id, ConfigVersion: cfg.Version, Named: named, LastPass: h.lastPass(),
		PushedTotal: h.pushed.Load(),
		Hints: nodestatus.Hints{Stored: st.Stored, Replayed: st.Replayed, Dropped: st.Dropped,
			Pending: st.Pending, PendingBytes: st.PendingBytes}}
}
