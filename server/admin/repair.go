package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// pathRepair is the node's POST endpoint (server.PathRepair; not imported,
// so that tako-admin does not link the node).
const pathRepair = "/repair"

// RepairResult is what one node answered to POST /repair.
type RepairResult struct {
	target
	Started bool   `json:"started"`
	Error   string `json:"error,omitempty"`
}

func runRepair(ctx context.Context, e *env, args []string) error {
	pos, err := e.parseCommand(e.command("repair"), args, 0, 1)
	if err != nil {
		return err
	}
	targets, err := e.repairTargets(ctx, pos)
	if err != nil {
		return err
	}
	results := make([]RepairResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = e.repair(ctx, t) }()
	}
	wg.Wait()
	if e.json {
		err = e.writeJSON(results)
	} else {
		err = writeRepairs(e.out, results)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if !r.Started {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("repair: %d of %d nodes did not start a pass", failed, len(results))
	}
	return nil
}

// repairTargets is the node named, or -node, else every node of the
// coordinator's live deployments.
func (e *env) repairTargets(ctx context.Context, pos []string) ([]target, error) {
	if len(pos) == 1 || e.node != "" {
		name := ""
		if len(pos) == 1 {
			name = pos[0]
		}
		t, err := e.resolve(ctx, name)
		return []target{t}, err
	}
	cfg, err := e.fetchConfig(ctx)
	if err != nil {
		return nil, err
	}
	var ts []target
	for _, n := range cfg.Nodes() {
		ts = append(ts, target{ID: n.ID, HTTP: n.HTTPAddr()})
	}
	return ts, nil
}

func (e *env) repair(ctx context.Context, t target) RepairResult {
	r := RepairResult{target: t}
	resp, err := e.do(ctx, "POST", t.HTTP, pathRepair)
	if err == nil {
		if resp.StatusCode == http.StatusAccepted {
			r.Started = true
		} else {
			err = replyError(t.HTTP, "POST", pathRepair, resp)
		}
		resp.Body.Close()
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

func writeRepairs(w io.Writer, rs []RepairResult) error {
	for _, r := range rs {
		line := "anti-entropy pass started"
		if !r.Started {
			line = "failed: " + r.Error
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", r.target, line); err != nil {
			return err
		}
	}
	return nil
}
