package hashring

import "slices"

// SegmentLists splits the hash space into 2^bits equal segments by the top
// bits of the hash and returns each segment's preference list of n buckets:
// lists holds the distinct lists, and of[s] is segment s's index into lists,
// or -1 when ring points divide the segment between different lists. Keys
// whose Hash falls in a segment with a list all have that preference list,
// so replicas compare a segment's records as a whole (anti-entropy). With
// bits = 16 and 120 points per bucket, about one segment in 550 per bucket
// is divided.
func (r *Ring) SegmentLists(bits, n int) (lists [][]int, of []int32) {
	of = make([]int32, 1<<bits)
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
			if b = r.walk(b[:0], k, n); !slices.Equal(a, b) {
				a = a[:0]
				break
			}
		}
		if len(a) == 0 {
			of[s] = -1
			continue
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
	return lists, of
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
