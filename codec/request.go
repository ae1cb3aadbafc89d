package codec

import (
	"encoding/binary"
	"fmt"
)

// Request is a decoded request. Its slices point into the frame passed to DecodeRequest:
// they stay valid only as long as the caller keeps that buffer unchanged (for the peer
// server: until the frame is discarded from the connection's read buffer). Copy what must
// outlive it. Fields an op does not use are zero.
type Request struct {
	Op Op
	ID uint64

	// Get, Stat, Set: the key. Scan: start of the range (inclusive; empty = first key).
	// SegmentScan: the key to list after.
	Key []byte
	// Scan: end of the range (exclusive; empty = unbounded).
	End []byte
	// Set: the value. Ping: the payload to echo.
	Value []byte
	// Set: the record timestamp (µs since the Unix epoch) and record flags.
	TS    int64
	Flags uint8

	// Scan: at most Limit records and about LimitBytes bytes of records (0 = server default);
	// Mode says what comes with each key, timestamp and flags.
	Limit      uint32
	LimitBytes uint32
	Mode       ScanMode

	// BatchSet: the records to write, validated. Purge: the records to
	// remove.
	Records RecordIter

	// Sums: group sums by segment >> Shift, over the segments in Ranges.
	// SegmentScan: Segment, the records after Key, at most Limit.
	Shift   uint8
	Ranges  SegmentRanges
	Segment uint16

	// Hello: the protocol versions the client speaks, its node id (empty for proxies) and
	// options.
	MinVersion uint16
	MaxVersion uint16
	NodeID     []byte
	TLVs       TLVIter
}

// ScanMode says what a Scan returns of each record besides its key,
// timestamp and flags. On the wire it is the Scan request's flags byte.
type ScanMode uint8

const (
	ScanKeys   ScanMode = 0      // nothing more
	ScanValues ScanMode = 1 << 0 // the value
	// ScanHashes puts an 8-byte hash of the value where the value would be:
	// replicas compare records that tie on timestamp without moving values.
	// The hash function is the server's (both ends of a cluster share it).
	ScanHashes ScanMode = 1 << 1
)

// AppendHello appends a Hello request offering versions min..max.
func AppendHello(dst []byte, id uint64, minV, maxV uint16, nodeID []byte, tlvs ...TLV) []byte {
	dst = appendHeader(dst, OpHello, StatusOK, 0, id, 4+2+2+2+len(nodeID)+tlvsSize(tlvs))
	dst = append(dst, HelloMagic...)
	dst = binary.BigEndian.AppendUint16(dst, minV)
	dst = binary.BigEndian.AppendUint16(dst, maxV)
	dst = appendBytes16(dst, nodeID)
	return appendTLVs(dst, tlvs)
}

// AppendPing appends a Ping request; the reply echoes payload.
func AppendPing(dst []byte, id uint64, payload []byte) []byte {
	dst = appendHeader(dst, OpPing, StatusOK, 0, id, len(payload))
	return append(dst, payload...)
}

// AppendGet appends a Get request.
func AppendGet(dst []byte, id uint64, key []byte) []byte {
	return appendKeyRequest(dst, OpGet, id, key)
}

// AppendStat appends a Stat request.
func AppendStat(dst []byte, id uint64, key []byte) []byte {
	return appendKeyRequest(dst, OpStat, id, key)
}

func appendKeyRequest(dst []byte, op Op, id uint64, key []byte) []byte {
	dst = appendHeader(dst, op, StatusOK, 0, id, 4+len(key))
	return appendBytes32(dst, key)
}

// AppendSet appends a Set request. A delete is a Set with the Tombstone flag and no value.
func AppendSet(dst []byte, id uint64, key []byte, ts int64, flags uint8, value []byte) []byte {
	return append(AppendSetHead(dst, id, key, ts, flags, len(value)), value...)
}

