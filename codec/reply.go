package codec

import (
	"encoding/binary"
	"fmt"
)

// Reply is a decoded reply. Its slices point into the frame passed to DecodeReply and stay
// valid as long as the caller keeps that buffer unchanged. Fields an op does not use are zero.
type Reply struct {
	Op     Op
	ID     uint64
	Status Status

	// Error statuses: a short human-readable reason.
	Msg []byte

	// Get: the record (zero when NotFound). Stat: TS and Flags. Set: the timestamp now
	// current for the key (the request's when Applied, the stored newer one when Stale).
	// Ping: Value is the echoed payload.
	TS    int64
	Flags uint8
	Value []byte

	// BatchSet: one result per request record, in request order. Purge: the
	// same, Applied for a record removed, Stale for one kept (it changed).
	Results Results

	// Scan: the records in key order, whether the range continues past them, and the key to
	// start the next Scan at.
	Records RecordIter
	More    bool
	Next    []byte

	// Sums: the group sums, in group order. (SegmentScan replies fill
	// Records, More and Next as Scan replies do.)
	Sums Sums

	// Hello: the version the server chose, its node id and options.
	Version uint16
	NodeID  []byte
	TLVs    TLVIter
}

// AppendErrorReply appends an error reply (status must be an error status) carrying msg,
// truncated to MaxMessageLen bytes. op and id echo the request; a connection-level error
// that belongs to no request uses OpNone and id 0.
func AppendErrorReply(dst []byte, op Op, id uint64, status Status, msg string) []byte {
	if !status.IsError() {
		panic(fmt.Sprintf("codec: AppendErrorReply with non-error status %s", status))
	}
	if len(msg) > MaxMessageLen {
		msg = msg[:MaxMessageLen]
	}
	dst = appendHeader(dst, op, status, FlagReply, id, 2+len(msg))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

// AppendHelloReply appends the server's answer to an accepted Hello (the "HelloAck"): the
// chosen version, the server's node id and options. A refused Hello gets
// AppendErrorReply(dst, OpHello, id, StatusVersion, reason) instead.
func AppendHelloReply(dst []byte, id uint64, version uint16, nodeID []byte, tlvs ...TLV) []byte {
	dst = appendHeader(dst, OpHello, StatusOK, FlagReply, id, 2+2+len(nodeID)+tlvsSize(tlvs))
	dst = binary.BigEndian.AppendUint16(dst, version)
	dst = appendBytes16(dst, nodeID)
	return appendTLVs(dst, tlvs)
}

// AppendPingReply appends the reply to a Ping, echoing its payload.
func AppendPingReply(dst []byte, id uint64, payload []byte) []byte {
	dst = appendHeader(dst, OpPing, StatusOK, FlagReply, id, len(payload))
	return append(dst, payload...)
}

// AppendGetReply appends a Get reply: StatusOK with the record (a tombstone is a record
// too), or StatusNotFound with zero ts, flags and value.
func AppendGetReply(dst []byte, id uint64, status Status, ts int64, flags uint8, value []byte) []byte {
	return append(AppendGetReplyHead(dst, id, status, ts, flags, len(value)), value...)
}

// AppendGetReplyHead is AppendGetReply without the value bytes, for senders that pass a
// large value to writev as a separate buffer: the frame is complete once valueLen bytes follow.
func AppendGetReplyHead(dst []byte, id uint64, status Status, ts int64, flags uint8, valueLen int) []byte {
	dst = appendHeader(dst, OpGet, status, FlagReply, id, 8+1+4+valueLen)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = append(dst, flags)
	return binary.BigEndian.AppendUint32(dst, uint32(valueLen))
}

// AppendStatReply appends a Stat reply (StatusOK or StatusNotFound).
func AppendStatReply(dst []byte, id uint64, status Status, ts int64, flags uint8) []byte {
	dst = appendHeader(dst, OpStat, status, FlagReply, id, 8+1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	return append(dst, flags)
}

// AppendSetReply appends a Set reply: StatusApplied or StatusStale, and the timestamp now
// current for the key.
func AppendSetReply(dst []byte, id uint64, status Status, ts int64) []byte {
	dst = appendHeader(dst, OpSet, status, FlagReply, id, 8)
	return binary.BigEndian.AppendUint64(dst, uint64(ts))
}

// AppendBatchSetReply appends a BatchSet reply with one result per request record.
func AppendBatchSetReply(dst []byte, id uint64, results []Result) []byte {
	dst = AppendBatchSetReplyHead(dst, id, len(results))
	for _, r := range results {
		dst = AppendResult(dst, r)
	}
	return dst
}

// AppendBatchSetReplyHead appends a BatchSet reply announcing n results; the frame is
// complete once n AppendResult calls follow it.
func AppendBatchSetReplyHead(dst []byte, id uint64, n int) []byte {
	dst = appendHeader(dst, OpBatchSet, StatusOK, FlagReply, id, 4+n*resultSize)
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// AppendResult appends one BatchSet result (see AppendBatchSetReplyHead).
func AppendResult(dst []byte, r Result) []byte {
	return binary.BigEndian.AppendUint64(append(dst, byte(r.Status)), uint64(r.TS))
}

// AppendScanReply appends a Scan reply holding recs (see BeginScanReply to stream them).
func AppendScanReply(dst []byte, id uint64, recs []Record, more bool, next []byte) []byte {
	w := BeginScanReply(dst, id)
	for _, r := range recs {
		w.Add(r)
	}
	return w.Finish(more, next)
}

// DecodeReply decodes frame, which must be exactly one reply frame, into r without
// allocating. r's slices point into frame. After a sound header r.Op, r.ID and r.Status are
// set even when the body is rejected.
func DecodeReply(frame []byte, r *Reply) error {
	*r = Reply{}
	h, b, err := splitFrame(frame, true)
	r.Op, r.ID, r.Status = h.Op, h.ID, h.Status
	if err != nil {
		return err
	}
	rd := body{b: b, op: h.Op}
	if h.Status.IsError() {
		// The error body does not depend on the op: decode it even for an op this version
		// does not know (a server rejecting an op its client invented).
		r.Msg = rd.bytes16("message")
		return rd.done()
	}
	if !replyStatusOK(h.Op, h.Status) {
		if h.Op >= numOps {
			return fmt.Errorf("%w: %s", ErrUnknownOp, h.Op)
		}
		return fmt.Errorf("%w: %s reply with status %s", ErrCorrupt, h.Op, h.Status)
	}
	switch h.Op {
	case OpHello:
		r.Version = rd.u16("version")
		r.NodeID = rd.bytes16("node id")
		r.TLVs = rd.tlvs("tlv")
	case OpPing:
		r.Value = rd.rest()
	case OpGet:
		r.TS = int64(rd.u64("ts"))
		r.Flags = rd.u8("flags")
		r.Value = rd.bytes32("value")
	case OpStat:
		r.TS = int64(rd.u64("ts"))
		r.Flags = rd.u8("flags")
	case OpSet:
		r.TS = int64(rd.u64("ts"))
	case OpBatchSet, OpPurge:
		r.Results = rd.results("results")
	case OpScan, OpSegmentScan:
		r.More = rd.flags("scan flags", scanMore) != 0
		r.Records = rd.records("records")
		r.Next = rd.bytes32("next")
	case OpSums:
		r.Sums = rd.sums("sums")
	}
	return rd.done()
}

// replyStatusOK reports whether a known op may carry the non-error status s.
func replyStatusOK(op Op, s Status) bool {
	switch op {
	case OpGet, OpStat:
		return s == StatusOK || s == StatusNotFound
	case OpSet:
		return s == StatusApplied || s == StatusStale
	case OpHello, OpPing, OpBatchSet, OpScan, OpSums, OpSegmentScan, OpPurge:
		return s == StatusOK
	}
	return false
}

// results reads a counted list of BatchSet results; each status must be Applied or Stale.
func (r *body) results(field string) Results {
	n := r.u32(field)
	b := r.bytes(uint64(n)*resultSize, field)
	for i := 0; i < len(b); i += resultSize {
		if s := Status(b[i]); s != StatusApplied && s != StatusStale {
			r.fail(field, "hold a status other than applied or stale")
			return Results{}
		}
	}
	return Results{b: b}
}
