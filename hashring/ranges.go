package hashring

import (
	"iter"
	"slices"
)

// Range is an arc of the hash ring: the hashes h with Start < h <= End. When
// Start >= End the arc wraps past the top of the ring (h > Start || h <= End);
// Start == End is the whole ring.
type Range struct {
	Start, End uint64
}

// Contains reports whether hash h lies in the range.
func (g Range) Contains(h uint64) bool {
	if g.Start < g.End {
		return g.Start < h && h <= g.End
	}
	return h > g.Start || h <= g.End
}

// Ranges returns the arcs of the ring for which bucket b is one of the n
// replicas, in ring order, adjacent arcs merged: Hash(key) falls in one of
// them exactly when Owns(b, key, n). It returns nil when b owns nothing
// (n <= 0, b out of range).
func (r *Ring) Ranges(b, n int) []Range {
	if b < 0 || b >= len(r.buckets) || n <= 0 {
		return nil
	}
	var out []Range
	for g, pref := range r.segments(n) {
		if !slices.Contains(pref, b) {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k].End == g.Start {
			out[k].End = g.End
		} else {
			out = append(out, g)
		}
	}
	// The first segment starts where the last one ends: join the two halves
	// of an arc that wraps past the top of the ring.
	if k := len(out) - 1; k > 0 && out[k].End == out[0].Start {
		out[0].Start = out[k].Start
		out = out[:k]
	}
	return out
}

// Neighbours returns, in increasing order, every bucket other than b that
// appears together with b in some key's n-bucket preference list: the buckets
// b's nodes exchange keys with during healing. The result is empty when n <= 1
// or b is out of range.
func (r *Ring) Neighbours(b int, n int) []int {
	if b < 0 || b >= len(r.buckets) || n <= 1 {
		return nil
	}
	with := make([]bool, len(r.buckets))
	for _, pref := range r.segments(n) {
		if slices.Contains(pref, b) {
			for _, x := range pref {
				with[x] = true
			}
		}
	}
	var out []int
	for x, ok := range with {
		if ok && x != b {
			out = append(out, x)
		}
	}
	return out
}

// segments yields, in ring order, each arc on which the preference list is
// constant together with that list. Points sharing a hash form one arc end;
// a key hashing to (previous distinct hash, this hash] starts its walk at the
// first point holding this hash. The yielded slice is reused between steps.
func (r *Ring) segments(n int) iter.Seq2[Range, []int] {
	return func(yield func(Range, []int) bool) {
		pref := make([]int, 0, min(n, len(r.buckets)))
		prev := r.hashes[len(r.hashes)-1] // arc 0 wraps from the highest point
		for i, h := range r.hashes {
			if i > 0 && h == prev {
				continue // empty arc: same hash as the point before
			}
			pref = r.walk(pref[:0], i, n)
			if !yield(Range{Start: prev, End: h}, pref) {
				return
			}
			prev = h
		}
	}
}
