package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tako-kv/tako/codec"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
)

// Key listing (GET /keys): a node lists its own store; a proxy merges the
// listings of every node of the live deployments. Each source is read a
// page at a time (Replica.Keys), so a listing holds at most a page per
// source whatever the data set: about limit records, never more than one
// peer reply (scanMaxCount records, scanMaxBytes).

// keySource is one replica's keys in a range, read a page at a time.
type keySource struct {
	node   string
	rep    Replica
	page   []codec.Record
	pos    int
	next   []byte // where the following page starts
	done   bool   // no page follows the current one
	failed bool   // dropped: it did not answer
}

// head returns the source's least key not merged yet.
func (s *keySource) head() (codec.Record, bool) {
	if s.failed || s.pos >= len(s.page) {
		return codec.Record{}, false
	}
	return s.page[s.pos], true
}

// drained reports whether the source needs its next page before the merge
// can go on.
func (s *keySource) drained() bool { return !s.failed && !s.done && s.pos >= len(s.page) }

// keyMerge merges the listings of sources into one, in key order, each key
// once, shown when its newest record (last write wins) holds a value.
type keyMerge struct {
	sources []*keySource
	end     []byte
	limit   int           // records per page asked of each source
	timeout time.Duration // bounds each page
	// failed is told of each source that did not answer; its error ends
	// the listing, nil lets it go on without the source.
	failed func(src int, err error) error
}

// run calls emit with each key shown, in order, until emit returns false
// or every source is done; it returns the sources that did not answer.
func (m *keyMerge) run(ctx context.Context, emit func(key []byte) bool) ([]string, error) {
	for {
		if err := m.fill(ctx); err != nil {
			return nil, err
		}
		var least []byte
		for _, s := range m.sources {
			if r, ok := s.head(); ok && (least == nil || bytes.Compare(r.Key, least) < 0) {
				least = r.Key
			}
		}
		if least == nil {
			return m.unanswered(), nil
		}
		var newest kv.Record
		found := false
		for _, s := range m.sources {
			r, ok := s.head()
			if !ok || !bytes.Equal(r.Key, least) {
				continue
			}
			if rec := recordOf(r.TS, r.Flags, nil); !found || kv.Newer(rec, newest) {
				newest, found = rec, true
			}
			s.pos++
		}
		// least stays valid: a page is replaced only by the next fill.
		if !newest.Tombstone && !emit(least) {
			return m.unanswered(), nil
		}
	}
}

// fill reads the next page of every drained source, at once.
func (m *keyMerge) fill(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(m.sources))
	for i, s := range m.sources {
		if !s.drained() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, m.timeout)
			defer cancel()
			page, next, err := s.rep.Keys(pctx, s.next, m.end, m.limit)
			if err == nil && len(page) == 0 && next != nil {
				err = errors.New("an empty page with more to come") // would never end
			}
			if err != nil {
				errs[i] = fmt.Errorf("list keys of %s: %w", s.node, err)
				return
			}
			s.page, s.pos, s.next, s.done = page, 0, next, next == nil
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		m.sources[i].failed = true
		if err := m.failed(i, err); err != nil {
			return err
		}
	}
	return nil
}

func (m *keyMerge) unanswered() []string {
	var names []string
	for _, s := range m.sources {
		if s.failed {
			names = append(names, s.node)
		}
	}
	return names
}

// newKeyMerge returns a merge of the listings of reps (named by nodes) from
// start to end.
func newKeyMerge(nodes []string, reps []Replica, start, end []byte, limit int, timeout time.Duration) *keyMerge {
	m := &keyMerge{end: end, limit: limit, timeout: timeout}
	for i, rep := range reps {
		m.sources = append(m.sources, &keySource{node: nodes[i], rep: rep, next: start})
	}
	return m
}

// ListKeys implements httpproxy.Lister over every node of the live
// deployments. A node that does not answer is left out (and named) as long
// as every bucket of the active deployment has a node that answered — it
// holds every write; else the listing is unavailable.
func (c *Cluster) ListKeys(ctx context.Context, start, end []byte, limit int, emit func(key []byte) bool) ([]string, error) {
	t := c.topo.Load()
	names := make([]string, len(t.nodes))
	for i, n := range t.nodes {
		names[i] = n.ID
	}
	m := newKeyMerge(names, t.replicas, start, end, limit, c.timeout)
	m.failed = func(src int, err error) error {
		c.listLog.Warn(c.log, "key listing goes on without a node", "node", names[src], "err", err)
		if lost := t.bucketsLost(m.sources); len(lost) > 0 {
			return fmt.Errorf("%w: no node of bucket %s answered, so its keys cannot be listed (%v)",
				httpproxy.ErrUnavailable, strings.Join(lost, ", "), err)
		}
		return nil
	}
	return m.run(ctx, emit)
}

// bucketsLost returns the buckets of the active deployment none of whose
// nodes is left among sources (parallel to t.nodes).
func (t *topology) bucketsLost(sources []*keySource) []string {
	var lost []string
	for b, nodes := range t.layouts[0].buckets {
		alive := false
		for _, n := range nodes {
			alive = alive || !sources[n].failed
		}
		if !alive {
			lost = append(lost, t.cfg.ActiveDeployment().Buckets[b].ID)
		}
	}
	return lost
}

// localKeys lists a node's own store (GET /keys on a node).
type localKeys struct{ store *kv.Store }

// ListKeys implements httpproxy.Lister.
func (l localKeys) ListKeys(ctx context.Context, start, end []byte, limit int, emit func(key []byte) bool) ([]string, error) {
	m := newKeyMerge([]string{"local store"}, []Replica{localReplica{l.store}}, start, end, limit, time.Minute)
	m.failed = func(_ int, err error) error { return err }
	return m.run(ctx, emit)
}
