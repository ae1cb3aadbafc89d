package codec

import (
	"encoding/binary"
)

// Record is one stored version of a key. Decoded records point into the frame they came from.
type Record struct {
	Key   []byte
	TS    int64 // microseconds since the Unix epoch
	Flags uint8 // Tombstone, ...
	Value []byte
}

// recordFixed is the size of a record without its key and value bytes:
// ts(8) flags(1) key length(4) value length(4).
const recordFixed = 8 + 1 + 4 + 4

// RecordSize is the encoded size of a record with the given key and value lengths.
func RecordSize(keyLen, valueLen int) int { return recordFixed + keyLen + valueLen }

func appendRecordHead(dst []byte, key []byte, ts int64, flags uint8, valueLen int) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	return binary.BigEndian.AppendUint32(dst, uint32(valueLen))
}

func appendRecord(dst []byte, r Record) []byte {
	return append(appendRecordHead(dst, r.Key, r.TS, r.Flags, len(r.Value)), r.Value...)
}

// record reads one record; the key must be 1..MaxKeyLen bytes.
func (r *body) record(field string) Record {
	var rec Record
	rec.TS = int64(r.u64(field))
	rec.Flags = r.u8(field)
	rec.Key = r.key(field)
	rec.Value = r.bytes32(field)
	return rec
}

// records reads a u32 count followed by that many records and returns an iterator over
// them. Every record is validated here so that RecordIter.Next cannot fail.
func (r *body) records(field string) RecordIter {
	n := r.u32(field)
	start := r.b
	// Each record takes at least recordFixed+1 bytes: reject absurd counts before looping.
	if uint64(n)*(recordFixed+1) > uint64(len(r.b)) {
		r.fail(field, "count exceeds the body")
		return RecordIter{}
	}
	for i := uint32(0); i < n && r.bad == ""; i++ {
		r.record(field)
	}
	if r.bad != "" {
		return RecordIter{}
	}
	return RecordIter{b: start[: len(start)-len(r.b) : len(start)-len(r.b)], n: int(n)}
}

// RecordIter iterates, without allocating, over the records of a decoded BatchSet request
// or Scan reply. Its records point into the decoded frame. The zero value is empty.
type RecordIter struct {
	b []byte
	n int
}

// Len is the number of records not yet returned by Next.
func (it *RecordIter) Len() int { return it.n }

// Next returns the next record, or false when there are none left.
func (it *RecordIter) Next() (Record, bool) {
	if it.n == 0 {
		return Record{}, false
	}
	r := body{b: it.b}
	rec := r.record("record")
	it.b, it.n = r.b, it.n-1
	return rec, r.bad == "" // always true: the decoder validated every record
}

// recordList appends a frame whose body holds a counted record list (BatchSet requests,
// Scan replies); the header length and the count are patched in by finish.
type recordList struct {
	buf     []byte
	start   int // offset of the frame header in buf
	countAt int // offset of the u32 record count
	n       uint32
}

func (l *recordList) begin(dst []byte, op Op, flags uint8, id uint64, prefix ...byte) {
	l.start = len(dst)
	dst = appendHeader(dst, op, StatusOK, flags, id, 0)
	dst = append(dst, prefix...)
	l.countAt = len(dst)
	l.buf = append(dst, 0, 0, 0, 0)
	l.n = 0
}

func (l *recordList) add(r Record) {
	l.buf = appendRecord(l.buf, r)
	l.n++
}

func (l *recordList) finish() []byte {
	binary.BigEndian.PutUint32(l.buf[l.countAt:], l.n)
	patchBodyLen(l.buf[l.start:])
	return l.buf
}

// BatchSetWriter appends a BatchSet request record by record, for callers that stream
// records instead of holding a []Record:
//
//	w := codec.BeginBatchSet(buf[:0], id)
//	for ... { w.Add(rec) }
//	buf = w.Finish()
type BatchSetWriter struct{ l recordList }

// BeginBatchSet starts a BatchSet request appended to dst.
func BeginBatchSet(dst []byte, id uint64) BatchSetWriter {
	var w BatchSetWriter
	w.l.begin(dst, OpBatchSet, 0, id)
	return w
}

// Add appends one record (copying its key and value).
func (w *BatchSetWriter) Add(r Record) { w.l.add(r) }

// Len is the number of records added so far.
func (w *BatchSetWriter) Len() int { return int(w.l.n) }

// Size is the size of the frame so far, header included.
func (w *BatchSetWriter) Size() int { return len(w.l.buf) - w.l.start }

// Finish completes the frame and returns dst with the frame appended.
func (w *BatchSetWriter) Finish() []byte { return w.l.finish() }

