package hashring

import (
	"strconv"
	"sync/atomic"
	"testing"
)

var benchSink atomic.Uint64

func BenchmarkLookup(b *testing.B) {
	for _, nb := range []int{5, 50} {
		b.Run(strconv.Itoa(nb)+"buckets", func(b *testing.B) {
			r := mustNew(b, bucketIDs(nb), DefaultPoints)
			keys := make([][]byte, 1024)
			for i := range keys {
				keys[i] = []byte("user:" + strconv.Itoa(i*7919))
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]int, 0, 3)
				sum, i := 0, 0
				for pb.Next() {
					dst = r.Lookup(dst[:0], keys[i%len(keys)], 3)
					sum += dst[0]
					i++
				}
				benchSink.Add(uint64(sum))
			})
		})
	}
}
