package codec

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// sample is a well-formed frame and a name for test output.
type sample struct {
	name  string
	frame []byte
}

var (
	bigKey   = bytes.Repeat([]byte{'k'}, MaxKeyLen)
	bigValue = bytes.Repeat([]byte{0xEE}, 180<<10)
	recA     = Record{Key: []byte("a"), TS: 1, Flags: 0, Value: []byte("va")}
	recB     = Record{Key: []byte("bb"), TS: -1, Flags: Tombstone}
	recC     = Record{Key: []byte("c"), TS: math.MaxInt64, Flags: 0xFF, Value: []byte{0, 1, 2}}
)

// requestSamples covers every op and the extremes of every field.
func requestSamples() []sample {
	return []sample{
		{"hello", AppendHello(nil, 0, 1, 1, []byte("node-1"))},
		{"hello/proxy", AppendHello(nil, 0, 0, math.MaxUint16, nil)},
		{"hello/tlvs", AppendHello(nil, 9, 1, 3, []byte("n"), TLV{Type: 7, Value: []byte("proof")}, TLV{Type: 0xFFFF})},
		{"ping", AppendPing(nil, 1, nil)},
		{"ping/payload", AppendPing(nil, 2, []byte("payload"))},
		{"get", AppendGet(nil, 3, []byte("k"))},
		{"get/maxkey", AppendGet(nil, math.MaxUint64, bigKey)},
		{"stat", AppendStat(nil, 4, []byte("key"))},
		{"set", AppendSet(nil, 5, []byte("k"), 1700000000000000, 0, []byte("v"))},
		{"set/empty", AppendSet(nil, 6, []byte("k"), 0, 0, nil)},
		{"set/tombstone", AppendSet(nil, 7, []byte("k"), math.MinInt64, Tombstone, nil)},
		{"set/big", AppendSet(nil, 8, bigKey, math.MaxInt64, 0xFF, bigValue)},
		{"batchset/empty", AppendBatchSet(nil, 9, nil)},
		{"batchset", AppendBatchSet(nil, 10, []Record{recA, recB, recC})},
		{"scan", AppendScan(nil, 11, []byte("a"), []byte("z"), 100, 1<<20, ScanValues)},
		{"scan/unbounded", AppendScan(nil, 12, nil, nil, 0, 0, ScanKeys)},
		{"scan/hashes", AppendScan(nil, 13, []byte("a"), nil, 0, 0, ScanHashes)},
		{"sums", AppendSums(nil, 14, 8, []SegmentRange{{0, 0}, {7, math.MaxUint16}})},
		{"sums/empty", AppendSums(nil, 15, 0, nil)},
		{"segmentscan", AppendSegmentScan(nil, 16, math.MaxUint16, []byte("after"), 100)},
		{"segmentscan/first", AppendSegmentScan(nil, 17, 0, nil, 0)},
		{"purge", AppendPurge(nil, 18, []Record{recA, recC})},
	}
}

// replySamples covers every op, every status an op may carry and the extremes of every field.
func replySamples() []sample {
	return []sample{
		{"hello", AppendHelloReply(nil, 0, 1, []byte("node-2"))},
		{"hello/tlvs", AppendHelloReply(nil, 0, 3, nil, TLV{Type: 1, Value: []byte{9}})},
		{"hello/version", AppendErrorReply(nil, OpHello, 0, StatusVersion, "no common version")},
		{"none/error", AppendErrorReply(nil, OpNone, 0, StatusBadRequest, "bad magic")},
		{"ping", AppendPingReply(nil, 1, []byte("payload"))},
		{"get", AppendGetReply(nil, 2, StatusOK, 42, 0, []byte("value"))},
		{"get/big", AppendGetReply(nil, 3, StatusOK, math.MaxInt64, 0xFF, bigValue)},
		{"get/tombstone", AppendGetReply(nil, 4, StatusOK, -5, Tombstone, nil)},
		{"get/notfound", AppendGetReply(nil, 5, StatusNotFound, 0, 0, nil)},
		{"get/error", AppendErrorReply(nil, OpGet, 6, StatusError, "disk full")},
		{"stat", AppendStatReply(nil, 7, StatusOK, 99, Tombstone)},
		{"stat/notfound", AppendStatReply(nil, 8, StatusNotFound, 0, 0)},
		{"set/applied", AppendSetReply(nil, 9, StatusApplied, 100)},
		{"set/stale", AppendSetReply(nil, 10, StatusStale, 200)},
		{"batchset", AppendBatchSetReply(nil, 11, []Result{{StatusApplied, 1}, {StatusStale, math.MinInt64}})},
		{"batchset/empty", AppendBatchSetReply(nil, 12, nil)},
		{"scan", AppendScanReply(nil, 13, []Record{recA, recB, recC}, true, []byte("c\x00"))},
		{"scan/empty", AppendScanReply(nil, 14, nil, false, nil)},
		{"unsupported", AppendErrorReply(nil, opDigest, 16, StatusUnsupported, "")},
		{"sums", AppendSumsReply(nil, 17, []Sum{{0, 1, 2}, {math.MaxUint16, math.MaxUint64, math.MaxUint64}})},
		{"sums/empty", AppendSumsReply(nil, 18, nil)},
		{"segmentscan", segmentScanReply(19, []Record{recA, recB}, true, []byte("b"))},
		{"purge", AppendPurgeReply(nil, 20, []Result{{StatusApplied, 3}, {StatusStale, 4}})},
	}
}

