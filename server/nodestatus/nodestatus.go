// Package nodestatus is the JSON a node serves at GET /status on its HTTP
// port: its own account of its configuration, its last anti-entropy pass
// and its hints. The coordinator derives a migration's state and progress
// from these reports (never from elapsed time); operators and tako-admin
// read them. It holds types only, so that the coordinator reads them
// without linking the node.
package nodestatus

import "time"

// Path is where a node serves its Status.
const Path = "/status"

// Status is one node's report.
type Status struct {
	ID            string `json:"id"`
	ConfigVersion string `json:"config_version"`
	Named         bool   `json:"named"` // the configuration in use names this node
	// LastPass is the last finished anti-entropy pass; nil before the first.
	LastPass    *Pass `json:"last_pass"`
	PushedTotal int64 `json:"pushed_total"` // records pushed to peers since start
	Hints       Hints `json:"hints"`
}

// Pass is what a node says of one finished anti-entropy pass.
type Pass struct {
	ConfigVersion string    `json:"config_version"` // the configuration it ran under
	Began         time.Time `json:"began"`
	Ended         time.Time `json:"ended"`
	// InSync: every comparison and push succeeded and every replica of
	// every record this node holds was confirmed to hold it (or newer).
	InSync bool `json:"in_sync"`
	// Unconfirmed counts the records some replica was not confirmed to
	// hold; NotOwned those this node holds but does not own (not yet
	// dropped).
	Unconfirmed int    `json:"unconfirmed"`
	NotOwned    int    `json:"not_owned"`
	Pushed      int    `json:"pushed"`
	Pulled      int    `json:"pulled"`
	Dropped     int    `json:"dropped"`
	Purged      int    `json:"purged_tombstones"`
	Exchanged   int64  `json:"exchanged_bytes"`
	Err         string `json:"error,omitempty"`
}

// Hints counts the node's hinted hand-off (server/hints.Stats).
type Hints struct {
	Stored       int64 `json:"stored"`
	Replayed     int64 `json:"replayed"`
	Dropped      int64 `json:"dropped"`
	Pending      int   `json:"pending"`
	PendingBytes int64 `json:"pending_bytes"`
}
