package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Workload is a YCSB-style operation mix: the fraction of operations that are reads; the rest
// are writes (updates of existing keys, or inserts for ingest).
type Workload struct {
	Name     string
	ReadFrac float64
}

// Workloads names the supported mixes, as in YCSB's core workloads.
var Workloads = []Workload{
	{Name: "ingest", ReadFrac: 0},
	{Name: "a", ReadFrac: 0.5},
	{Name: "b", ReadFrac: 0.95},
	{Name: "c", ReadFrac: 1},
}

// ErrBadWorkload reports an unknown workload or distribution name.
var ErrBadWorkload = errors.New("bench: unknown workload")

// ParseWorkload finds a workload by name.
func ParseWorkload(name string) (Workload, error) {
	for _, w := range Workloads {
		if w.Name == name {
			return w, nil
		}
	}
	return Workload{}, fmt.Errorf("%w %q (want ingest, a, b or c)", ErrBadWorkload, name)
}

// Reads reports whether the workload reads, and so needs the keyspace preloaded.
func (w Workload) Reads() bool { return w.ReadFrac > 0 }

// IsRead draws the next operation: true for a read.
func (w Workload) IsRead(r *rand.Rand) bool {
	switch {
	case w.ReadFrac <= 0:
		return false
	case w.ReadFrac >= 1:
		return true
	}
	return r.Float64() < w.ReadFrac
}

// KeyChooser picks key indices in [0, n). Implementations are immutable after construction and
// safe to share; all randomness comes from the caller's rng.
type KeyChooser interface {
	Next(r *rand.Rand) int
}

// NewKeyChooser builds "uniform" or "zipfian" over n keys.
func NewKeyChooser(dist string, n int) (KeyChooser, error) {
	if n <= 0 {
		return nil, fmt.Errorf("bench: keyspace must be positive, got %d", n)
	}
	switch dist {
	case "uniform", "":
		return uniform(n), nil
	case "zipfian":
		return NewZipfian(n, ZipfianTheta), nil
	}
	return nil, fmt.Errorf("%w distribution %q (want uniform or zipfian)", ErrBadWorkload, dist)
}

type uniform int

func (u uniform) Next(r *rand.Rand) int { return r.IntN(int(u)) }

// ZipfianTheta is YCSB's default zipfian constant.
const ZipfianTheta = 0.99

// Zipfian is YCSB's ScrambledZipfianGenerator: ranks follow Gray et al.'s zipfian generator
// ("Quickly generating billion-record synthetic databases", SIGMOD 1994) with constant theta,
// and each rank is hashed (FNV-1a 64) onto the keyspace so the hot keys are spread out rather
// than clustered at low indices. Constructing it costs O(n) (the zeta sum).
type Zipfian struct {
	n                   int
	theta, alpha, zetan float64
	eta, halfPowTheta   float64
}

// NewZipfian prepares a zipfian chooser over n items.
func NewZipfian(n int, theta float64) *Zipfian {
	zetan := zeta(n, theta)
	zeta2 := zeta(2, theta)
	return &Zipfian{
		n:            n,
		theta:        theta,
		alpha:        1 / (1 - theta),
		zetan:        zetan,
		eta:          (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/zetan),
		halfPowTheta: 1 + math.Pow(0.5, theta),
	}
}

func zeta(n int, theta float64) float64 {
	var s float64
	for i := 1; i <= n; i++ {
		s += 1 / math.Pow(float64(i), theta)
	}
	return s
}

// Rank draws a zipfian rank in [0, n): 0 is the most popular.
func (z *Zipfian) Rank(r *rand.Rand) int {
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.halfPowTheta {
		return min(1, z.n-1)
	}
	return min(int(float64(z.n)*math.Pow(z.eta*u-z.eta+1, z.alpha)), z.n-1)
}

// Next draws a scrambled zipfian key index.
func (z *Zipfian) Next(r *rand.Rand) int { return scramble(z.Rank(r), z.n) }

// scramble hashes rank onto [0, n) with FNV-1a 64 over its 8 little-endian bytes, as YCSB
// does; written out so the hot path does not allocate a hash.Hash.
func scramble(rank, n int) int {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	v := uint64(rank)
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= prime
		v >>= 8
	}
	return int(h % uint64(n))
}

// newRand returns the deterministic rng of one worker.
func newRand(seed uint64, worker int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(worker)+0x9e3779b97f4a7c15))
}
