package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// Op kinds.
const (
	OpWrite  = "write"
	OpDelete = "delete"
	OpRead   = "read"
)

// Op is one client operation as the client saw it.
type Op struct {
	Client int       `json:"client"`
	Kind   string    `json:"op"`
	Key    string    `json:"key"`
	Value  string    `json:"value,omitempty"` // write: the value sent; read: the value returned
	Entry  string    `json:"entry"`           // host:port the request went to
	Acks   string    `json:"acks,omitempty"`  // X-Write-Acks sent, "" for the deployment's
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Status int       `json:"status,omitempty"` // 0 when no reply came
	Err    string    `json:"err,omitempty"`    // "timeout" or the transport error
	// TS is the reply's X-Timestamp (0 when absent): for a write or delete the record now
	// current, for a read the one returned (the tombstone's for a deleted key).
	TS         int64  `json:"ts,omitempty"`
	Applied    string `json:"applied,omitempty"`     // X-Applied ("no": the write lost to TS)
	ReadQuorum string `json:"read_quorum,omitempty"` // X-Read-Quorum ("no": served without one)
}

// Outcome classes of operations, as the verdict counts them.
const (
	OutcomeOK      = "ok" // 200, or 404 for a read
	Outcome503     = "503"
	Outcome507     = "507"
	OutcomeTimeout = "timeout"
	OutcomeOther   = "other"
)

// Outcome classifies the operation.
func (o *Op) Outcome() string {
	switch {
	case o.Status == 200 || (o.Status == 404 && o.Kind == OpRead):
		return OutcomeOK
	case o.Status == 503:
		return Outcome503
	case o.Status == 507:
		return Outcome507
	case o.Err == errTimeout:
		return OutcomeTimeout
	}
	return OutcomeOther
}

// Acked reports a write or delete the cluster acknowledged.
func (o *Op) Acked() bool { return o.Kind != OpRead && o.Status == 200 }

// MayHaveHappened reports a write or delete that may have been stored: anything sent that was
// not refused as a bad request (a 5xx or a timeout may have reached some replicas).
func (o *Op) MayHaveHappened() bool {
	return o.Kind != OpRead && !(o.Status >= 400 && o.Status < 500)
}

// History is every operation of a run, in completion order. Safe for concurrent use.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// Since returns a copy of the operations from index i on, and the count so far.
func (h *History) Since(i int) ([]Op, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops[min(i, len(h.ops)):]...), len(h.ops)
}

// WriteFile writes the history as JSON lines, one Op each.
func (h *History) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chaos: history: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, op := range h.Ops() {
		if err := enc.Encode(op); err != nil {
			f.Close()
			return fmt.Errorf("chaos: history: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("chaos: history: %w", err)
	}
	return f.Close()
}
