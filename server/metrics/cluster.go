package metrics

import "github.com/prometheus/client_golang/prometheus"

// Cluster is what a node or proxy counts as it coordinates requests across
// replicas:
//
//	tako_replica_errors_total{peer,kind}         calls to a replica that failed
//	tako_write_acks_total{write_acks,outcome}    coordinated writes by level and outcome
//	tako_read_repairs_total                      read repairs sent to stale replicas
//	tako_read_repair_failures_total              those the replica did not take
//	tako_reads_without_quorum_total              reads served without a read quorum
//
// Counting a write or a repair allocates nothing; counting a replica error
// looks up its series (errors are not the hot path).
type Cluster struct {
	replicaErrors *prometheus.CounterVec
	writes        [len(writeLevels)][len(writeOutcomes)]prometheus.Counter
	repairs       prometheus.Counter
	repairFails   prometheus.Counter
	weakReads     prometheus.Counter
}

// Replica error kinds (the kind label).
const (
	KindTimeout     = "timeout"         // no answer in time
	KindUnreachable = "unreachable"     // not connected: dial refused, backing off, handshake failed
	KindConnLost    = "connection_lost" // the connection died with the call in flight
	KindErrorReply  = "error_reply"     // the replica answered with an error (storage, disk full, overloaded)
	KindOther       = "other"
)

var (
	writeLevels = [...]string{"one", "quorum", "all"}
	// WriteApplied: acknowledged and the write won; WriteSuperseded:
	// acknowledged, but a newer record won (X-Applied: no);
	// WriteUnavailable: too few acknowledgements (503).
	writeOutcomes = [...]string{WriteApplied, WriteSuperseded, WriteUnavailable}
)

// Write outcomes (the outcome label).
const (
	WriteApplied     = "applied"
	WriteSuperseded  = "superseded"
	WriteUnavailable = "unavailable"
)

// NewCluster returns the cluster metrics, registered with r (nil: none).
func NewCluster(r *Registry) *Cluster {
	m := &Cluster{
		replicaErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tako_replica_errors_total",
			Help: "Calls to a replica that failed, by peer node and kind (timeout, unreachable, connection_lost, error_reply, other).",
		}, []string{"peer", "kind"}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tako_read_repairs_total",
			Help: "Read repairs sent: the newest record pushed to a replica a read found older or missing it.",
		}),
		repairFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tako_read_repair_failures_total",
			Help: "Read repairs the stale replica did not take.",
		}),
		weakReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tako_reads_without_quorum_total",
			Help: "Reads served without a read quorum (X-Read-Quorum: no, or 503 under strict_reads).",
		}),
	}
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tako_write_acks_total",
		Help: "Writes coordinated, by the write_acks level they waited for and their outcome (applied, superseded, unavailable).",
	}, []string{"write_acks", "outcome"})
	for l, level := range writeLevels {
		for o, outcome := range writeOutcomes {
			m.writes[l][o] = writes.WithLabelValues(level, outcome)
		}
	}
	r.register(m.replicaErrors, writes, m.repairs, m.repairFails, m.weakReads)
	return m
}

// ReplicaError counts a failed call to peer.
func (m *Cluster) ReplicaError(peer, kind string) { m.replicaErrors.WithLabelValues(peer, kind).Inc() }

// Write counts a coordinated write at level ("one", "quorum" or "all")
// with its outcome (WriteApplied, ...).
func (m *Cluster) Write(level, outcome string) {
	l, o := index(writeLevels[:], level), index(writeOutcomes[:], outcome)
	if l >= 0 && o >= 0 {
		m.writes[l][o].Inc()
	}
}

// ReadRepair counts a repair sent; ReadRepairFailed one not taken.
func (m *Cluster) ReadRepair()       { m.repairs.Inc() }
func (m *Cluster) ReadRepairFailed() { m.repairFails.Inc() }

// WeakRead counts a read served without a read quorum.
func (m *Cluster) WeakRead() { m.weakReads.Inc() }

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
