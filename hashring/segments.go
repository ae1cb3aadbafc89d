package hashring

import "slices"

// SegmentLists splits the hash space into 2^bits equal segments by the top
// bits of the hash and returns each segment's buckets: lists holds the
// distinct bucket lists, of[s] is segment s's index into lists, and
// divided[s] reports whether ring points divide segment s between
// preference lists — then its list is the union of those lists (in order
// met), else the preference list of n buckets that every key hashing into
// the segment has. So replicas compare an undivided segment's records as a
// whole (anti-entropy), and a divided one key by key among the union. With
// bits = 16 and 120 points per bucket, about one segment in 550 per bucket
// is divided.
func (r *Ring) SegmentLists(bits, n int) (lists [][]int, of []int32, divided []bool) {
	of, divided = make([]int32, 1<<bits), make([]bool, 1<<bits)
	index := map[string]int32{} // a list's buckets as bytes, to its index
	var a, b []int
	var key []byte
	shift := 64 - bits
	for s := range of {
		lo := uint64(s) << shift
		hi := lo | (1<<shift - 1)
		i, j := r.pointOf(lo), r.pointOf(hi)
		a = r.walk(a[:0], i, n)
		for k := i; k != j; { // every point whose arc meets the segment
			if k++; k == len(r.hashes) {
				k = 0
			}
			b = r.walk(b[:0], k, n)
			for _, x := range b {
				if !slices.Contains(a, x) {
					a = append(a, x)
					divided[s] = true
				}
			}
			divided[s] = divided[s] || !slices.Equal(a[:len(b)], b)
		}
		key = key[:0]
		for _, x := range a {
			key = append(key, byte(x>>8), byte(x))
		}
		li, ok := index[string(key)]
		if !ok {
			li = int32(len(lists))
			index[string(key)] = li
			lists = append(lists, slices.Clone(a))
		}
		of[s] = li
	}
	return lists, of, divided
}

// pointOf returns the index of the point whose arc holds hash h: the first
// point at or after h, wrapping past the top of the ring.
func (r *Ring) pointOf(h uint64) int {
	i, _ := slices.BinarySearch(r.hashes, h)
	if i == len(r.hashes) {
		i = 0
	}
	return i
}
