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
	var (
		records     = gaugeFamily("tako_store_records", "Records the store holds, tombstones included.")
		diskUsed    = gaugeFamily("tako_store_disk_used_bytes", "Bytes of the store's files on disk (Pebble's, live and obsolete).")
		free        = gaugeFamily("tako_store_free_bytes", "Free bytes on the store's file system.")
		minFree     = gaugeFamily("tako_store_min_free_bytes", "storage.min_free_bytes: below this much free space writes are refused (507).")
		full        = gaugeFamily("tako_store_disk_full", "1 while writes are refused for lack of free space.")
		walSyncs    = counterFamily("tako_pebble_wal_syncs_total", "WAL fsyncs.")
		walSyncSecs = counterFamily("tako_pebble_wal_sync_seconds_total", "Time spent in WAL fsyncs.")
		walIn       = counterFamily("tako_pebble_wal_bytes_in_total", "Logical bytes written to the WAL.")
		walWritten  = counterFamily("tako_pebble_wal_bytes_written_total", "Physical bytes written to the WAL, framing included.")
		flushes     = counterFamily("tako_pebble_flushes_total", "Memtable flushes.")
		compactions = counterFamily("tako_pebble_compactions_total", "Compactions finished.")
		running     = gaugeFamily("tako_pebble_compactions_running", "Compactions in progress.")
		debt        = gaugeFamily("tako_pebble_compaction_debt_bytes", "Estimated bytes compactions must rewrite to reach a stable shape.")
		memtable    = gaugeFamily("tako_pebble_memtable_bytes", "Bytes allocated by memtables.")
		readAmp     = gaugeFamily("tako_pebble_read_amplification", "Sstables a read may consult.")
		cacheBytes  = gaugeFamily("tako_pebble_block_cache_bytes", "Bytes in the block cache.")
		cacheHits   = counterFamily("tako_pebble_block_cache_hits_total", "Block cache hits.")
		cacheMisses = counterFamily("tako_pebble_block_cache_misses_total", "Block cache misses.")
	)
	r.registerScraped(func(ch chan<- prometheus.Metric) {
		st := stats()
		records.emit(ch, float64(st.Records))
		diskUsed.emit(ch, float64(st.DiskUsedBytes))
		if st.FreeBytes >= 0 {
			free.emit(ch, float64(st.FreeBytes))
		}
		minFree.emit(ch, float64(st.MinFreeBytes))
		full.emit(ch, boolValue(st.DiskFull))
		walSyncs.emit(ch, float64(st.WALSyncs))
		walSyncSecs.emit(ch, st.WALSyncSeconds)
		walIn.emit(ch, float64(st.WALBytesIn))
		walWritten.emit(ch, float64(st.WALBytesWritten))
		flushes.emit(ch, float64(st.Flushes))
		compactions.emit(ch, float64(st.Compactions))
		running.emit(ch, float64(st.CompactionsRunning))
		debt.emit(ch, float64(st.CompactionDebtBytes))
		memtable.emit(ch, float64(st.MemtableBytes))
		readAmp.emit(ch, float64(st.ReadAmp))
		cacheBytes.emit(ch, float64(st.BlockCacheBytes))
		cacheHits.emit(ch, float64(st.BlockCacheHits))
		cacheMisses.emit(ch, float64(st.BlockCacheMisses))
	}, records, diskUsed, free, minFree, full, walSyncs, walSyncSecs, walIn, walWritten, flushes, compactions,
		running, debt, memtable, readAmp, cacheBytes, cacheHits, cacheMisses)
}

// Hints registers the hinted hand-off metrics, read from stats.
func (r *Registry) Hints(stats func() hints.Stats) {
	var (
		stored       = counterFamily("tako_hints_stored_total", "Writes a replica missed, kept as hints.")
		replayed     = counterFamily("tako_hints_replayed_total", "Hints handed off to their replica once it answered again.")
		dropped      = counterFamily("tako_hints_dropped_total", "Hints dropped: over the byte bound, too old, or their node left the configuration.")
		pending      = gaugeFamily("tako_hints_pending", "Hints held, waiting for their replica.")
		pendingBytes = gaugeFamily("tako_hints_pending_bytes", "Bytes of the hints held.")
	)
	r.registerScraped(func(ch chan<- prometheus.Metric) {
		st := stats()
		stored.emit(ch, float64(st.Stored))
		replayed.emit(ch, float64(st.Replayed))
		dropped.emit(ch, float64(st.Dropped))
		pending.emit(ch, float64(st.Pending))
		pendingBytes.emit(ch, float64(st.PendingBytes))
	}, stored, replayed, dropped, pending, pendingBytes)
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
// replica was not confirmed to hold: 0 once in sync).
func (r *Registry) Healing(stats func() Healing) {
	var (
		passes      = counterFamily("tako_healing_passes_total", "Anti-entropy passes finished.")
		pushed      = counterFamily("tako_healing_pushed_records_total", "Records anti-entropy pushed to peers.")
		exchanged   = counterFamily("tako_healing_exchanged_bytes_total", "Bytes anti-entropy exchanged with peers (sums, listings, pushes).")
		inSync      = gaugeFamily("tako_healing_last_pass_in_sync", "1 when the last pass confirmed every record on every replica.")
		unconfirmed = gaugeFamily("tako_healing_last_pass_unconfirmed_records", "Records the last pass could not confirm on every replica.")
		notOwned    = gaugeFamily("tako_healing_last_pass_not_owned_records", "Records held but not owned (not yet handed off) at the last pass.")
		duration    = gaugeFamily("tako_healing_last_pass_duration_seconds", "How long the last pass took.")
		ended       = gaugeFamily("tako_healing_last_pass_end_timestamp_seconds", "When the last pass ended (Unix time).")
	)
	r.registerScraped(func(ch chan<- prometheus.Metric) {
		st := stats()
		passes.emit(ch, float64(st.Passes))
		pushed.emit(ch, float64(st.PushedRecords))
		exchanged.emit(ch, float64(st.ExchangedBytes))
		if p := st.Last; p != nil {
			inSync.emit(ch, boolValue(p.InSync))
			unconfirmed.emit(ch, float64(p.Unconfirmed))
			notOwned.emit(ch, float64(p.NotOwned))
			duration.emit(ch, p.Ended.Sub(p.Began).Seconds())
			ended.emit(ch, float64(p.Ended.UnixMicro())/1e6)
		}
	}, passes, pushed, exchanged, inSync, unconfirmed, notOwned, duration, ended)
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
