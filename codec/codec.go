package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Sentinel errors. Decoders wrap them with %w and the failing field; match with errors.Is.
var (
	// ErrTruncated: fewer bytes than the header announces. For a stream reader this only means
	// "wait for more input"; for a complete frame it means the frame was cut.
	ErrTruncated = errors.New("codec: truncated frame")
	// ErrTooLarge: the header announces a frame larger than the decoder's limit.
	ErrTooLarge = errors.New("codec: frame too large")
	// ErrBadMagic: the frame does not start with Magic, or a Hello lacks HelloMagic.
	ErrBadMagic = errors.New("codec: bad magic")
	// ErrUnknownOp: the header is sound but the op is not one this version knows.
	// The frame can be skipped; the connection stays usable.
	ErrUnknownOp = errors.New("codec: unknown op")
	// ErrVersion: the two ends share no protocol version.
	ErrVersion = errors.New("codec: no common protocol version")
	// ErrCorrupt: the frame is complete but its header or body is inconsistent.
	ErrCorrupt = errors.New("codec: corrupt frame")
)

// Wire constants. Changing any of them is a protocol break.
const (
	// Magic is the first byte of every frame.
	Magic byte = 0xA7
	// HelloMagic opens the body of a Hello request.
	HelloMagic = "TAKO"
	// HeaderSize is the fixed size of the frame header.
	HeaderSize = 16

	// MinVersion and MaxVersion bound the protocol versions this code speaks.
	MinVersion uint16 = 1
	MaxVersion uint16 = 1

	// MaxKeyLen is the largest key a record may carry (keys are 1..MaxKeyLen bytes).
	MaxKeyLen = 64 << 10
	// MaxMessageLen caps the message of an error reply; encoders truncate longer ones.
	MaxMessageLen = 1024
	// DefaultMaxFrame is the default decoder limit: a 64 MiB value plus room for a
	// maximal key and the fixed fields.
	DefaultMaxFrame = 64<<20 + 128<<10
)

// Header flag bits. Bits not listed here must be zero.
const (
	// FlagReply marks frames sent by the server.
	FlagReply uint8 = 1 << 0

	knownHeaderFlags = FlagReply
)

// Record flag bits (Record.Flags, Request.Flags, Reply.Flags). Unknown bits are carried
// through untouched so that newer peers can add flags without breaking older ones.
const (
	// Tombstone marks a deleted key; its value is empty.
	Tombstone uint8 = 1 << 0
)

// Op identifies the operation a frame belongs to; a reply carries the op of its request.
type Op uint8

// Operations. ONLY APPEND TO THIS LIST: the numbers are on the wire.
const (
	// OpNone is used only by connection-level error replies (request id 0), which
	// a server sends just before closing a connection it cannot parse.
	OpNone        Op = iota // 0
	OpHello                 // 1: handshake, must be the first request on a connection
	OpPing                  // 2: liveness, echoes its payload
	OpGet                   // 3: record of one key
	OpStat                  // 4: timestamp and flags of one key, no value
	OpSet                   // 5: last-write-wins write (delete = Set with Tombstone)
	OpBatchSet              // 6: many Sets, one result each
	OpScan                  // 7: ordered records of a key range
	opDigest                // 8: retired (a key-range digest no version served); never reuse
	OpSums                  // 9: summaries of hash segments (anti-entropy)
	OpSegmentScan           // 10: record hashes of one hash segment (anti-entropy)
	OpPurge                 // 11: remove records still exactly as given (tombstone GC)
	numOps
)

var opNames = [numOps]string{"none", "hello", "ping", "get", "stat", "set", "batchset", "scan", "digest", "sums", "segmentscan", "purge"}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Known reports whether this version of the protocol defines o as a request op.
func (o Op) Known() bool { return o > OpNone && o < numOps && o != opDigest }

// Status is the outcome carried in a reply header. Requests carry StatusOK (0).
// Statuses with the high bit set are errors: their body is an error message.
type Status uint8

// Statuses. ONLY APPEND TO THESE LISTS: the numbers are on the wire.
const (
	StatusOK       Status = 0 // success (Get found a record, Hello accepted, ...)
	StatusNotFound Status = 1 // Get/Stat: no record stored (not even a tombstone)
	StatusApplied  Status = 2 // Set: the write won and is stored
	StatusStale    Status = 3 // Set: a newer record is stored; reply carries its timestamp
)

// Error statuses.
const (
	StatusError       Status = 0x80 // server-side failure (storage, internal)
	StatusBadRequest  Status = 0x81 // malformed request; the server closes the connection
	StatusTooLarge    Status = 0x82 // frame exceeds the server's limit; connection closed
	StatusUnsupported Status = 0x83 // op unknown to the server; connection stays usable
	StatusVersion     Status = 0x84 // Hello: no common protocol version; connection closed
	StatusUnavailable Status = 0x85 // server shutting down or overloaded; retry elsewhere
	StatusHandshake   Status = 0x86 // a request arrived before the Hello; connection closed
	StatusDiskFull    Status = 0x87 // write refused: the node's disk is nearly full (min_free_bytes)
)

