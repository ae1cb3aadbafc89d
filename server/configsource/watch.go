package configsource

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/tako-kv/tako/server/config"
)

// Watch calls onChange with every valid configuration whose Version differs
// from the current one, until ctx ends. See the package doc. Run one Watch
// per Source.
func (s *Source) Watch(ctx context.Context, onChange func(*config.Config)) {
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	defer s.client.CloseIdleConnections()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var cfg *config.Config
		if s.o.File != "" {
			cfg = s.pollFile()
		} else {
			cfg = s.pollCoordinators(ctx)
		}
		if cfg == nil || cfg.Version == s.Current().Version {
			continue
		}
		old := s.Current().Version
		s.cur.Store(cfg)
		s.lastBad = ""
		s.log.Info("configuration updated", "version", cfg.Version, "previous", old)
		onChange(cfg)
	}
}

// readErrKey prefixes lastBad for a file that could not be read.
const readErrKey = "read error: "

// pollFile returns the file's configuration when its content changed and
// settled and it is valid; nil otherwise.
func (s *Source) pollFile() *config.Config {
	data, err := os.ReadFile(s.o.File)
	if err != nil {
		s.logBad(readErrKey+err.Error(), "configuration file unreadable; keeping the current configuration", err)
		s.prevSum = [32]byte{}
		return nil
	}
	if strings.HasPrefix(s.lastBad, readErrKey) {
		s.lastBad = ""
	}
	sum := sha256.Sum256(data)
	settled := sum == s.prevSum
	s.prevSum = sum
	if !settled || sum == s.actedSum {
		return nil
	}
	s.actedSum = sum
	cfg, err := config.Parse(data)
	if err != nil {
		s.logBad(string(sum[:]), "configuration edit refused; keeping the current configuration", err)
		return nil
	}
	return cfg
}

// pollCoordinators asks the preferred coordinator, then the others, and
// returns a configuration that differs from the current one, or nil.
func (s *Source) pollCoordinators(ctx context.Context) *config.Config {
	cur := s.Current().Version
	n := len(s.o.Coordinators)
	var failures []string
	for k := range n {
		i := (s.preferred + k) % n
		addr := s.o.Coordinators[i]
		cfg, notModified, err := s.fetch(ctx, addr, cur)
		if errors.Is(err, errBadDocument) {
			s.logBad(addr+err.Error(), "coordinator served a broken configuration; ignored", err)
		}
		if err != nil {
			failures = append(failures, err.Error())
			continue
		}
		if s.unreachable {
			s.unreachable = false
			s.log.Info("coordinator reachable again", "coordinator", addr)
		}
		s.preferred = i
		if notModified || cfg.Version == cur {
			return nil
		}
		s.writeCache(cfg)
		return cfg
	}
	if !s.unreachable && ctx.Err() == nil {
		s.unreachable = true
		s.log.Warn("no coordinator answered; keeping the current configuration",
			"version", cur, "errors", strings.Join(failures, "; "))
	}
	return nil
}

// logBad logs a refused document once, however many polls see it again.
func (s *Source) logBad(key, msg string, err error) {
	if key == s.lastBad {
		return
	}
	s.lastBad = key
	s.log.Error(msg, "err", err, "version", s.Current().Version)
}
