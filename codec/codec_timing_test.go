package codec

import (
	"bytes"
	"testing"
)

var (
	benchKey     = []byte("user:0000000042")
	benchValue   = bytes.Repeat([]byte{'v'}, 100)
	benchRecords = func() []Record {
		recs := make([]Record, 100)
		for i := range recs {
			recs[i] = Record{Key: benchKey, TS: int64(i), Value: benchValue}
		}
		return recs
	}()
)

// TestDecodeAllocs proves the decoders do not allocate, for every sample frame.
func TestDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	var req Request
	for _, s := range requestSamples() {
		if n := testing.AllocsPerRun(100, func() { _ = DecodeRequest(s.frame, &req) }); n != 0 {
			t.Errorf("DecodeRequest(%s): %v allocs", s.name, n)
		}
	}
	var rep Reply
	for _, s := range replySamples() {
		n := testing.AllocsPerRun(100, func() {
			_ = DecodeReply(s.frame, &rep)
			for it := rep.Records; it.Len() > 0; {
				it.Next()
			}
		})
		if n != 0 {
			t.Errorf("DecodeReply(%s): %v allocs", s.name, n)
		}
	}
	buf := make([]byte, 0, 1<<20)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendSet(buf[:0], 1, benchKey, 1, 0, benchValue)
		buf = AppendBatchSet(buf[:0], 1, benchRecords)
		w := BeginScanReply(buf[:0], 1)
		w.Add(benchRecords[0])
		buf = w.Finish(true, benchKey)
	}); n != 0 {
		t.Errorf("encoders into a large enough buffer: %v allocs", n)
	}
}

func benchDecodeRequest(b *testing.B, frame []byte) {
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := DecodeRequest(frame, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	b.Run("get", func(b *testing.B) { benchDecodeRequest(b, AppendGet(nil, 1, benchKey)) })
	b.Run("set100B", func(b *testing.B) { benchDecodeRequest(b, AppendSet(nil, 1, benchKey, 1, 0, benchValue)) })
	b.Run("set180KiB", func(b *testing.B) { benchDecodeRequest(b, AppendSet(nil, 1, benchKey, 1, 0, bigValue)) })
	b.Run("batchset100", func(b *testing.B) { benchDecodeRequest(b, AppendBatchSet(nil, 1, benchRecords)) })
}

func BenchmarkDecodeReply(b *testing.B) {
	bench := func(b *testing.B, frame []byte) {
		var r Reply
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			if err := DecodeReply(frame, &r); err != nil {
				b.Fatal(err)
			}
			for it := r.Records; it.Len() > 0; {
				it.Next()
			}
		}
	}
	b.Run("get100B", func(b *testing.B) { bench(b, AppendGetReply(nil, 1, StatusOK, 1, 0, benchValue)) })
	b.Run("set", func(b *testing.B) { bench(b, AppendSetReply(nil, 1, StatusApplied, 1)) })
	b.Run("scan100", func(b *testing.B) { bench(b, AppendScanReply(nil, 1, benchRecords, true, benchKey)) })
}

func BenchmarkEncode(b *testing.B) {
	buf := make([]byte, 0, 64<<10)
	b.Run("set100B", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendSet(buf[:0], 1, benchKey, 1, 0, benchValue)
		}
	})
	b.Run("getreply100B", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendGetReply(buf[:0], 1, StatusOK, 1, 0, benchValue)
		}
	})
	b.Run("batchset100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendBatchSet(buf[:0], 1, benchRecords)
		}
	})
}
