package hashring

// FNV-1a 64-bit parameters (FNV specification, draft-eastlake-fnv).
const (
	fnvOffset64 = 14695981039346656037 // 0xcbf29ce484222325
	fnvPrime64  = 1099511628211        // 0x100000001b3
)

// Hash is the ring's key hash: 64-bit FNV-1a over the bytes of key, followed
// by the MurmurHash3 fmix64 finalizer. FNV-1a alone disperses short,
// similar keys ("b1#0", "b1#1", ...) poorly in the high bits; fmix64 is a
// bijection that spreads every input bit over the whole word. The function is
// part of the cluster's wire contract: changing it moves every key.
// It does not allocate.
func Hash(key []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range key {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return fmix64(h)
}

// fmix64 is MurmurHash3's 64-bit finalizer.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
