package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// MeasureDisk is the disk's ceiling for durable ingest: it appends blocks of
// size bytes to a new file in dir, each followed by fdatasync, for d, and
// reports it like a store run (target "disk", one connection). The file is
// removed afterwards.
func MeasureDisk(ctx context.Context, dir string, size int, d time.Duration) (*Result, error) {
	f, err := os.CreateTemp(dir, "tako-bench-disk-")
	if err != nil {
		return nil, fmt.Errorf("bench: disk: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, size)
	for i := range block {
		block[i] = byte(i*7 + i>>8)
	}
	if d <= 0 {
		d = 5 * time.Second
	}
	var h Histogram
	var bytes uint64
	began := time.Now()
	for time.Since(began) < d && ctx.Err() == nil {
		t := time.Now()
		if _, err := f.Write(block); err != nil {
			return nil, fmt.Errorf("bench: disk write %s: %w", filepath.Base(f.Name()), err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, fmt.Errorf("bench: disk fdatasync: %w", err)
		}
		h.Record(time.Since(t).Nanoseconds())
		bytes += uint64(size)
	}
	elapsed := time.Since(began).Seconds()
	r := &Result{
		Target: "disk", Proto: "file", Addr: dir, Workload: "ingest", ValueSize: size, Conns: 1,
		ElapsedSecs: elapsed, Ops: h.Count(), Writes: h.Count(), Bytes: bytes,
		Latency: Summarize(&h), WriteLatency: Summarize(&h), Errors: map[string]uint64{},
	}
	if elapsed > 0 {
		r.OpsPerSec = float64(r.Ops) / elapsed
		r.MBPerSec = float64(bytes) / elapsed / 1e6
	}
	return r, nil
}