// encodeRequest re-encodes a decoded request with the public encoders. Every valid frame
// has exactly one encoding, so decode followed by encodeRequest must give the frame back.
func encodeRequest(r *Request) []byte {
	switch r.Op {
	case OpHello:
		it := r.TLVs
		var tlvs []TLV
		for t, ok := it.Next(); ok; t, ok = it.Next() {
			tlvs = append(tlvs, t)
		}
		return AppendHello(nil, r.ID, r.MinVersion, r.MaxVersion, r.NodeID, tlvs...)
	case OpPing:
		return AppendPing(nil, r.ID, r.Value)
	case OpGet:
		return AppendGet(nil, r.ID, r.Key)
	case OpStat:
		return AppendStat(nil, r.ID, r.Key)
	case OpSet:
		return AppendSet(nil, r.ID, r.Key, r.TS, r.Flags, r.Value)
	case OpBatchSet:
		it := r.Records
		w := BeginBatchSet(nil, r.ID)
		for rec, ok := it.Next(); ok; rec, ok = it.Next() {
			w.Add(rec)
		}
		return w.Finish()
	case OpScan:
		return AppendScan(nil, r.ID, r.Key, r.End, r.Limit, r.LimitBytes, r.Mode)
	case OpSums:
		ranges := make([]SegmentRange, r.Ranges.Len())
		for i := range ranges {
			ranges[i] = r.Ranges.At(i)
		}
		return AppendSums(nil, r.ID, r.Shift, ranges)
	case OpSegmentScan:
		return AppendSegmentScan(nil, r.ID, r.Segment, r.Key, r.Limit)
	case OpPurge:
		var recs []Record
		it := r.Records
		for rec, ok := it.Next(); ok; rec, ok = it.Next() {
			recs = append(recs, rec)
		}
		return AppendPurge(nil, r.ID, recs)
	}
	panic(fmt.Sprintf("encodeRequest: %s", r.Op))
}

// encodeReply is encodeRequest for replies.
func encodeReply(r *Reply) []byte {
	if r.Status.IsError() {
		return AppendErrorReply(nil, r.Op, r.ID, r.Status, string(r.Msg))
	}
	switch r.Op {
	case OpHello:
		it := r.TLVs
		var tlvs []TLV
		for t, ok := it.Next(); ok; t, ok = it.Next() {
			tlvs = append(tlvs, t)
		}
		return AppendHelloReply(nil, r.ID, r.Version, r.NodeID, tlvs...)
	case OpPing:
		return AppendPingReply(nil, r.ID, r.Value)
	case OpGet:
		return AppendGetReply(nil, r.ID, r.Status, r.TS, r.Flags, r.Value)
	case OpStat:
		return AppendStatReply(nil, r.ID, r.Status, r.TS, r.Flags)
	case OpSet:
		return AppendSetReply(nil, r.ID, r.Status, r.TS)
	case OpBatchSet, OpPurge:
		res := make([]Result, r.Results.Len())
		for i := range res {
			res[i] = r.Results.At(i)
		}
		if r.Op == OpPurge {
			return AppendPurgeReply(nil, r.ID, res)
		}
		return AppendBatchSetReply(nil, r.ID, res)
	case OpScan, OpSegmentScan:
		w := BeginScanReply(nil, r.ID)
		if r.Op == OpSegmentScan {
			w = BeginSegmentScanReply(nil, r.ID)
		}
		it := r.Records
		for rec, ok := it.Next(); ok; rec, ok = it.Next() {
			w.Add(rec)
		}
		return w.Finish(r.More, r.Next)
	case OpSums:
		sums := make([]Sum, r.Sums.Len())
		for i := range sums {
			sums[i] = r.Sums.At(i)
		}
		return AppendSumsReply(nil, r.ID, sums)
	}
	panic(fmt.Sprintf("encodeReply: %s", r.Op))
}

