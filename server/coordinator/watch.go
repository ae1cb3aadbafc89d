package coordinator

import (
	"context"
	"crypto/sha256"
	"os"
	"time"

	"github.com/tako-kv/tako/server/config"
)

// Watch re-reads the file every poll period until ctx ends; see the package
// doc for what it does with an edit. Run at most one Watch per Coordinator.
func (c *Coordinator) Watch(ctx context.Context) {
	t := time.NewTicker(c.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.check()
			c.retryPending()
		}
	}
}

// check is one poll: read, wait for the content to settle, then apply or
// refuse it exactly once.
func (c *Coordinator) check() {
	data, err := os.ReadFile(c.file)
	if err != nil {
		if msg := err.Error(); msg != c.readErr {
			c.readErr = msg
			c.log.Warn("configuration file unreadable; still serving the last good version",
				"err", err, "version", c.Config().Version)
		}
		c.prevSum = [32]byte{}
		return
	}
	c.readErr = ""
	sum := sha256.Sum256(data)
	settled := sum == c.prevSum
	c.prevSum = sum
	if !settled || sum == c.actedSum {
		return
	}
	c.actedSum = sum
	c.apply(data)
}

// apply parses settled new content and serves it when it is valid.
func (c *Coordinator) apply(data []byte) {
	old := c.Config()
	cfg, err := config.Parse(data)
	if err != nil {
		c.refused.Add(1)
		c.log.Error("configuration edit refused; still serving the last good version",
			"file", c.file, "err", err, "version", old.Version)
		return
	}
	// A newer edit replaces a held-back finish, and so does going back to
	// the configuration served: the file no longer asks for the finish.
	c.pending.Store(nil)
	if cfg.Version == old.Version {
		c.log.Info("configuration file rewritten without a change", "version", old.Version)
		return
	}
	if finishing(old, cfg) {
		if cfg.Active != old.Target {
			c.pending.Store(cfg)
			c.refused.Add(1)
			c.log.Error("a migration is under way: making active a deployment it does not copy into is refused; finish it first, or POST "+PathForceFinish,
				"active", old.Active, "target", old.Target, "asked", cfg.Active, "version", old.Version)
			return
		}
		if st := c.status(context.Background(), old); st.Migration.State != StateReady {
			c.pending.Store(cfg)
			c.refused.Add(1)
			c.log.Error("finishing the migration refused: it is not ready; the finish applies by itself once it is, or POST "+PathForceFinish,
				"state", st.Migration.State, "remaining", st.Migration.Remaining, "waiting", st.Migration.Waiting, "version", old.Version)
			return
		}
	}
	if err := c.serve(cfg); err != nil {
		c.refused.Add(1)
		c.log.Error("configuration edit refused", "err", err, "version", old.Version)
	}
}

// serve publishes cfg, remembering the nodes of the configuration it
// replaces while they may hold keys to hand off.
func (c *Coordinator) serve(cfg *config.Config) error {
	old := c.Config()
	c.loadTokens(cfg, "configuration "+cfg.Version) // before it is served: it may name new tokens
	if err := c.publish(cfg); err != nil {
		return err
	}
	c.track.mu.Lock()
	c.track.previous = old.Nodes()
	c.track.mu.Unlock()
	c.changes.Add(1)
	c.log.Info("serving new configuration", "version", cfg.Version, "previous", old.Version)
	if self, ok := cfg.Coordinators[c.id]; !ok {
		c.log.Warn("the new configuration does not list this coordinator; serving it anyway", "id", c.id)
	} else if self != old.Coordinators[c.id] {
		c.log.Warn("this coordinator's address changed in the configuration; restart it to move",
			"id", c.id, "listening", c.listen, "configured", self.String())
	}
	return nil
}

// retryPending applies a held-back finishing configuration once the
// migration is ready.
func (c *Coordinator) retryPending() {
	p := c.pending.Load()
	if p == nil {
		return
	}
	cur := c.Config()
	if p.Active != cur.Target {
		return // only POST force-finish serves it (apply)
	}
	if st := c.status(context.Background(), cur); st.Migration.State == StateReady && c.pending.CompareAndSwap(p, nil) {
		c.log.Info("the migration is ready: finishing it as the configuration file asks", "version", p.Version)
		if err := c.serve(p); err != nil {
			c.log.Error("finish", "err", err)
		}
	}
}
