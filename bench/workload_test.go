package bench

import (
	"errors"
	"math"
	"testing"
)

func TestWorkloadMix(t *testing.T) {
	const draws = 100000
	for _, w := range Workloads {
		r := newRand(7, 0)
		reads := 0
		for range draws {
			if w.IsRead(r) {
				reads++
			}
		}
		if got := float64(reads) / draws; math.Abs(got-w.ReadFrac) > 0.01 {
			t.Errorf("workload %s: read fraction %.4f, want %.2f ± 0.01", w.Name, got, w.ReadFrac)
		}
		if w.Reads() != (w.ReadFrac > 0) {
			t.Errorf("workload %s: Reads() wrong", w.Name)
		}
	}
}

func TestParseWorkload(t *testing.T) {
	for name, frac := range map[string]float64{"ingest": 0, "a": 0.5, "b": 0.95, "c": 1} {
		w, err := ParseWorkload(name)
		if err != nil || w.ReadFrac != frac {
			t.Errorf("ParseWorkload(%q) = %+v, %v", name, w, err)
		}
	}
	if _, err := ParseWorkload("d"); !errors.Is(err, ErrBadWorkload) {
		t.Errorf("ParseWorkload(d) error %v", err)
	}
	if _, err := NewKeyChooser("pareto", 10); !errors.Is(err, ErrBadWorkload) {
		t.Errorf("bad distribution error %v", err)
	}
	if _, err := NewKeyChooser("uniform", 0); err == nil {
		t.Error("empty keyspace accepted")
	}
}

// frequencies draws n keys from chooser over keys and counts them.
func frequencies(t *testing.T, dist string, keys, n int, seed uint64) []int {
	t.Helper()
	kc, err := NewKeyChooser(dist, keys)
	if err != nil {
		t.Fatal(err)
	}
	r := newRand(seed, 0)
	counts := make([]int, keys)
	for range n {
		i := kc.Next(r)
		if i < 0 || i >= keys {
			t.Fatalf("%s key %d outside [0, %d)", dist, i, keys)
		}
		counts[i]++
	}
	return counts
}

func TestZipfianSkew(t *testing.T) {
	const keys, draws = 1000, 100000
	top := func(c []int) int { return slicesMax(c) }
	zipf := frequencies(t, "zipfian", keys, draws, 1)
	uni := frequencies(t, "uniform", keys, draws, 1)
	// Zipf θ=0.99 over 1000 items: the hottest key gets 1/zeta(1000) ≈ 13% of draws; uniform ≈ 0.1%.
	if top(zipf) < 50*top(uni) {
		t.Errorf("zipfian top key %d draws vs uniform top %d: not skewed", top(zipf), top(uni))
	}
	if p := float64(top(zipf)) / draws; p < 0.10 || p > 0.16 {
		t.Errorf("zipfian hottest key share %.3f, want ≈ 0.13", p)
	}
	again := frequencies(t, "zipfian", keys, draws, 1)
	for i := range zipf {
		if zipf[i] != again[i] {
			t.Fatal("zipfian draws differ for the same seed")
		}
	}
	other := frequencies(t, "zipfian", keys, draws, 2)
	same := true
	for i := range zipf {
		same = same && zipf[i] == other[i]
	}
	if same {
		t.Error("zipfian draws identical for different seeds")
	}
	if zipf[0] == top(zipf) {
		t.Error("hottest key is index 0: ranks are not scrambled")
	}
}

func TestZipfianRanks(t *testing.T) {
	z := NewZipfian(100, ZipfianTheta)
	r := newRand(9, 0)
	counts := make([]int, 100)
	for range 200000 {
		counts[z.Rank(r)]++
	}
	// Rank frequencies fall off roughly as 1/rank^θ.
	if !(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[99]) {
		t.Errorf("rank counts not decreasing: %d %d %d %d", counts[0], counts[1], counts[9], counts[99])
	}
	if ratio := float64(counts[0]) / float64(counts[9]); ratio < 7 || ratio > 13 {
		t.Errorf("rank0/rank9 = %.1f, want ≈ 10^0.99 ≈ 9.8", ratio)
	}
	if NewZipfian(1, ZipfianTheta).Next(r) != 0 {
		t.Error("one-key zipfian must return 0")
	}
}

func slicesMax(c []int) int {
	m := c[0]
	for _, v := range c {
		m = max(m, v)
	}
	return m
}

func TestKeyChooserDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race")
	}
	z, _ := NewKeyChooser("zipfian", 1000)
	r := newRand(1, 1)
	if n := testing.AllocsPerRun(1000, func() { _ = z.Next(r) }); n != 0 {
		t.Fatalf("zipfian Next allocates %v times", n)
	}
}