// ScanReplyWriter appends a Scan reply record by record, so that a server can stream an
// ordered iterator into the reply and stop at the request's limits (see Size).
type ScanReplyWriter struct{ l recordList }

// scanMore is bit 0 of the Scan reply flags: the range holds records past this reply.
const scanMore = 1 << 0

// BeginScanReply starts an OK Scan reply appended to dst.
func BeginScanReply(dst []byte, id uint64) ScanReplyWriter {
	var w ScanReplyWriter
	w.l.begin(dst, OpScan, FlagReply, id, 0) // reply flags byte, patched by Finish
	return w
}

// Add appends one record (copying its key and value).
func (w *ScanReplyWriter) Add(r Record) { w.l.add(r) }

// Len is the number of records added so far.
func (w *ScanReplyWriter) Len() int { return int(w.l.n) }

// Size is the size of the frame so far, header included.
func (w *ScanReplyWriter) Size() int { return len(w.l.buf) - w.l.start }

// Finish completes the reply. more says the range continues after the last record; next
// is where the following Scan should start (usually the key after the last one returned).
func (w *ScanReplyWriter) Finish(more bool, next []byte) []byte {
	if more {
		w.l.buf[w.l.countAt-1] = scanMore
	}
	binary.BigEndian.PutUint32(w.l.buf[w.l.countAt:], w.l.n)
	w.l.buf = binary.BigEndian.AppendUint32(w.l.buf, uint32(len(next)))
	w.l.buf = append(w.l.buf, next...)
	patchBodyLen(w.l.buf[w.l.start:])
	return w.l.buf
}

// Result is the outcome of one record of a BatchSet: StatusApplied or StatusStale and the
// timestamp now current for the key.
type Result struct {
	Status Status
	TS     int64
}

const resultSize = 1 + 8

// Results gives random access to the per-record results of a decoded BatchSet reply, in
// request order. The zero value is empty.
type Results struct{ b []byte }

// Len is the number of results.
func (rs Results) Len() int { return len(rs.b) / resultSize }

// At returns result i, 0 <= i < Len().
func (rs Results) At(i int) Result {
	e := rs.b[i*resultSize : (i+1)*resultSize]
	return Result{Status: Status(e[0]), TS: int64(binary.BigEndian.Uint64(e[1:]))}
}

// TLV is a typed, length-prefixed option of the handshake. Receivers ignore types they do
// not know, so new handshake features (auth proofs, ...) need no new protocol version.
type TLV struct {
	Type  uint16
	Value []byte
}

// TLV types. ONLY APPEND TO THIS LIST: the numbers are on the wire.
const (
	TLVNone uint16 = 0 // reserved, never sent
	// TLVNonce is a handshake nonce of 32 random bytes, fresh per connection: the
	// client's in its Hello, the server's in its Hello reply (doc.go, Cluster secret).
	TLVNonce uint16 = 1
	// TLVProof is a 32-byte HMAC-SHA256 proving the shared cluster secret, in the server's
	// Hello reply (one per secret the server holds). The client's proof is a Ping.
	TLVProof uint16 = 2
)

const tlvFixed = 2 + 4 // type(2) length(4)

func appendTLVs(dst []byte, tlvs []TLV) []byte {
	for _, t := range tlvs {
		dst = binary.BigEndian.AppendUint16(dst, t.Type)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(t.Value)))
		dst = append(dst, t.Value...)
	}
	return dst
}

func tlvsSize(tlvs []TLV) int {
	n := 0
	for _, t := range tlvs {
		n += tlvFixed + len(t.Value)
	}
	return n
}

// tlvs validates the TLV list that runs to the end of the body.
func (r *body) tlvs(field string) TLVIter {
	start, n := r.b, 0
	for len(r.b) > 0 && r.bad == "" {
		r.u16(field)
		r.bytes32(field)
		n++
	}
	if r.bad != "" {
		return TLVIter{}
	}
	return TLVIter{b: start, n: n}
}

// TLVIter iterates over the TLVs of a decoded Hello or Hello reply. The zero value is empty.
type TLVIter struct {
	b []byte
	n int
}

// Len is the number of TLVs not yet returned by Next.
func (it *TLVIter) Len() int { return it.n }

// Next returns the next TLV, or false when there are none left.
func (it *TLVIter) Next() (TLV, bool) {
	if it.n == 0 {
		return TLV{}, false
	}
	r := body{b: it.b}
	t := TLV{Type: r.u16("tlv")}
	t.Value = r.bytes32("tlv")
	it.b, it.n = r.b, it.n-1
	return t, r.bad == ""
}
