package launcher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/config"
	"github.com/tako-kv/tako/server/coordinator"
	"github.com/tako-kv/tako/server/nodestatus"
)

// A node that no live deployment names any more still holds the records
// it owned; stopping it at once would strand those its new owners lack.
// So it leaves in two steps: a watch polls its GET /status (and the
// coordinators' GET /status) until it has handed off what it holds, then
// Run's goroutine stops it as any other child.

// leaver is a node on its way out: still running, watched until it has
// handed off. Only Run's goroutine touches it.
type leaver struct {
	ch     *child
	node   config.Node // where it listens: a new node may wait for its ports
	cancel context.CancelFunc
}

// handoffEnd is a watch's verdict, sent to Run's goroutine.
type handoffEnd struct {
	ch     *child
	reason string // why it may stop now, or with late what it still held
	late   bool   // HandoffTimeout passed first
}

// leave starts watching ch (node n, which cfg no longer names) and leaves
// it running until the watch ends.
func (c *cluster) leave(ctx context.Context, ch *child, n config.Node) {
	ctx, cancel := context.WithCancel(ctx)
	c.leaving[n.ID] = &leaver{ch: ch, node: n, cancel: cancel}
	w := handoffWatch{
		poll: c.o.Poll, timeout: c.o.HandoffTimeout,
		node: localURL(c.plan.scheme, n.Host, n.HTTPPort, nodestatus.Path), coordinators: coordinatorStatusURLs(c.cfg),
		client: c.status, token: c.o.token,
	}
	c.watches.Add(1)
	go func() {
		defer c.watches.Done()
		reason, late := w.run(ctx)
		select {
		case c.handedOff <- handoffEnd{ch: ch, reason: reason, late: late}:
		case <-ctx.Done():
		}
	}()
}

// forget ends the watch of leaver id (named again, or exited), if any, and
// returns its child.
func (c *cluster) forget(id string) *child {
	l, ok := c.leaving[id]
	if !ok {
		return nil
	}
	l.cancel()
	delete(c.leaving, id)
	return l.ch
}

// endHandoff stops a leaver whose watch has ended, then starts the nodes
// the configuration names that are not running: one may have waited for
// the leaver's ports.
func (c *cluster) endHandoff(ctx context.Context, e handoffEnd) {
	name := e.ch.spec.Name
	if l := c.leaving[name]; l == nil || l.ch != e.ch {
		return // named again or exited since: the verdict is stale
	}
	c.forget(name)
	if e.late {
		fmt.Fprintf(c.o.Out, "tako-cluster: warning: %s (pid %d) has not handed off after %v: it still held %s; stopping it anyway\n",
			name, e.ch.pid(), c.o.HandoffTimeout, e.reason)
	} else {
		fmt.Fprintf(c.o.Out, "tako-cluster: %s (pid %d) has handed off what it held (%s): stopping\n", name, e.ch.pid(), e.reason)
	}
	c.stop([]*child{e.ch})
	fmt.Fprintf(c.o.Out, "tako-cluster: stopped %s\n", name)
	c.startNamed(ctx, c.cfg)
}

// leaverAt returns the leaver listening where n will, if any.
func (c *cluster) leaverAt(n config.Node) *leaver {
	for _, l := range c.leaving {
		if l.node.HTTPAddr() == n.HTTPAddr() || l.node.PeerAddr() == n.PeerAddr() ||
			l.node.HTTPAddr() == n.PeerAddr() || l.node.PeerAddr() == n.HTTPAddr() {
			return l
		}
	}
	return nil
}

// handoffWatch polls one leaving node. It shares nothing with the cluster.
type handoffWatch struct {
	poll, timeout time.Duration
	node          string   // the node's GET /status URL
	coordinators  []string // the coordinators' GET /status URLs
	client        *http.Client
	token         string // bearer token sent with both ("" none)
}

// run returns once the node's own report says it holds nothing it must
// still hand off, or, while the node gives no report, a coordinator says no
// migration is under way, or the timeout passed (late: reason then says
// what the node still held), or ctx ended. A node that reports is never
// stopped on a coordinator's word: a coordinator restarted, or one whose
// file was edited again after the finish, forgets the nodes that were
// leaving and says none while they still hold records no one else has.
func (w handoffWatch) run(ctx context.Context) (reason string, late bool) {
	deadline := time.Now().Add(w.timeout)
	held := "an unknown number of records (no report yet)"
	for {
		var rep nodestatus.Status
		if err := getJSON(ctx, w.client, w.node, w.token, &rep); err != nil {
			held = "an unknown number of records (no report: " + err.Error() + ")"
			if why, none := w.noMigration(ctx); none {
				return why, false
			}
		} else if why, done := handedOff(rep); done {
			return why, false
		} else {
			held = why
		}
		if time.Now().After(deadline) {
			return held, true
		}
		if sleep(ctx, w.poll); ctx.Err() != nil {
			return "", false
		}
	}
}

// noMigration reports whether a coordinator says no migration is under way,
// and which configuration it says so at.
func (w handoffWatch) noMigration(ctx context.Context) (string, bool) {
	for _, u := range w.coordinators {
		var st coordinator.Status
		if getJSON(ctx, w.client, u, w.token, &st) == nil && st.Migration.State == coordinator.StateNone {
			return "the coordinator at configuration " + st.ConfigVersion + " says no migration is under way", true
		}
	}
	return "", false
}

// handedOff reads a leaving node's report. It is done when the node's
// configuration does not name it and its last anti-entropy pass, under
// that configuration, confirmed every record on its owners and left
// nothing it does not own, and no hint waits for replay (hints live in its
// store: stopping it would strand them). Otherwise it says what the node
// still holds.
func handedOff(rep nodestatus.Status) (string, bool) {
	p := rep.LastPass
	switch {
	case rep.Named:
		return fmt.Sprintf("an unknown number of records (it is still at configuration %s, which names it)", rep.ConfigVersion), false
	case p == nil:
		return "an unknown number of records (no anti-entropy pass yet)", false
	case p.ConfigVersion != rep.ConfigVersion:
		return fmt.Sprintf("%d records it does not own at its last pass, under configuration %s (none yet under %s)",
			p.NotOwned, p.ConfigVersion, rep.ConfigVersion), false
	case p.NotOwned > 0 || !p.InSync || rep.Hints.Pending > 0:
		return fmt.Sprintf("%d records it does not own, %d not confirmed on their owners, %d hints to replay",
			p.NotOwned, p.Unconfirmed, rep.Hints.Pending), false
	}
	return "its pass under configuration " + p.ConfigVersion + " left nothing to hand off", true
}

// getJSON decodes url's 200 answer into v; token, when set, is sent as a
// bearer token.
func getJSON(ctx context.Context, client *http.Client, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", httpproxy.BearerHeader(token))
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

// coordinatorStatusURLs lists cfg's coordinators' GET /status, master first.
func coordinatorStatusURLs(cfg *config.Config) []string {
	var urls []string
	for _, id := range coordinatorIDs(cfg) {
		a := cfg.Coordinators[id]
		urls = append(urls, localURL(httpScheme(cfg), a.Host, a.Port, coordinator.PathStatus))
	}
	return urls
}
