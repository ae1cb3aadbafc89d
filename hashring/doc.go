// Package hashring places keys on buckets by consistent hashing. It owns the
// key hash, the ring built from a deployment's bucket list, each key's
// preference list (its buckets_per_key buckets), and the view anti-entropy
// needs: the preference list of each hash segment (SegmentLists). It knows
// nothing of nodes or configuration
// files: callers pass bucket IDs in configuration order and use the returned
// indexes into that list.
//
// # Hash function (part of the cluster contract)
//
// Every process must build the same ring from the same configuration, so the
// hash is fixed, unseeded and platform independent. Hash(key) is:
//
//	h := 0xcbf29ce484222325            // FNV-1a 64 offset basis
//	for each byte c of key, in order:
//	    h ^= uint64(c)
//	    h *= 0x100000001b3             // FNV-1a 64 prime, mod 2^64
//	// MurmurHash3 fmix64 finalizer, all arithmetic mod 2^64:
//	h ^= h >> 33
//	h *= 0xff51afd7ed558ccd
//	h ^= h >> 33
//	h *= 0xc4ceb9fe1a85ec53
//	h ^= h >> 33
//
// For example Hash("") = 0xefd01f60ba992926 and Hash("key-0") =
// 0x18137ad031db6589 (pinned by TestHashGolden).
//
// # Ring
//
// Bucket b with ID id gets P points (DefaultPoints = 120) at
// Hash(id + "#" + i) for i = 0..P-1, i written in decimal without sign or
// padding: "b1#0", "b1#1", ..., "b1#119". Points are sorted by (hash, bucket
// index), so colliding points are ordered the same way everywhere. A key
// starts at the first point whose hash is >= Hash(key), wrapping to the
// lowest point past the top, and walks clockwise collecting distinct buckets
// until it has n of them (n capped at the bucket count). The first is the
// key's primary.
//
// # Invariants
//
//   - The preference list for n is a prefix of the one for n+1.
//   - Adding a bucket only moves keys onto the new bucket; no key moves
//     between two existing buckets (tested for primaries).
//   - SegmentLists gives a segment a list only when every hash in it has
//     that preference list.
//   - Bucket IDs are non-empty and unique; "<id>#<i>" cannot be produced by
//     two different IDs because i has no '#'.
//
// # Balance
//
// With P points a bucket's share of the ring has a relative standard
// deviation of about 1/sqrt(P) (8.4% measured at P = 120, the same as random
// points). For arbitrary bucket IDs the largest bucket therefore exceeds the
// mean by more than 15% in roughly a quarter of 5-bucket and half of
// 10-bucket rings at P = 120; P = 500 brings that under 1%.
//
// # Concurrency
//
// A Ring is immutable after New and safe for concurrent use without locks.
// A new configuration means a new Ring. Lookup does not allocate;
// SegmentLists walks the whole ring and allocates, and is meant for
// anti-entropy, not the request path.
package hashring
