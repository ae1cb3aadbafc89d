package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/eventloop"
)

// replicaReader reads records from each node itself over the peer protocol, at the address
// the node really listens on: neither the interposer nor another node's routing is involved.
type replicaReader struct {
	clients map[string]*eventloop.Client
}

func (c *Cluster) newReplicaReader() *replicaReader {
	r := &replicaReader{clients: map[string]*eventloop.Client{}}
	for _, nd := range c.Nodes {
		r.clients[nd.ID] = eventloop.NewClient(c.sec.peer(eventloop.ClientConfig{Addr: nd.RealPeer, Conns: 1, Logger: c.log}))
	}
	return r
}

func (r *replicaReader) close() {
	for _, cl := range r.clients {
		_ = cl.Close()
	}
}

// read returns node id's record of key.
func (r *replicaReader) read(ctx context.Context, id, key string) Record {
	rec := Record{Node: id}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := r.clients[id].Get(ctx, []byte(key))
	if err != nil {
		rec.Err = err.Error()
		return rec
	}
	defer resp.Release()
	switch resp.Status {
	case codec.StatusOK:
		rec.Present, rec.TS = true, resp.TS
		rec.Tombstone = resp.Flags&codec.Tombstone != 0
		rec.Value = string(resp.Value)
	case codec.StatusNotFound:
	default:
		rec.Err = fmt.Sprintf("status %v", resp.Status)
	}
	return rec
}

// finals reads every key from each of its replicas.
func (c *Cluster) finals(ctx context.Context, r *replicaReader, keys []string) map[string][]Record {
	out := make(map[string][]Record, len(keys))
	for _, k := range keys {
		for _, nd := range c.Replicas(k) {
			out[k] = append(out[k], r.read(ctx, nd.ID, k))
		}
	}
	return out
}

// diverged counts the keys whose replicas were not all read or do not agree.
func diverged(finals map[string][]Record) int {
	n := 0
	for _, recs := range finals {
		for _, r := range recs {
			if !r.same(recs[0]) {
				n++
				break
			}
		}
	}
	return n
}

func converged(finals map[string][]Record) bool { return diverged(finals) == 0 }

// Convergence is how the replicas came to agree at the end of a run.
type Convergence struct {
	DivergedAtFirst int           // keys whose replicas disagreed at the first reading
	Wait            time.Duration // until they agreed, or the bound
	Converged       bool
}

// Converge reads the keys from every replica until they agree or bound passes (healing runs
// every background_healing_interval), and returns the last reading.
func (c *Cluster) Converge(ctx context.Context, keys []string, bound time.Duration) (map[string][]Record, Convergence) {
	r := c.newReplicaReader()
	defer r.close()
	start := time.Now()
	deadline := start.Add(bound)
	var cv Convergence
	for round := 0; ; round++ {
		f := c.finals(ctx, r, keys)
		n := diverged(f)
		if round == 0 {
			cv.DivergedAtFirst = n
		}
		if n == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			cv.Wait, cv.Converged = time.Since(start), n == 0
			return f, cv
		}
		sleep(ctx, 200*time.Millisecond)
	}
}