// AppendSetHead appends a Set request without its value bytes: the frame is complete once
// the valueLen bytes of the value follow it. This lets a sender pass a large value to
// writev as a separate buffer instead of copying it.
func AppendSetHead(dst []byte, id uint64, key []byte, ts int64, flags uint8, valueLen int) []byte {
	dst = appendHeader(dst, OpSet, StatusOK, 0, id, RecordSize(len(key), valueLen))
	return appendRecordHead(dst, key, ts, flags, valueLen)
}

// AppendBatchSet appends a BatchSet request holding recs (see BeginBatchSet to stream them).
func AppendBatchSet(dst []byte, id uint64, recs []Record) []byte {
	w := BeginBatchSet(dst, id)
	for _, r := range recs {
		w.Add(r)
	}
	return w.Finish()
}

// AppendScan appends a Scan request for the keys in [start, end) (end empty = unbounded).
func AppendScan(dst []byte, id uint64, start, end []byte, limit, limitBytes uint32, mode ScanMode) []byte {
	dst = appendHeader(dst, OpScan, StatusOK, 0, id, 4+len(start)+4+len(end)+4+4+1)
	dst = appendBytes32(dst, start)
	dst = appendBytes32(dst, end)
	dst = binary.BigEndian.AppendUint32(dst, limit)
	dst = binary.BigEndian.AppendUint32(dst, limitBytes)
	return append(dst, byte(mode))
}

func appendBytes16(dst, b []byte) []byte {
	return append(binary.BigEndian.AppendUint16(dst, uint16(len(b))), b...)
}

func appendBytes32(dst, b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(dst, uint32(len(b))), b...)
}

// DecodeRequest decodes frame, which must be exactly one request frame, into r without
// allocating (see Request for the lifetime of r's slices). On ErrUnknownOp, and on errors
// after a sound header, r.Op and r.ID are set so that the caller can address a reply.
func DecodeRequest(frame []byte, r *Request) error {
	*r = Request{}
	h, b, err := splitFrame(frame, false)
	r.Op, r.ID = h.Op, h.ID
	if err != nil {
		return err
	}
	if h.Status != StatusOK {
		return fmt.Errorf("%w: request carries status %s", ErrCorrupt, h.Status)
	}
	rd := body{b: b, op: h.Op}
	switch h.Op {
	case OpHello:
		if string(rd.bytes(uint64(len(HelloMagic)), "magic")) != HelloMagic {
			if rd.bad != "" {
				return rd.done()
			}
			return fmt.Errorf("%w: hello does not start with %q", ErrBadMagic, HelloMagic)
		}
		r.MinVersion = rd.u16("min version")
		r.MaxVersion = rd.u16("max version")
		r.NodeID = rd.bytes16("node id")
		r.TLVs = rd.tlvs("tlv")
	case OpPing:
		r.Value = rd.rest()
	case OpGet, OpStat:
		r.Key = rd.key("key")
	case OpSet:
		rec := rd.record("record")
		r.Key, r.TS, r.Flags, r.Value = rec.Key, rec.TS, rec.Flags, rec.Value
	case OpBatchSet, OpPurge:
		r.Records = rd.records("records")
	case OpScan:
		r.Key = rd.bytes32("start")
		r.End = rd.bytes32("end")
		r.Limit = rd.u32("limit")
		r.LimitBytes = rd.u32("limit bytes")
		r.Mode = ScanMode(rd.flags("scan flags", uint8(ScanValues|ScanHashes)))
		if r.Mode == ScanValues|ScanHashes {
			rd.fail("scan flags", "values and hashes are exclusive")
		}
	case OpSums:
		if r.Shift = rd.u8("shift"); r.Shift > MaxSumShift {
			rd.fail("shift", "exceeds 16")
		}
		r.Ranges = rd.ranges("ranges")
	case OpSegmentScan:
		r.Segment = rd.u16("segment")
		r.Key = rd.bytes32("after")
		r.Limit = rd.u32("limit")
	default:
		return fmt.Errorf("%w: %s", ErrUnknownOp, h.Op)
	}
	return rd.done()
}
