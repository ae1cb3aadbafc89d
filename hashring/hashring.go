package hashring

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// DefaultPoints is the number of ring points per bucket used by the original
// implementation.
const DefaultPoints = 120

// Errors returned by New.
var (
	ErrNoBuckets       = errors.New("hashring: no buckets")
	ErrEmptyBucket     = errors.New("hashring: empty bucket ID")
	ErrDuplicateBucket = errors.New("hashring: duplicate bucket ID")
	ErrPoints          = errors.New("hashring: points per bucket must be at least 1")
)

// Ring places keys on buckets by consistent hashing. It is immutable after
// New and safe for concurrent use.
type Ring struct {
	buckets []string
	// hashes and owners describe the ring points sorted by (hash, bucket
	// index): point i sits at hashes[i] and belongs to bucket owners[i]. They
	// are split so the binary search touches only the dense hashes.
	hashes []uint64
	owners []int32
}

type point struct {
	hash   uint64
	bucket int32
}

// New builds the ring of buckets (bucket IDs, in configuration order) with
// points ring points per bucket. Bucket b's i-th point (0 <= i < points) is
// at Hash(ID + "#" + decimal(i)). Indexes returned by the Ring are indexes
// into buckets.
func New(buckets []string, points int) (*Ring, error) {
	if len(buckets) == 0 {
		return nil, ErrNoBuckets
	}
	if points < 1 {
		return nil, fmt.Errorf("%w: got %d", ErrPoints, points)
	}
	seen := make(map[string]struct{}, len(buckets))
	for i, id := range buckets {
		if id == "" {
			return nil, fmt.Errorf("%w: bucket %d", ErrEmptyBucket, i)
		}
		if _, dup := seen[id]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateBucket, id)
		}
		seen[id] = struct{}{}
	}

	pts := make([]point, 0, len(buckets)*points)
	var key []byte
	for b, id := range buckets {
		for i := range points {
			key = pointKey(key[:0], id, i)
			pts = append(pts, point{hash: Hash(key), bucket: int32(b)})
		}
	}
	// Ties on hash are broken by bucket index so every process orders
	// colliding points the same way.
	slices.SortFunc(pts, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.bucket, b.bucket))
	})

	r := &Ring{
		buckets: slices.Clone(buckets),
		hashes:  make([]uint64, len(pts)),
		owners:  make([]int32, len(pts)),
	}
	for i, p := range pts {
		r.hashes[i], r.owners[i] = p.hash, p.bucket
	}
	return r, nil
}

// pointKey appends the documented point key "<bucketID>#<i>" to dst.
func pointKey(dst []byte, id string, i int) []byte {
	dst = append(dst, id...)
	dst = append(dst, '#')
	return strconv.AppendInt(dst, int64(i), 10)
}

// Buckets returns a copy of the bucket IDs in index order.
func (r *Ring) Buckets() []string { return slices.Clone(r.buckets) }

// Bucket returns the ID of bucket index b (no allocation).
func (r *Ring) Bucket(b int) string { return r.buckets[b] }

// Lookup appends to dst the indexes (into Buckets()) of the first n distinct
// buckets met walking clockwise from Hash(key), primary first. n is capped at
// the bucket count; n <= 0 returns dst unchanged. It does not allocate when
// cap(dst) suffices.
func (r *Ring) Lookup(dst []int, key []byte, n int) []int {
	return r.lookupHash(dst, Hash(key), n)
}

// lookupHash is Lookup for an already hashed key.
func (r *Ring) lookupHash(dst []int, h uint64, n int) []int {
	return r.walk(dst, r.pointOf(h), n)
}

// walk appends the first min(n, bucket count) distinct buckets met from point
// i clockwise. One full turn meets every bucket, which bounds the loop.
func (r *Ring) walk(dst []int, i, n int) []int {
	n = min(n, len(r.buckets))
	start := len(dst)
	for range r.owners {
		if len(dst)-start >= n {
			break
		}
		if b := int(r.owners[i]); !slices.Contains(dst[start:], b) {
			dst = append(dst, b)
		}
		if i++; i == len(r.owners) {
			i = 0
		}
	}
	return dst
}

// Groups returns every distinct list Lookup can return for n: the first n
// distinct buckets from each ring point, in ring order (primary first),
// each list once. It walks the whole ring and allocates: for health checks
// and planning, not per request.
func (r *Ring) Groups(n int) [][]int {
	var out [][]int
	seen := map[string]bool{}
	var g []int
	var key []byte
	for i := range r.owners {
		g = r.walk(g[:0], i, n)
		key = key[:0]
		for _, b := range g {
			key = append(key, byte(b>>24), byte(b>>16), byte(b>>8), byte(b))
		}
		if !seen[string(key)] {
			seen[string(key)] = true
			out = append(out, slices.Clone(g))
		}
	}
	return out
}