// describeRequest renders a decoded request on one line (for testdata/frames).
func describeRequest(r *Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "request %s id=%d", r.Op, r.ID)
	switch r.Op {
	case OpHello:
		fmt.Fprintf(&b, " versions=%d..%d node=%q", r.MinVersion, r.MaxVersion, r.NodeID)
		describeTLVs(&b, r.TLVs)
	case OpPing:
		fmt.Fprintf(&b, " payload=%q", r.Value)
	case OpGet, OpStat:
		fmt.Fprintf(&b, " key=%q", r.Key)
	case OpSet:
		fmt.Fprintf(&b, " key=%q ts=%d flags=%#x value=%q", r.Key, r.TS, r.Flags, r.Value)
	case OpBatchSet, OpPurge:
		describeRecords(&b, r.Records)
	case OpScan:
		fmt.Fprintf(&b, " start=%q end=%q limit=%d limitbytes=%d mode=%d", r.Key, r.End, r.Limit, r.LimitBytes, r.Mode)
	case OpSums:
		fmt.Fprintf(&b, " shift=%d", r.Shift)
		for i := range r.Ranges.Len() {
			g := r.Ranges.At(i)
			fmt.Fprintf(&b, " [%d..%d]", g.Lo, g.Hi)
		}
	case OpSegmentScan:
		fmt.Fprintf(&b, " segment=%d after=%q limit=%d", r.Segment, r.Key, r.Limit)
	}
	return b.String()
}

// describeReply renders a decoded reply on one line (for testdata/frames).
func describeReply(r *Reply) string {
	var b strings.Builder
	fmt.Fprintf(&b, "reply %s id=%d status=%s", r.Op, r.ID, r.Status)
	if r.Status.IsError() {
		fmt.Fprintf(&b, " msg=%q", r.Msg)
		return b.String()
	}
	switch r.Op {
	case OpHello:
		fmt.Fprintf(&b, " version=%d node=%q", r.Version, r.NodeID)
		describeTLVs(&b, r.TLVs)
	case OpPing:
		fmt.Fprintf(&b, " payload=%q", r.Value)
	case OpGet:
		fmt.Fprintf(&b, " ts=%d flags=%#x value=%q", r.TS, r.Flags, r.Value)
	case OpStat:
		fmt.Fprintf(&b, " ts=%d flags=%#x", r.TS, r.Flags)
	case OpSet:
		fmt.Fprintf(&b, " ts=%d", r.TS)
	case OpBatchSet, OpPurge:
		for i := 0; i < r.Results.Len(); i++ {
			res := r.Results.At(i)
			fmt.Fprintf(&b, " [%s %d]", res.Status, res.TS)
		}
	case OpScan, OpSegmentScan:
		fmt.Fprintf(&b, " more=%v next=%q", r.More, r.Next)
		describeRecords(&b, r.Records)
	case OpSums:
		for i := range r.Sums.Len() {
			g := r.Sums.At(i)
			fmt.Fprintf(&b, " [%d count=%d xor=%#x]", g.Group, g.Count, g.XOR)
		}
	}
	return b.String()
}

func segmentScanReply(id uint64, recs []Record, more bool, next []byte) []byte {
	w := BeginSegmentScanReply(nil, id)
	for _, r := range recs {
		w.Add(r)
	}
	return w.Finish(more, next)
}

func describeTLVs(b *strings.Builder, it TLVIter) {
	for t, ok := it.Next(); ok; t, ok = it.Next() {
		fmt.Fprintf(b, " tlv(%d)=%q", t.Type, t.Value)
	}
}

func describeRecords(b *strings.Builder, it RecordIter) {
	for r, ok := it.Next(); ok; r, ok = it.Next() {
		fmt.Fprintf(b, " {%q ts=%d flags=%#x %q}", r.Key, r.TS, r.Flags, r.Value)
	}
}
