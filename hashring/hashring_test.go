package hashring

import (
	"errors"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// bucketIDs returns "b1".."bn".
func bucketIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "b" + strconv.Itoa(i+1)
	}
	return ids
}

func mustNew(t testing.TB, buckets []string, points int) *Ring {
	t.Helper()
	r, err := New(buckets, points)
	if err != nil {
		t.Fatalf("New(%v, %d): %v", buckets, points, err)
	}
	return r
}

func testKey(i int) []byte { return []byte("key-" + strconv.Itoa(i)) }

// TestHashGolden pins the key hash. If it fails, every deployed key moves:
// do not "fix" the constants.
func TestHashGolden(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0xefd01f60ba992926},
		{"a", 0x82a2a958a9bece5b},
		{"b1#0", 0xeb08917d750c2ba6},
		{"key-0", 0x18137ad031db6589},
		{"tako", 0x2e83624f1651e05e},
	} {
		if got := Hash([]byte(c.in)); got != c.want {
			t.Errorf("Hash(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

// TestHashIsFNV1aThenFmix64 checks the documented construction against the
// standard library's FNV-1a.
func TestHashIsFNV1aThenFmix64(t *testing.T) {
	for i := range 200 {
		key := testKey(i)[:i%8]
		f := fnv.New64a()
		f.Write(key)
		if got, want := Hash(key), fmix64(f.Sum64()); got != want {
			t.Fatalf("Hash(%q) = %#x, want fmix64(fnv1a) = %#x", key, got, want)
		}
	}
}

// TestGoldenPlacement pins preference lists for b1..b5, 120 points, 2 buckets
// per key (checked against an independent implementation). Any change to the
// hash, the point keys or the walk breaks it.
func TestGoldenPlacement(t *testing.T) {
	want := [20][2]int{
		{2, 3}, {4, 3}, {4, 2}, {2, 3}, {3, 1}, {1, 2}, {4, 2}, {0, 4}, {3, 4}, {4, 0},
		{1, 2}, {2, 4}, {4, 1}, {0, 2}, {0, 1}, {3, 1}, {2, 0}, {0, 4}, {1, 3}, {3, 1},
	}
	r := mustNew(t, bucketIDs(5), DefaultPoints)
	for i, w := range want {
		if got := r.Lookup(nil, testKey(i), 2); !slices.Equal(got, w[:]) {
			t.Errorf("Lookup(key-%d) = %v, want %v", i, got, w)
		}
	}
}

func TestNewErrors(t *testing.T) {
	check := func(buckets []string, points int, want error) {
		t.Helper()
		if _, err := New(buckets, points); !errors.Is(err, want) {
			t.Errorf("New(%q, %d) = %v, want %v", buckets, points, err, want)
		}
	}
	check(nil, DefaultPoints, ErrNoBuckets)
	check([]string{}, DefaultPoints, ErrNoBuckets)
	check([]string{"a", "b", "a"}, DefaultPoints, ErrDuplicateBucket)
	check([]string{"a", ""}, DefaultPoints, ErrEmptyBucket)
	check([]string{"a"}, 0, ErrPoints)
	check([]string{"a"}, -1, ErrPoints)
}

func TestBucketsIsACopy(t *testing.T) {
	ids := bucketIDs(3)
	r := mustNew(t, ids, 4)
	ids[0] = "changed"
	got := r.Buckets()
	got[1] = "changed"
	if want := bucketIDs(3); !slices.Equal(r.Buckets(), want) || r.Bucket(0) != "b1" {
		t.Fatalf("Buckets() = %v, want %v", r.Buckets(), want)
	}
}

// TestBalance: primary load of 100k keys per bucket, within 15% of the mean.
func TestBalance(t *testing.T) {
	const keys = 100_000
	for _, nb := range []int{5, 10} {
		r := mustNew(t, bucketIDs(nb), DefaultPoints)
		load := make([]int, nb)
		var dst []int
		for i := range keys {
			dst = r.Lookup(dst[:0], testKey(i), 1)
			load[dst[0]]++
		}
		mean := float64(keys) / float64(nb)
		worst := float64(slices.Max(load))/mean - 1
		t.Logf("%d buckets: max primary load %+.1f%% of mean, loads %v", nb, worst*100, load)
		if worst > 0.15 {
			t.Errorf("%d buckets: max load %+.1f%% of mean, want <= 15%%", nb, worst*100)
		}
	}
}

// TestMinimalMovement: adding a sixth bucket moves about 1/6 of primaries,
// all of them onto the new bucket.
func TestMinimalMovement(t *testing.T) {
	const keys = 100_000
	old := mustNew(t, bucketIDs(5), DefaultPoints)
	grown := mustNew(t, bucketIDs(6), DefaultPoints)
	moved := 0
	var a, b []int
	for i := range keys {
		a = old.Lookup(a[:0], testKey(i), 1)
		b = grown.Lookup(b[:0], testKey(i), 1)
		from, to := old.Bucket(a[0]), grown.Bucket(b[0])
		if from == to {
			continue
		}
		moved++
		if to != "b6" {
			t.Fatalf("key-%d moved between old buckets %s -> %s", i, from, to)
		}
	}
	frac := float64(moved) / keys
	t.Logf("adding b6 to b1..b5 moved %.2f%% of primaries (ideal %.2f%%)", frac*100, 100.0/6)
	if frac < 0.10 || frac > 0.25 {
		t.Errorf("moved fraction %.3f, want in [0.10, 0.25]", frac)
	}
}

func TestLookupDistinctAndCapped(t *testing.T) {
	r := mustNew(t, bucketIDs(4), 8)
	prefix := []int{42, 7}
	for i := range 2000 {
		for n := -1; n <= 6; n++ {
			got := r.Lookup(slices.Clone(prefix), testKey(i), n)
			if !slices.Equal(got[:2], prefix) {
				t.Fatalf("Lookup clobbered dst prefix: %v", got)
			}
			checkPreference(t, got[2:], max(0, min(n, 4)), 4)
		}
		// A longer list extends a shorter one: replicas are a prefix.
		if all, two := r.Lookup(nil, testKey(i), 4), r.Lookup(nil, testKey(i), 2); !slices.Equal(all[:2], two) {
			t.Fatalf("Lookup(n=2) = %v is not a prefix of Lookup(n=4) = %v", two, all)
		}
	}
}

// checkPreference fails unless got holds want distinct indexes in [0, nb).
func checkPreference(t testing.TB, got []int, want, nb int) {
	t.Helper()
	if len(got) != want {
		t.Fatalf("got %d buckets %v, want %d", len(got), got, want)
	}
	for i, b := range got {
		if b < 0 || b >= nb || slices.Contains(got[:i], b) {
			t.Fatalf("bad preference list %v for %d buckets", got, nb)
		}
	}
}

// TestCollidingPoints builds rings whose points collide and checks that
// tie-breaking and the arc walk still agree with Lookup.
func TestCollidingPoints(t *testing.T) {
	r := &Ring{
		buckets: bucketIDs(3),
		hashes:  []uint64{10, 10, 10, 20, 20},
		owners:  []int32{0, 1, 2, 1, 2},
	}
	check := func(h uint64, n int, want ...int) {
		t.Helper()
		if got := r.lookupHash(nil, h, n); !slices.Equal(got, want) {
			t.Errorf("lookupHash(%d, %d) = %v, want %v", h, n, got, want)
		}
	}
	check(5, 2, 0, 1)
	check(10, 3, 0, 1, 2)
	check(11, 2, 1, 2)
	check(20, 3, 1, 2, 0)
	check(21, 1, 0)
	check(math.MaxUint64, 3, 0, 1, 2)
}

// probes returns every point hash, its neighbours on both sides, both ends of
// the hash space and some random hashes: the arc boundaries and their interiors.
func probes(r *Ring, random int) []uint64 {
	hs := []uint64{0, math.MaxUint64}
	for _, h := range r.hashes {
		hs = append(hs, h-1, h, h+1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range random {
		hs = append(hs, rng.Uint64())
	}
	return hs
}

// TestSegmentLists: a segment with a list holds only hashes that Lookup
// gives that list; a divided one holds two hashes with different lists.
func TestSegmentLists(t *testing.T) {
	for _, c := range []struct{ buckets, points, n int }{
		{1, DefaultPoints, 1}, {5, DefaultPoints, 1}, {5, DefaultPoints, 2}, {10, 3, 3}, {3, 1, 2},
	} {
		r := mustNew(t, bucketIDs(c.buckets), c.points)
		const bits = 10 // coarse, so segments hold many points
		lists, of, divided := r.SegmentLists(bits, c.n)
		bySeg := map[int][][]int{}
		for _, h := range probes(r, 20000) {
			s := int(h >> (64 - bits))
			pref := r.lookupHash(nil, h, c.n)
			list := lists[of[s]]
			if !divided[s] && !slices.Equal(list, pref) {
				t.Fatalf("%+v: hash %#x in segment %d: Lookup %v, segment list %v", c, h, s, pref, list)
			}
			for _, b := range pref {
				if !slices.Contains(list, b) {
					t.Fatalf("%+v: hash %#x in divided segment %d: bucket %d of %v not in the union %v", c, h, s, b, pref, list)
				}
			}
			bySeg[s] = append(bySeg[s], pref)
		}
		n := 0
		for s, d := range divided {
			if !d {
				continue
			}
			n++
			if seen := bySeg[s]; len(seen) > 0 && !slices.ContainsFunc(seen, func(p []int) bool { return !slices.Equal(p, seen[0]) }) &&
				slices.Equal(seen[0], lists[of[s]]) {
				t.Fatalf("%+v: segment %d marked divided, probes all say %v", c, s, seen[0])
			}
		}
		if c.buckets == 1 && n != 0 {
			t.Fatalf("one bucket: %d segments divided", n)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := mustNew(t, bucketIDs(10), DefaultPoints)
	key := testKey(7)
	dst := make([]int, 0, 10)
	check := func(name string, f func()) {
		t.Helper()
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, a)
		}
	}
	check("Hash", func() { Hash(key) })
	check("Lookup n=3", func() { dst = r.Lookup(dst[:0], key, 3) })
	check("Lookup n=10", func() { dst = r.Lookup(dst[:0], key, 10) })
}

// TestConcurrentReads exercises the immutability claim under -race.
func TestConcurrentReads(t *testing.T) {
	r := mustNew(t, bucketIDs(5), DefaultPoints)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var dst []int
			for i := range 500 {
				dst = r.Lookup(dst[:0], testKey(g*500+i), 2)
			}
			r.SegmentLists(8, g%3+1)
		})
	}
	wg.Wait()
}

func FuzzLookup(f *testing.F) {
	f.Add([]byte("key-0"), 2)
	f.Add([]byte(""), 1)
	f.Add([]byte{0xff, 0, 0x80}, 5)
	f.Add([]byte("tako"), -3)
	f.Add([]byte("x"), 1<<40)
	r := mustNew(f, bucketIDs(5), 16)
	f.Fuzz(func(t *testing.T, key []byte, n int) {
		got := r.Lookup(nil, key, n)
		checkPreference(t, got, max(0, min(n, 5)), 5)
	})
}

// TestGroups: every list Lookup returns is one of Groups, each group once,
// and with enough probes every group is met.
func TestGroups(t *testing.T) {
	for _, c := range []struct{ buckets, points, n int }{
		{1, DefaultPoints, 1}, {5, 4, 1}, {5, 4, 2}, {10, 3, 3}, {3, 1, 2}, {2, 8, 5},
	} {
		r := mustNew(t, bucketIDs(c.buckets), c.points)
		groups := r.Groups(c.n)
		met := make([]bool, len(groups))
		for _, h := range probes(r, 20000) {
			pref := r.lookupHash(nil, h, c.n)
			i := slices.IndexFunc(groups, func(g []int) bool { return slices.Equal(g, pref) })
			if i < 0 {
				t.Fatalf("%+v: Lookup %v is not among Groups %v", c, pref, groups)
			}
			met[i] = true
		}
		for i, g := range groups {
			if !met[i] {
				t.Errorf("%+v: group %v met by no probe", c, g)
			}
			if j := slices.IndexFunc(groups, func(o []int) bool { return slices.Equal(o, g) }); j != i {
				t.Errorf("%+v: group %v listed twice", c, g)
			}
		}
	}
}
