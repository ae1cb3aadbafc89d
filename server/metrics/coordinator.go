package metrics

import "github.com/prometheus/client_golang/prometheus"

// ClusterView is the coordinator's view for its metrics: the configuration it
// serves, its edits, the migration, and the nodes up or down.
type ClusterView struct {
	ConfigVersion string
	// Changes counts configurations served since start, beyond the first;
	// Refused the edits refused (invalid, or a finish held back).
	Changes, Refused int64
	Migration        string   // none, copying, ready or dropping
	Copied           int64    // records copied since the configuration was first seen
	Remaining        int64    // records not yet confirmed on every owner
	ETASeconds       *float64 // nil without a copy rate yet
	FinishPending    bool     // a finishing configuration waits for ready
	Nodes            []NodeUp
}

// NodeUp is one node as the coordinator saw it.
type NodeUp struct {
	ID, Bucket string
	Up         bool
}

// MigrationStates are the values of tako_migration_state's state label.
var MigrationStates = []string{"none", "copying", "ready", "dropping"}

// Coordinator registers the coordinator's metrics, read from view at each
// scrape (which asks every node for its report).
func (r *Registry) Coordinator(view func() ClusterView) {
	var (
		info      = gaugeFamily("tako_config_info", "The configuration served: its version is the label.", "version")
		changes   = counterFamily("tako_coordinator_config_changes_total", "New configurations served since start.")
		refused   = counterFamily("tako_coordinator_config_refused_total", "Configuration edits refused (invalid, or a migration finish held back until ready).")
		state     = gaugeFamily("tako_migration_state", "1 for the migration's current state (none, copying, ready, dropping), 0 for the others.", "state")
		copied    = gaugeFamily("tako_migration_copied_records", "Records the nodes pushed since the coordinator first saw this configuration.")
		remaining = gaugeFamily("tako_migration_remaining_records", "Records the nodes' last passes could not confirm on every owner.")
		eta       = gaugeFamily("tako_migration_eta_seconds", "Estimated time left to copy, from the copy rate.")
		pending   = gaugeFamily("tako_migration_finish_pending", "1 while a configuration finishing the migration waits for it to be ready.")
		up        = gaugeFamily("tako_node_up", "1 when the node answered the coordinator's last look, 0 when not.", "node", "bucket")
	)
	r.registerScraped(func(ch chan<- prometheus.Metric) {
		v := view()
		info.emit(ch, 1, v.ConfigVersion)
		changes.emit(ch, float64(v.Changes))
		refused.emit(ch, float64(v.Refused))
		for _, s := range MigrationStates {
			state.emit(ch, boolValue(s == v.Migration), s)
		}
		copied.emit(ch, float64(v.Copied))
		remaining.emit(ch, float64(v.Remaining))
		if v.ETASeconds != nil {
			eta.emit(ch, *v.ETASeconds)
		}
		pending.emit(ch, boolValue(v.FinishPending))
		for _, n := range v.Nodes {
			up.emit(ch, boolValue(n.Up), n.ID, n.Bucket)
		}
	}, info, changes, refused, state, copied, remaining, eta, pending, up)
}
