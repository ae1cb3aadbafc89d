package bench

import (
	"math"
	"math/bits"
)

// Histogram is a log-linear (HDR-style) histogram of non-negative int64 values, in practice
// latencies in nanoseconds. Values below 256 are counted exactly; above, every power-of-two range
// [2^e, 2^(e+1)) is split into 128 equal sub-buckets, so a bucket is at most 1/128 of its lower
// bound wide and the reported midpoint is within 1/256 (0.4%) of any value in it.
//
// The zero value is ready to use. Record does not allocate. A Histogram is not safe for
// concurrent use: give each goroutine its own and Merge them afterwards.
type Histogram struct {
	counts [histBuckets]uint64
	total  uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histSubBits = 7                                              // 128 sub-buckets per octave
	histSub     = 1 << histSubBits                               // 128
	histMaxExp  = 40                                             // values are clamped below 2^40 (≈18 min in ns)
	histMax     = int64(1)<<histMaxExp - 1                       // largest trackable value
	histBuckets = (histMaxExp-1-histSubBits)*histSub + 2*histSub // bucketOf(histMax) + 1
)

// bucketOf maps v (0 ≤ v ≤ histMax) to its bucket index.
func bucketOf(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - histSubBits // ≥ 1
	return shift*histSub + int(v>>shift)
}

// bucketBounds returns the lowest value of bucket i and its width.
func bucketBounds(i int) (lo, width int64) {
	if i < 2*histSub {
		return int64(i), 1
	}
	shift := i/histSub - 1
	m := int64(i - shift*histSub)
	return m << shift, int64(1) << shift
}

// Record adds one value. Negative values count as 0, values above 2^40-1 as 2^40-1.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	} else if v > histMax {
		v = histMax
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Merge adds all of o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range &o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are exact; both are 0 for an empty histogram.
func (h *Histogram) Min() int64 { return h.min }

// Max is the exact largest recorded value.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q in [0, 1]: the midpoint of the bucket holding the
// ceil(q·n)-th smallest value, clamped to [Min, Max]. 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range &h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketBounds(i)
			return min(max(lo+(w-1)/2, h.min), h.max)
		}
	}
	return h.max
}
