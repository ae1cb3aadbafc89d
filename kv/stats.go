package kv

import (
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
)

// Stats is the store's account of itself for monitoring: Pebble's own
// metrics (WAL, flushes, compactions, disk, block cache) and the free space
// of its file system beside Options.MinFreeBytes. Counters count from Open.
type Stats struct {
	Records int64 // records held, tombstones included (the segment counts)

	DiskUsedBytes   uint64  // Pebble's files on disk, live and obsolete
	WALSyncs        uint64  // WAL fsyncs
	WALSyncSeconds  float64 // time spent in them
	WALBytesIn      uint64  // logical bytes written to the WAL
	WALBytesWritten uint64  // physical bytes, with framing and padding
	Flushes         int64   // memtable flushes
	Compactions     int64   // compactions finished
	// CompactionsRunning and CompactionDebtBytes (bytes compactions must
	// rewrite to reach a stable shape) say whether compaction keeps up.
	CompactionsRunning  int64
	CompactionDebtBytes uint64
	MemtableBytes       uint64
	ReadAmp             int // sstables a read may consult
	BlockCacheBytes     int64
	BlockCacheHits      int64
	BlockCacheMisses    int64

	// FreeBytes is free space on the store's file system, read now (-1 when
	// statfs fails); MinFreeBytes is the floor below which writes are
	// refused (0: none); DiskFull says writes are refused now.
	FreeBytes    int64
	MinFreeBytes int64
	DiskFull     bool
}

// Stats returns the store's figures now. It reads Pebble's metrics, which
// takes Pebble's locks briefly: call it at a scrape, not per request.
func (s *Store) Stats() Stats {
	m := s.db.Metrics()
	st := Stats{
		Records:             s.Records(),
		DiskUsedBytes:       m.DiskSpaceUsage(),
		WALBytesIn:          m.WAL.BytesIn,
		WALBytesWritten:     m.WAL.BytesWritten,
		Flushes:             m.Flush.Count,
		Compactions:         m.Compact.Count,
		CompactionsRunning:  m.Compact.NumInProgress,
		CompactionDebtBytes: m.Compact.EstimatedDebt,
		MemtableBytes:       m.MemTable.Size,
		ReadAmp:             m.ReadAmp(),
		BlockCacheBytes:     m.BlockCache.Size,
		BlockCacheHits:      m.BlockCache.Hits,
		BlockCacheMisses:    m.BlockCache.Misses,
		FreeBytes:           -1,
		MinFreeBytes:        s.space.min,
		DiskFull:            s.space.low.Load(),
	}
	if h := m.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if h.Write(&d) == nil && d.Histogram != nil {
			// Pebble observes fsync latency in nanoseconds.
			st.WALSyncs, st.WALSyncSeconds = d.Histogram.GetSampleCount(), d.Histogram.GetSampleSum()/1e9
		}
	}
	var fs unix.Statfs_t
	if unix.Statfs(s.space.dir, &fs) == nil {
		st.FreeBytes = int64(fs.Bavail) * int64(fs.Bsize)
	}
	return st
}
