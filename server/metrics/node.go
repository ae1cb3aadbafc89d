package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/hints"
	"github.com/tako-kv/tako/server/nodestatus"
)

// The metrics below are read from their owners at each scrape (counters the
// owners keep anyway), so they cost the request path nothing.

// Store registers a node's store metrics, read from stats at each scrape:
// Pebble's own (WAL, flushes, compactions, disk used, block cache) and the
// free space beside min_free_bytes.
func (r *Registry) Store(stats func() kv.Stats) {
	type s = kv.Stats
	registerStats(r, stats,
		gauge("tako_store_records", "Records the store holds, tombstones included.", func(st s) float64 { return float64(st.Records) }),
		gauge("tako_store_disk_used_bytes", "Bytes of the store's files on disk (Pebble's, live and obsolete).", func(st s) float64 { return float64(st.DiskUsedBytes) }),
		gauge("tako_store_free_bytes", "Free bytes on the store's file system.", func(st s) float64 { return float64(st.FreeBytes) }).
			when(func(st s) bool { return st.FreeBytes >= 0 }),
		gauge("tako_store_min_free_bytes", "storage.min_free_bytes: below this much free space writes are refused (507).", func(st s) float64 { return float64(st.MinFreeBytes) }),
		gauge("tako_store_disk_full", "1 while writes are refused for lack of free space.", func(st s) float64 { return boolValue(st.DiskFull) }),
		counter("tako_pebble_wal_syncs_total", "WAL fsyncs.", func(st s) float64 { return float64(st.WALSyncs) }),
		counter("tako_pebble_wal_sync_seconds_total", "Time spent in WAL fsyncs.", func(st s) float64 { return st.WALSyncSeconds }),
		counter("tako_pebble_wal_bytes_in_total", "Logical bytes written to the WAL.", func(st s) float64 { return float64(st.WALBytesIn) }),
		counter("tako_pebble_wal_bytes_written_total", "Physical bytes written to the WAL, framing included.", func(st s) float64 { return float64(st.WALBytesWritten) }),
		counter("tako_pebble_flushes_total", "Memtable flushes.", func(st s) float64 { return float64(st.Flushes) }),
		counter("tako_pebble_compactions_total", "Compactions finished.", func(st s) float64 { return float64(st.Compactions) }),
		gauge("tako_pebble_compactions_running", "Compactions in progress.", func(st s) float64 { return float64(st.CompactionsRunning) }),
		gauge("tako_pebble_compaction_debt_bytes", "Estimated bytes compactions must rewrite to reach a stable shape.", func(st s) float64 { return float64(st.CompactionDebtBytes) }),
		gauge("tako_pebble_memtable_bytes", "Bytes allocated by memtables.", func(st s) float64 { return float64(st.MemtableBytes) }),
		gauge("tako_pebble_read_amplification", "Sstables a read may consult.", func(st s) float64 { return float64(st.ReadAmp) }),
		gauge("tako_pebble_block_cache_bytes", "Bytes in the block cache.", func(st s) float64 { return float64(st.BlockCacheBytes) }),
		counter("tako_pebble_block_cache_hits_total", "Block cache hits.", func(st s) float64 { return float64(st.BlockCacheHits) }),
		counter("tako_pebble_block_cache_misses_total", "Block cache misses.", func(st s) float64 { return float64(st.BlockCacheMisses) }),
	)
}

// Hints registers the hinted hand-off metrics, read from stats.
func (r *Registry) Hints(stats func() hints.Stats) {
	type s = hints.Stats
	registerStats(r, stats,
		counter("tako_hints_stored_total", "Writes a replica missed, kept as hints.", func(st s) float64 { return float64(st.Stored) }),
		counter("tako_hints_replayed_total", "Hints handed off to their replica once it answered again.", func(st s) float64 { return float64(st.Replayed) }),
		counter("tako_hints_dropped_total", "Hints dropped: over the byte bound, too old, or their node left the configuration.", func(st s) float64 { return float64(st.Dropped) }),
		gauge("tako_hints_pending", "Hints held, waiting for their replica.", func(st s) float64 { return float64(st.Pending) }),
		gauge("tako_hints_pending_bytes", "Bytes of the hints held.", func(st s) float64 { return float64(st.PendingBytes) }),
	)
}

// Healing is a node's anti-entropy over its life and its last pass.
type Healing struct {
	Passes         int64 // passes finished
	PushedRecords  int64 // records pushed to peers
	ExchangedBytes int64 // bytes of sums, listings and pushes moved
	Last           *nodestatus.Pass
}

// Healing registers the anti-entropy metrics, read from stats: totals over
// the node's life, and its progress as of the last pass (records some
// replica was not confirmed to hold: 0 once in sync), absent before the
// first pass.
func (r *Registry) Healing(stats func() Healing) {
	type s = Healing
	passed := func(st s) bool { return st.Last != nil }
	registerStats(r, stats,
		counter("tako_healing_passes_total", "Anti-entropy passes finished.", func(st s) float64 { return float64(st.Passes) }),
		counter("tako_healing_pushed_records_total", "Records anti-entropy pushed to peers.", func(st s) float64 { return float64(st.PushedRecords) }),
		counter("tako_healing_exchanged_bytes_total", "Bytes anti-entropy exchanged with peers (sums, listings, pushes).", func(st s) float64 { return float64(st.ExchangedBytes) }),
		gauge("tako_healing_last_pass_in_sync", "1 when the last pass confirmed every record on every replica.", func(st s) float64 { return boolValue(st.Last.InSync) }).when(passed),
		gauge("tako_healing_last_pass_unconfirmed_records", "Records the last pass could not confirm on every replica.", func(st s) float64 { return float64(st.Last.Unconfirmed) }).when(passed),
		gauge("tako_healing_last_pass_not_owned_records", "Records held but not owned (not yet handed off) at the last pass.", func(st s) float64 { return float64(st.Last.NotOwned) }).when(passed),
		gauge("tako_healing_last_pass_duration_seconds", "How long the last pass took.", func(st s) float64 { return st.Last.Ended.Sub(st.Last.Began).Seconds() }).when(passed),
		gauge("tako_healing_last_pass_end_timestamp_seconds", "When the last pass ended (Unix time).", func(st s) float64 { return float64(st.Last.Ended.UnixMicro()) / 1e6 }).when(passed),
	)
}

// PeerConn is the connections this process holds to one peer.
type PeerConn struct {
	Node  string
	Conns int
}

// Peers registers the peer connection metrics: the connections this
// process's clients hold open to each peer (clients), and, on a node, the
// connections its peer server has accepted (served; nil in a proxy).
func (r *Registry) Peers(clients func() []PeerConn, served func() int) {
	var (
		out = gaugeFamily("tako_peer_connections", "Peer protocol connections this process holds open to a peer node.", "peer")
		in  = gaugeFamily("tako_peer_server_connections", "Peer protocol connections this node's peer server holds open.")
	)
	r.registerScraped(func(ch chan<- prometheus.Metric) {
		for _, p := range clients() {
			out.emit(ch, float64(p.Conns), p.Node)
		}
		if served != nil {
			in.emit(ch, float64(served()))
		}
	}, out, in)
}

// Config registers tako_config_info{version}: 1, labelled with the version
// of the configuration in use.
func (r *Registry) Config(version func() string) {
	info := gaugeFamily("tako_config_info", "The configuration in use: its version is the label.", "version")
	r.registerScraped(func(ch chan<- prometheus.Metric) { info.emit(ch, 1, version()) }, info)
}
