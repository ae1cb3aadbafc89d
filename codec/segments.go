package codec

import "encoding/binary"

// Anti-entropy ops. A segment is one of the 65536 slices of the ring named
// by the top 16 bits of a key's ring hash; the store keeps, per segment, the
// XOR of its records' hashes and their count. Replicas compare those sums
// (Sums) and list the records of the segments that differ (SegmentScan).

// SegmentRange is the segments Lo..Hi, both inclusive.
type SegmentRange struct{ Lo, Hi uint16 }

// Sum is the summary of a group of segments in a Sums reply.
type Sum struct {
	Group uint16 // segment >> shift
	Count uint64
	XOR   uint64
}

const (
	segmentRangeSize = 4
	sumSize          = 2 + 8 + 8
	// MaxSumShift groups all segments into one sum.
	MaxSumShift = 16
)

// AppendSums appends a Sums request: the sums of the segments in ranges,
// grouped by segment >> shift.
func AppendSums(dst []byte, id uint64, shift uint8, ranges []SegmentRange) []byte {
	dst = appendHeader(dst, OpSums, StatusOK, 0, id, 1+4+segmentRangeSize*len(ranges))
	dst = append(dst, shift)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(ranges)))
	for _, r := range ranges {
		dst = binary.BigEndian.AppendUint16(dst, r.Lo)
		dst = binary.BigEndian.AppendUint16(dst, r.Hi)
	}
	return dst
}

// AppendSumsReply appends a Sums reply.
func AppendSumsReply(dst []byte, id uint64, sums []Sum) []byte {
	dst = appendHeader(dst, OpSums, StatusOK, FlagReply, id, 4+sumSize*len(sums))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(sums)))
	for _, s := range sums {
		dst = binary.BigEndian.AppendUint16(dst, s.Group)
		dst = binary.BigEndian.AppendUint64(dst, s.Count)
		dst = binary.BigEndian.AppendUint64(dst, s.XOR)
	}
	return dst
}

// AppendSegmentScan appends a SegmentScan request: at most limit records of
// segment seg with keys after after (empty: from the first), in key order.
func AppendSegmentScan(dst []byte, id uint64, seg uint16, after []byte, limit uint32) []byte {
	dst = appendHeader(dst, OpSegmentScan, StatusOK, 0, id, 2+4+len(after)+4)
	dst = binary.BigEndian.AppendUint16(dst, seg)
	dst = appendBytes32(dst, after)
	return binary.BigEndian.AppendUint32(dst, limit)
}

// BeginSegmentScanReply starts a SegmentScan reply appended to dst; its
// records carry their 8-byte record hash as the value. It is finished like
// a Scan reply.
func BeginSegmentScanReply(dst []byte, id uint64) ScanReplyWriter {
	var w ScanReplyWriter
	w.l.begin(dst, OpSegmentScan, FlagReply, id, 0)
	return w
}

// ranges reads a counted list of segment ranges, each with Lo <= Hi, in
// ascending order without overlap: so a request names each segment at most
// once and its reply holds at most NumSegments sums, however many ranges it
// lists (overlapping ranges let a few hundred bytes ask for gigabytes).
func (r *body) ranges(field string) SegmentRanges {
	n := r.u32(field)
	b := r.bytes(uint64(n)*segmentRangeSize, field)
	next := 0 // the lowest segment the next range may start at
	for i := 0; i < len(b); i += segmentRangeSize {
		lo, hi := int(binary.BigEndian.Uint16(b[i:])), int(binary.BigEndian.Uint16(b[i+2:]))
		switch {
		case lo > hi:
			r.fail(field, "hold a range that ends before it starts")
			return SegmentRanges{}
		case lo < next:
			r.fail(field, "overlap or are out of order")
			return SegmentRanges{}
		}
		next = hi + 1
	}
	return SegmentRanges{b: b}
}

// sums reads a counted list of sums.
func (r *body) sums(field string) Sums {
	n := r.u32(field)
	return Sums{b: r.bytes(uint64(n)*sumSize, field)}
}

// SegmentRanges is the decoded range list of a Sums request.
type SegmentRanges struct{ b []byte }

// Len is the number of ranges.
func (s SegmentRanges) Len() int { return len(s.b) / segmentRangeSize }

// At returns range i.
func (s SegmentRanges) At(i int) SegmentRange {
	p := s.b[i*segmentRangeSize:]
	return SegmentRange{Lo: binary.BigEndian.Uint16(p), Hi: binary.BigEndian.Uint16(p[2:])}
}

// Sums is the decoded sum list of a Sums reply.
type Sums struct{ b []byte }

// Len is the number of sums.
func (s Sums) Len() int { return len(s.b) / sumSize }

// At returns sum i.
func (s Sums) At(i int) Sum {
	p := s.b[i*sumSize:]
	return Sum{Group: binary.BigEndian.Uint16(p), Count: binary.BigEndian.Uint64(p[2:]), XOR: binary.BigEndian.Uint64(p[10:])}
}

// AppendPurge appends a Purge request: remove each of recs from the store
// if its stored record is still exactly that one (timestamp, kind, value).
// The reply is a BatchSet reply with op Purge: Applied for a record
// removed, Stale for one kept.
func AppendPurge(dst []byte, id uint64, recs []Record) []byte {
	var w BatchSetWriter
	w.l.begin(dst, OpPurge, 0, id)
	for _, r := range recs {
		w.Add(r)
	}
	return w.Finish()
}

// AppendPurgeReply appends a Purge reply.
func AppendPurgeReply(dst []byte, id uint64, results []Result) []byte {
	dst = appendHeader(dst, OpPurge, StatusOK, FlagReply, id, 4+len(results)*resultSize)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(results)))
	for _, r := range results {
		dst = AppendResult(dst, r)
	}
	return dst
}
