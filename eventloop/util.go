package eventloop

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2/pkg/pool/byteslice"
)

// getBuf returns a pooled buffer of length 0 and capacity at least n.
func getBuf(n int) []byte { return byteslice.Get(max(n, 1))[:0] }

// putBuf returns b to the pool. b must not be used afterwards.
func putBuf(b []byte) {
	if cap(b) > 0 {
		byteslice.Put(b)
	}
}

// rateLimiter lets one message through per interval and counts the ones it holds back, so
// that a flood of bad connections cannot flood the log.
type rateLimiter struct {
	mu         sync.Mutex
	interval   time.Duration
	next       time.Time
	suppressed int
}

// allow reports whether to log now, and how many messages were suppressed since the last one.
func (r *rateLimiter) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Before(r.next) {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.next, r.suppressed = now.Add(r.interval), 0
	return true, n
}

// log emits msg at warn level if the limiter allows it.
func (r *rateLimiter) log(l *slog.Logger, msg string, args ...any) {
	ok, suppressed := r.allow()
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.Warn(msg, args...)
}

// gnetLogger routes gnet's internal logging to slog. gnet's informational chatter goes to
// debug level.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.logf(slog.LevelDebug, format, args) }
func (g gnetLogger) Infof(format string, args ...any)  { g.logf(slog.LevelDebug, format, args) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.logf(slog.LevelWarn, format, args) }
func (g gnetLogger) Errorf(format string, args ...any) { g.logf(slog.LevelError, format, args) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.logf(slog.LevelError, format, args) }

func (g gnetLogger) logf(level slog.Level, format string, args []any) {
	if g.l.Enabled(context.Background(), level) {
		g.l.Log(context.Background(), level, "gnet: "+fmt.Sprintf(format, args...))
	}
}