// IsError reports whether s is an error status (its reply body is an error message).
func (s Status) IsError() bool { return s&0x80 != 0 }

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotFound:
		return "not found"
	case StatusApplied:
		return "applied"
	case StatusStale:
		return "stale"
	case StatusError:
		return "error"
	case StatusBadRequest:
		return "bad request"
	case StatusTooLarge:
		return "too large"
	case StatusUnsupported:
		return "unsupported"
	case StatusVersion:
		return "version mismatch"
	case StatusUnavailable:
		return "unavailable"
	case StatusHandshake:
		return "handshake required"
	case StatusDiskFull:
		return "disk full"
	}
	return fmt.Sprintf("status(%#x)", uint8(s))
}

// Header is the fixed 16-byte prefix of every frame.
type Header struct {
	Op      Op
	Status  Status
	Flags   uint8
	BodyLen uint32
	ID      uint64
}

// FrameLen is the length of the whole frame, header included.
func (h Header) FrameLen() int { return HeaderSize + int(h.BodyLen) }

// IsReply reports whether the frame was sent by a server.
func (h Header) IsReply() bool { return h.Flags&FlagReply != 0 }

// ParseHeader decodes the header at the start of b (b may hold more than one frame, or only
// the header). It checks the magic byte, the flag bits and that the whole frame fits in
// maxFrame bytes (maxFrame <= 0 means DefaultMaxFrame). It never reads past b[HeaderSize-1].
// ErrTooLarge and ErrCorrupt come with the parsed header so that the caller can still
// address an error reply to h.ID.
func ParseHeader(b []byte, maxFrame int) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	if b[0] != Magic {
		return Header{}, ErrBadMagic
	}
	h := Header{
		Op:      Op(b[1]),
		Status:  Status(b[2]),
		Flags:   b[3],
		BodyLen: binary.BigEndian.Uint32(b[4:8]),
		ID:      binary.BigEndian.Uint64(b[8:16]),
	}
	if h.Flags&^knownHeaderFlags != 0 {
		return h, fmt.Errorf("%w: unknown header flags %#x", ErrCorrupt, h.Flags)
	}
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	if HeaderSize+uint64(h.BodyLen) > uint64(maxFrame) {
		return h, fmt.Errorf("%w: %d-byte frame exceeds limit of %d", ErrTooLarge, h.FrameLen(), maxFrame)
	}
	return h, nil
}

// NegotiateVersion picks the highest version inside both [peerMin, peerMax] and
// [MinVersion, MaxVersion], or fails with ErrVersion.
func NegotiateVersion(peerMin, peerMax uint16) (uint16, error) {
	lo, hi := max(peerMin, MinVersion), min(peerMax, MaxVersion)
	if lo > hi {
		return 0, fmt.Errorf("%w: peer speaks %d..%d, we speak %d..%d",
			ErrVersion, peerMin, peerMax, MinVersion, MaxVersion)
	}
	return hi, nil
}

// appendHeader appends a header announcing a body of bodyLen bytes.
func appendHeader(dst []byte, op Op, status Status, flags uint8, id uint64, bodyLen int) []byte {
	if bodyLen < 0 || uint64(bodyLen) > math.MaxUint32 {
		panic(fmt.Sprintf("codec: %s body of %d bytes does not fit a frame", op, bodyLen))
	}
	dst = append(dst, Magic, byte(op), byte(status), flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyLen))
	return binary.BigEndian.AppendUint64(dst, id)
}

// patchBodyLen rewrites the body length of the frame starting at frame[0] to fit frame.
func patchBodyLen(frame []byte) {
	n := len(frame) - HeaderSize
	if uint64(n) > math.MaxUint32 {
		panic(fmt.Sprintf("codec: body of %d bytes does not fit a frame", n))
	}
	binary.BigEndian.PutUint32(frame[4:8], uint32(n))
}

// splitFrame checks that b is exactly one frame in the given direction and returns its
// header and body.
func splitFrame(b []byte, reply bool) (Header, []byte, error) {
	h, err := ParseHeader(b, math.MaxInt)
	if err != nil {
		return h, nil, err
	}
	switch n := h.FrameLen(); {
	case len(b) < n:
		return h, nil, fmt.Errorf("%w: have %d of %d bytes", ErrTruncated, len(b), n)
	case len(b) > n:
		return h, nil, fmt.Errorf("%w: %d bytes after the %d-byte frame", ErrCorrupt, len(b)-n, n)
	}
	if h.IsReply() != reply {
		return h, nil, fmt.Errorf("%w: reply flag is %v, want %v", ErrCorrupt, h.IsReply(), reply)
	}
	return h, b[HeaderSize:], nil
}
