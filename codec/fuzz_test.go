package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// fuzzMaxFrame keeps fuzz inputs that announce huge bodies cheap to reject.
const fuzzMaxFrame = 1 << 20

func addSeeds(f *testing.F, samples []sample) {
	for _, s := range samples {
		if len(s.frame) < 4096 {
			f.Add(s.frame)
			f.Add(s.frame[:len(s.frame)/2])
		}
	}
}

func FuzzHeader(f *testing.F) {
	addSeeds(f, requestSamples())
	addSeeds(f, replySamples())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b, fuzzMaxFrame)
		if err != nil {
			return
		}
		if h.FrameLen() > fuzzMaxFrame || h.Flags&^knownHeaderFlags != 0 {
			t.Fatalf("accepted %+v", h)
		}
		if got := appendHeader(nil, h.Op, h.Status, h.Flags, h.ID, int(h.BodyLen)); !bytes.Equal(got, b[:HeaderSize]) {
			t.Fatalf("header % x re-encodes as % x", b[:HeaderSize], got)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	addSeeds(f, requestSamples())
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := DecodeRequest(b, &r); err != nil {
			if !isCodecError(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Every accepted frame has exactly one encoding.
		if got := encodeRequest(&r); !bytes.Equal(got, b) {
			t.Fatalf("frame % x\nre-encodes as % x", b, got)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	addSeeds(f, replySamples())
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Reply
		if err := DecodeReply(b, &r); err != nil {
			if !isCodecError(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if got := encodeReply(&r); !bytes.Equal(got, b) {
			t.Fatalf("frame % x\nre-encodes as % x", b, got)
		}
	})
}

// FuzzStream feeds a byte stream to a framer in pieces, as a socket delivers it, and checks
// that the frames and the final error do not depend on where the stream was cut.
func FuzzStream(f *testing.F) {
	var stream []byte
	for _, s := range requestSamples() {
		if len(s.frame) < 4096 {
			stream = append(stream, s.frame...)
		}
	}
	f.Add(stream, []byte{1, 5, 16, 17, 200})
	f.Add(stream[:len(stream)-3], []byte{0})
	f.Add(append(AppendGet(nil, 1, []byte("k")), 0xA8, 0), []byte{3})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		whole := runFramer(t, [][]byte{stream})
		var pieces [][]byte
		rest := stream
		for _, c := range cuts {
			n := min(int(c), len(rest))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		pieces = append(pieces, rest)
		if split := runFramer(t, pieces); split != whole {
			t.Fatalf("whole stream:\n%s\nin pieces:\n%s", whole, split)
		}
	})
}

// runFramer frames and decodes pieces the way the peer server does (header first, then
// the whole frame once it is buffered) and returns a transcript.
func runFramer(t *testing.T, pieces [][]byte) string {
	var (
		out bytes.Buffer
		buf []byte
		req Request
	)
	for _, p := range pieces {
		buf = append(buf, p...)
		for {
			h, err := ParseHeader(buf, fuzzMaxFrame)
			if errors.Is(err, ErrTruncated) {
				break
			}
			if err != nil {
				fmt.Fprintf(&out, "stream error: %v\n", err)
				return out.String()
			}
			if len(buf) < h.FrameLen() {
				break
			}
			frame := buf[:h.FrameLen():h.FrameLen()]
			if err := DecodeRequest(frame, &req); err != nil {
				fmt.Fprintf(&out, "frame error: %v\n", err)
			} else {
				fmt.Fprintf(&out, "%s\n", describeRequest(&req))
			}
			buf = buf[h.FrameLen():]
		}
	}
	fmt.Fprintf(&out, "%d bytes left\n", len(buf))
	return out.String()
}

func isCodecError(err error) bool {
	for _, e := range []error{ErrTruncated, ErrTooLarge, ErrBadMagic, ErrUnknownOp, ErrCorrupt} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Guard against the fuzz seeds silently losing coverage of a length field.
func TestFuzzSeedsDecode(t *testing.T) {
	for _, s := range requestSamples() {
		if binary.BigEndian.Uint32(s.frame[4:8]) != uint32(len(s.frame)-HeaderSize) {
			t.Fatalf("%s: bad body length", s.name)
		}
	}
}
