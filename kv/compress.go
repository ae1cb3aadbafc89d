package kv

import (
	"github.com/klauspost/compress"
	"github.com/klauspost/compress/s2"
)

const (
	// compressMin is the smallest value worth compressing: below it the 9-byte
	// header dominates and s2's framing eats most of any gain.
	compressMin = 512
	// estimateSample is how much of a value the compressibility estimate reads.
	estimateSample = 4 << 10
)

// compressInto s2-compresses v into dst (reusing its capacity) when that
// saves at least an eighth of the bytes, and returns the compressed form; it
// returns nil when v is stored as is. A cheap entropy estimate on a sample
// skips already-compressed data (media, archives) without running s2 over it.
func compressInto(dst, v []byte) []byte {
	if len(v) < compressMin {
		return nil
	}
	sample := v
	if len(sample) > estimateSample {
		sample = sample[:estimateSample]
	}
	if compress.Estimate(sample) < 0.1 {
		return nil
	}
	n := s2.MaxEncodedLen(len(v))
	if n < 0 {
		return nil
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	out := s2.Encode(dst[:n], v)
	if len(out) > len(v)-len(v)/8 {
		return nil
	}
	return out
}

// decompressInto appends the decoded payload to dst.
func decompressInto(dst, payload []byte) ([]byte, error) {
	n, err := s2.DecodedLen(payload)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = grow(dst, n)
	out, err := s2.Decode(dst[start:start+n], payload)
	if err != nil {
		return dst[:start], err
	}
	return dst[:start+len(out)], nil
}

// grow extends dst by n bytes, reallocating only when capacity is short.
func grow(dst []byte, n int) []byte {
	if need := len(dst) + n; need > cap(dst) {
		nd := make([]byte, len(dst), need)
		copy(nd, dst)
		dst = nd
	}
	return dst[:len(dst)+n]
}
