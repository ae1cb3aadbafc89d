package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistogramBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(v int64) {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		lo, w := bucketBounds(i)
		if v < lo || v >= lo+w {
			t.Fatalf("value %d not in bucket %d [%d, %d)", v, i, lo, lo+w)
		}
		if lo > 0 && float64(w)/float64(lo) > 1.0/128 && w > 1 {
			t.Fatalf("bucket %d too wide: %d at %d", i, w, lo)
		}
	}
	for v := int64(0); v < 5000; v++ {
		check(v)
	}
	for range 100000 {
		check(r.Int64N(histMax + 1))
	}
	check(histMax)
	if bucketOf(histMax) != histBuckets-1 {
		t.Fatalf("last bucket %d, want %d", bucketOf(histMax), histBuckets-1)
	}
	for i := 1; i < histBuckets; i++ { // contiguous, increasing
		lo, _ := bucketBounds(i)
		plo, pw := bucketBounds(i - 1)
		if plo+pw != lo {
			t.Fatalf("gap between buckets %d and %d", i-1, i)
		}
	}
}

// exactQuantile is the ceil(q·n)-th smallest of sorted.
func exactQuantile(sorted []int64, q float64) int64 {
	return sorted[max(int(math.Ceil(q*float64(len(sorted))))-1, 0)]
}

func TestHistogramQuantilesWithinOnePercent(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dists := map[string]func() int64{
		"uniform 1..1e6":   func() int64 { return 1 + r.Int64N(1e6) },
		"exponential 50µs": func() int64 { return int64(r.ExpFloat64() * 50e3) },
		"lognormal":        func() int64 { return int64(math.Exp(r.NormFloat64()*2 + 12)) },
		"small ints":       func() int64 { return r.Int64N(300) },
	}
	for name, draw := range dists {
		var h Histogram
		vals := make([]int64, 200000)
		for i := range vals {
			vals[i] = draw()
			h.Record(vals[i])
		}
		slices.Sort(vals)
		for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999} {
			got, want := h.Quantile(q), exactQuantile(vals, q)
			if math.Abs(float64(got-want)) > 0.01*float64(want)+0.5 {
				t.Errorf("%s: q%.4f = %d, exact %d (error > 1%%)", name, q, got, want)
			}
		}
		if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
			t.Errorf("%s: min/max/count %d/%d/%d, want %d/%d/%d", name, h.Min(), h.Max(), h.Count(), vals[0], vals[len(vals)-1], len(vals))
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var whole Histogram
	parts := make([]Histogram, 4)
	for i := range 100000 {
		v := int64(r.ExpFloat64() * 1e6)
		whole.Record(v)
		parts[i%4].Record(v)
	}
	var merged Histogram
	merged.Merge(&Histogram{}) // merging an empty one is a no-op
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if merged.counts != whole.counts || merged.Count() != whole.Count() || merged.Min() != whole.Min() || merged.Max() != whole.Max() {
		t.Fatal("merged histogram differs from the one that saw every value")
	}
	if math.Abs(merged.Mean()-whole.Mean()) > 1e-6*whole.Mean() {
		t.Fatalf("mean %v vs %v", merged.Mean(), whole.Mean())
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-5)
	h.Record(math.MaxInt64)
	if h.Min() != 0 || h.Max() != histMax {
		t.Fatalf("clamping: min %d max %d", h.Min(), h.Max())
	}
	if h.Quantile(0) != 0 || h.Quantile(1) != histMax {
		t.Fatal("q0/q1 should be min/max")
	}
	h.Reset()
	h.Record(42)
	if h.Quantile(0.5) != 42 || h.Quantile(0.999) != 42 {
		t.Fatalf("single value: %d", h.Quantile(0.5))
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race")
	}
	h := new(Histogram)
	v := int64(1)
	if n := testing.AllocsPerRun(1000, func() { h.Record(v); v = v*3 + 7 }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}
