package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestParseHeader(t *testing.T) {
	valid := AppendGet(nil, 0x0102030405060708, []byte("key")) // 16 + 7 bytes
	f := func(name string, mutate func(b []byte) []byte, maxFrame int, want Header, wantErr error) {
		t.Helper()
		b := mutate(append([]byte(nil), valid...))
		h, err := ParseHeader(b, maxFrame)
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: err = %v, want %v", name, err, wantErr)
		}
		if err == nil && h != want {
			t.Fatalf("%s: header = %+v, want %+v", name, h, want)
		}
	}
	same := func(b []byte) []byte { return b }
	setByte := func(i int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[i] = v; return b }
	}
	get := Header{Op: OpGet, BodyLen: 7, ID: 0x0102030405060708}
	f("valid", same, 0, get, nil)
	f("header only", func(b []byte) []byte { return b[:HeaderSize] }, 0, get, nil)
	for n := 0; n < HeaderSize; n++ {
		f("short", func(b []byte) []byte { return b[:n] }, 0, Header{}, ErrTruncated)
	}
	// Byte 0: magic.
	f("magic", setByte(0, Magic^1), 0, Header{}, ErrBadMagic)
	// Byte 1: op, any value (unknown ops are rejected by the body decoders, not here).
	f("op", setByte(1, 0xFF), 0, Header{Op: 0xFF, BodyLen: 7, ID: get.ID}, nil)
	// Byte 2: status, any value.
	f("status", setByte(2, 0x85), 0, Header{Op: OpGet, Status: 0x85, BodyLen: 7, ID: get.ID}, nil)
	// Byte 3: flags, only FlagReply is defined.
	f("flag reply", setByte(3, FlagReply), 0, Header{Op: OpGet, Flags: FlagReply, BodyLen: 7, ID: get.ID}, nil)
	for bit := 1; bit < 8; bit++ {
		f("unknown flag", setByte(3, 1<<bit), 0, Header{}, ErrCorrupt)
	}
	// Bytes 4-7: body length, checked against maxFrame (which counts the header).
	f("at limit", same, HeaderSize+7, get, nil)
	f("over limit", same, HeaderSize+6, Header{}, ErrTooLarge)
	f("tiny limit", same, 1, Header{}, ErrTooLarge)
	f("max length", func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], math.MaxUint32); return b }, 0, Header{}, ErrTooLarge)
	f("max length, no limit", func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], math.MaxUint32); return b },
		math.MaxInt, Header{Op: OpGet, BodyLen: math.MaxUint32, ID: get.ID}, nil)
	f("default limit", func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], DefaultMaxFrame-HeaderSize); return b },
		0, Header{Op: OpGet, BodyLen: DefaultMaxFrame - HeaderSize, ID: get.ID}, nil)
	f("default limit+1", func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], DefaultMaxFrame-HeaderSize+1); return b },
		0, Header{}, ErrTooLarge)
	// Bytes 8-15: id, any value.
	f("id", func(b []byte) []byte { binary.BigEndian.PutUint64(b[8:], math.MaxUint64); return b },
		0, Header{Op: OpGet, BodyLen: 7, ID: math.MaxUint64}, nil)

	// Errors after a sound magic still return the header, so a reply can be addressed.
	b := append([]byte(nil), valid...)
	h, err := ParseHeader(b, 10)
	if !errors.Is(err, ErrTooLarge) || h.ID != get.ID || h.FrameLen() != len(valid) {
		t.Fatalf("too large: h=%+v err=%v", h, err)
	}
}

func TestRoundTrip(t *testing.T) {
	var req Request
	for _, s := range requestSamples() {
		if err := DecodeRequest(s.frame, &req); err != nil {
			t.Fatalf("request %s: %v", s.name, err)
		}
		if got := encodeRequest(&req); !bytes.Equal(got, s.frame) {
			t.Fatalf("request %s: re-encoded frame differs\n got %x\nwant %x", s.name, got, s.frame)
		}
	}
	var rep Reply
	for _, s := range replySamples() {
		if err := DecodeReply(s.frame, &rep); err != nil {
			t.Fatalf("reply %s: %v", s.name, err)
		}
		if got := encodeReply(&rep); !bytes.Equal(got, s.frame) {
			t.Fatalf("reply %s: re-encoded frame differs\n got %x\nwant %x", s.name, got, s.frame)
		}
	}
}

// TestDecodedFields checks decoded values against the encoder arguments (TestRoundTrip alone
// would accept an encoder and decoder that agree on a wrong layout).
func TestDecodedFields(t *testing.T) {
	var r Request
	f := func(frame []byte, want string) {
		t.Helper()
		if err := DecodeRequest(frame, &r); err != nil {
			t.Fatal(err)
		}
		if got := describeRequest(&r); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
	f(AppendHello(nil, 0, 1, 2, []byte("n1"), TLV{Type: 5, Value: []byte("x")}), `request hello id=0 versions=1..2 node="n1" tlv(5)="x"`)
	f(AppendPing(nil, 1, []byte("p")), `request ping id=1 payload="p"`)
	f(AppendGet(nil, 2, []byte("k")), `request get id=2 key="k"`)
	f(AppendStat(nil, 3, []byte("k")), `request stat id=3 key="k"`)
	f(AppendSet(nil, 4, []byte("k"), -7, Tombstone, nil), `request set id=4 key="k" ts=-7 flags=0x1 value=""`)
	f(AppendBatchSet(nil, 5, []Record{recA, recB}), `request batchset id=5 {"a" ts=1 flags=0x0 "va"} {"bb" ts=-1 flags=0x1 ""}`)
	f(AppendScan(nil, 6, []byte("a"), nil, 10, 20, ScanValues), `request scan id=6 start="a" end="" limit=10 limitbytes=20 mode=1`)

	var rep Reply
	g := func(frame []byte, want string) {
		t.Helper()
		if err := DecodeReply(frame, &rep); err != nil {
			t.Fatal(err)
		}
		if got := describeReply(&rep); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
	g(AppendHelloReply(nil, 0, 1, []byte("s")), `reply hello id=0 status=ok version=1 node="s"`)
	g(AppendGetReply(nil, 1, StatusOK, 5, 0, []byte("v")), `reply get id=1 status=ok ts=5 flags=0x0 value="v"`)
	g(AppendStatReply(nil, 2, StatusNotFound, 0, 0), `reply stat id=2 status=not found ts=0 flags=0x0`)
	g(AppendSetReply(nil, 3, StatusStale, 9), `reply set id=3 status=stale ts=9`)
	g(AppendBatchSetReply(nil, 4, []Result{{StatusApplied, 1}, {StatusStale, 2}}), `reply batchset id=4 status=ok [applied 1] [stale 2]`)
	g(AppendScanReply(nil, 5, []Record{recA}, true, []byte("b")), `reply scan id=5 status=ok more=true next="b" {"a" ts=1 flags=0x0 "va"}`)
	g(AppendErrorReply(nil, OpSet, 7, StatusError, "boom"), `reply set id=7 status=error msg="boom"`)
}

// TestTruncated cuts every sample frame at every length: a prefix of a frame is always
// ErrTruncated, never a panic, another error or a read past the prefix.
func TestTruncated(t *testing.T) {
	var req Request
	var rep Reply
	for _, s := range requestSamples() {
		for n := 0; n < len(s.frame); n++ {
			prefix := s.frame[:n:n] // cap == len: any over-read panics
			if err := DecodeRequest(prefix, &req); !errors.Is(err, ErrTruncated) {
				t.Fatalf("request %s cut at %d: err = %v", s.name, n, err)
			}
			if n >= HeaderSize {
				// The header alone parses: a stream reader waits for the rest.
				if _, err := ParseHeader(prefix, 0); err != nil {
					t.Fatalf("request %s cut at %d: ParseHeader: %v", s.name, n, err)
				}
			}
		}
	}
	for _, s := range replySamples() {
		for n := 0; n < len(s.frame); n++ {
			if err := DecodeReply(s.frame[:n:n], &rep); !errors.Is(err, ErrTruncated) {
				t.Fatalf("reply %s cut at %d: err = %v", s.name, n, err)
			}
		}
	}
}

// TestBodyBoundaries moves every length and count field one byte past the end of its body
// (and a key length to 0 and past MaxKeyLen): each must be ErrCorrupt, and so must a byte
// appended to a body.
func TestBodyBoundaries(t *testing.T) {
	var req Request
	var rep Reply
	decodeReq := func(b []byte) error { return DecodeRequest(b, &req) }
	decodeRep := func(b []byte) error { return DecodeReply(b, &rep) }
	// f sets the u32 (or u16) at off in frame to v and expects ErrCorrupt.
	f := func(name string, frame []byte, off, width int, v uint32, decode func([]byte) error) {
		t.Helper()
		b := append([]byte(nil), frame...)
		if width == 2 {
			binary.BigEndian.PutUint16(b[off:], uint16(v))
		} else {
			binary.BigEndian.PutUint32(b[off:], v)
		}
		if err := decode(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	h := HeaderSize
	key := []byte("key")

	get := AppendGet(nil, 1, key)
	f("get key+1", get, h, 4, 4, decodeReq)
	f("get key-1", get, h, 4, 2, decodeReq) // leaves a trailing byte
	f("get key 0", get, h, 4, 0, decodeReq)
	f("get key max", get, h, 4, math.MaxUint32, decodeReq)
	longKey := AppendGet(nil, 1, append(bigKey, 'x'))
	if err := decodeReq(longKey); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("key of MaxKeyLen+1: %v", err)
	}

	// Set: ts(8) flags(1) klen(4) key vlen(4) value.
	set := AppendSet(nil, 1, key, 5, 0, []byte("value"))
	f("set key+1", set, h+9, 4, 4, decodeReq)
	f("set value+1", set, h+9+4+3, 4, 6, decodeReq)
	f("set value-1", set, h+9+4+3, 4, 4, decodeReq)

	hello := AppendHello(nil, 0, 1, 1, []byte("node"), TLV{Type: 1, Value: []byte("tlv")})
	f("hello node+1", hello, h+8, 2, 5+2+4+3+1, decodeReq)
	f("hello tlv+1", hello, h+8+2+4+2, 4, 4, decodeReq)
	f("hello tlv-1", hello, h+8+2+4+2, 4, 2, decodeReq)

	batch := AppendBatchSet(nil, 1, []Record{recA, recB})
	f("batch count+1", batch, h, 4, 3, decodeReq)
	f("batch count-1", batch, h, 4, 1, decodeReq)
	f("batch count max", batch, h, 4, math.MaxUint32, decodeReq)
	f("batch rec key+1", batch, h+4+9, 4, 2, decodeReq)

	scan := AppendScan(nil, 1, []byte("a"), []byte("b"), 1, 2, ScanKeys)
	f("scan start+1", scan, h, 4, 2+4+1+4+4+1+1, decodeReq)
	f("scan end+1", scan, h+4+1, 4, 1+4+4+1+1, decodeReq)
	f("scan flags", scan, len(scan)-4, 4, 4, decodeReq)      // sets an unknown scan flag bit (last byte)
	f("scan flags both", scan, len(scan)-4, 4, 3, decodeReq) // values and hashes at once

	gr := AppendGetReply(nil, 1, StatusOK, 1, 0, []byte("v"))
	f("get reply value+1", gr, h+9, 4, 2, decodeRep)
	f("get reply value-1", gr, h+9, 4, 0, decodeRep)
	er := AppendErrorReply(nil, OpGet, 1, StatusError, "msg")
	f("error msg+1", er, h, 2, 4, decodeRep)
	f("error msg-1", er, h, 2, 2, decodeRep)
	br := AppendBatchSetReply(nil, 1, []Result{{StatusApplied, 1}})
	f("batch reply count+1", br, h, 4, 2, decodeRep)
	f("batch reply count max", br, h, 4, math.MaxUint32, decodeRep)
	f("batch reply bad status", br, h+4-3, 4, uint32(StatusOK), decodeRep) // result status byte -> 0
	sr := AppendScanReply(nil, 1, []Record{recA}, false, []byte("n"))
	f("scan reply count+1", sr, h+1, 4, 2, decodeRep)
	f("scan reply next+1", sr, len(sr)-5, 4, 2, decodeRep)
	f("scan reply flags", sr, h-3, 4, 2, decodeRep) // scan flags byte (first body byte) -> 2

	// A byte appended to a body (with the length fixed up) is never silently ignored.
	for _, s := range requestSamples() {
		if s.name == "ping" || s.name == "ping/payload" {
			continue // a Ping body is an opaque payload
		}
		b := append(append([]byte(nil), s.frame...), 0)
		patchBodyLen(b)
		if err := decodeReq(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("request %s + 1 byte: %v", s.name, err)
		}
	}
	for _, s := range replySamples() {
		if s.name == "ping" {
			continue
		}
		b := append(append([]byte(nil), s.frame...), 0)
		patchBodyLen(b)
		if err := decodeRep(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("reply %s + 1 byte: %v", s.name, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	var req Request
	var rep Reply
	f := func(name string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: err = %v, want %v", name, err, want)
		}
	}
	get := AppendGet(nil, 77, []byte("k"))

	unknown := append([]byte(nil), get...)
	unknown[1] = 200
	f("unknown op", DecodeRequest(unknown, &req), ErrUnknownOp)
	if req.ID != 77 || req.Op != 200 {
		t.Fatalf("unknown op: id/op not reported: %+v", req)
	}
	none := append([]byte(nil), get...)
	none[1] = byte(OpNone)
	f("op none request", DecodeRequest(none, &req), ErrUnknownOp)

	f("trailing frame", DecodeRequest(append(append([]byte(nil), get...), get...), &req), ErrCorrupt)
	f("reply as request", DecodeRequest(AppendSetReply(nil, 1, StatusApplied, 1), &req), ErrCorrupt)
	f("request as reply", DecodeReply(get, &rep), ErrCorrupt)
	withStatus := append([]byte(nil), get...)
	withStatus[2] = byte(StatusNotFound)
	f("request with status", DecodeRequest(withStatus, &req), ErrCorrupt)

	badHello := AppendHello(nil, 0, 1, 1, nil)
	badHello[HeaderSize] = 'X'
	f("hello magic", DecodeRequest(badHello, &req), ErrBadMagic)
	shortHello := AppendPing(nil, 0, []byte("TA"))
	shortHello[1] = byte(OpHello)
	f("hello short magic", DecodeRequest(shortHello, &req), ErrCorrupt)

	f("get reply stale", DecodeReply(AppendGetReply(nil, 1, StatusStale, 0, 0, nil), &rep), ErrCorrupt)
	f("set reply ok", DecodeReply(AppendSetReply(nil, 1, StatusOK, 0), &rep), ErrCorrupt)
	noneOK := AppendPingReply(nil, 0, nil)
	noneOK[1] = byte(OpNone)
	f("none reply ok", DecodeReply(noneOK, &rep), ErrCorrupt)
	unknownRep := AppendPingReply(nil, 5, nil)
	unknownRep[1] = 99
	f("unknown reply op", DecodeReply(unknownRep, &rep), ErrUnknownOp)
	if rep.ID != 5 {
		t.Fatalf("unknown reply op: id not reported")
	}
	// An error reply decodes whatever its op: its body does not depend on it.
	f("unknown op error reply", DecodeReply(AppendErrorReply(nil, 99, 5, StatusUnsupported, "no"), &rep), nil)
}

func TestHeadEncoders(t *testing.T) {
	key, value := []byte("key"), []byte("a value")
	head := AppendSetHead(nil, 3, key, 9, Tombstone, len(value))
	if whole := AppendSet(nil, 3, key, 9, Tombstone, value); !bytes.Equal(append(head, value...), whole) {
		t.Fatal("AppendSetHead + value != AppendSet")
	}
	head = AppendGetReplyHead(nil, 3, StatusOK, 9, 0, len(value))
	if whole := AppendGetReply(nil, 3, StatusOK, 9, 0, value); !bytes.Equal(append(head, value...), whole) {
		t.Fatal("AppendGetReplyHead + value != AppendGetReply")
	}
	// Encoders append: a prefix in dst is kept.
	if b := AppendPing([]byte("xy"), 1, nil); string(b[:2]) != "xy" || len(b) != 2+HeaderSize {
		t.Fatalf("AppendPing did not append: %x", b)
	}
	w := BeginScanReply([]byte("xy"), 1)
	w.Add(recA)
	if w.Len() != 1 || w.Size() != HeaderSize+1+4+RecordSize(1, 2) {
		t.Fatalf("scan writer: len %d size %d", w.Len(), w.Size())
	}
	b := w.Finish(false, nil)
	var rep Reply
	if string(b[:2]) != "xy" || DecodeReply(b[2:], &rep) != nil || rep.Records.Len() != 1 {
		t.Fatalf("scan writer with prefix: %x", b)
	}
}

func TestErrorReplyMessage(t *testing.T) {
	long := string(bytes.Repeat([]byte{'m'}, MaxMessageLen+10))
	var rep Reply
	if err := DecodeReply(AppendErrorReply(nil, OpGet, 1, StatusError, long), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Msg) != MaxMessageLen {
		t.Fatalf("message not truncated: %d bytes", len(rep.Msg))
	}
	defer func() {
		if recover() == nil {
			t.Fatal("AppendErrorReply accepted a non-error status")
		}
	}()
	AppendErrorReply(nil, OpGet, 1, StatusOK, "")
}

func TestNegotiateVersion(t *testing.T) {
	f := func(lo, hi, want uint16, wantErr error) {
		t.Helper()
		v, err := NegotiateVersion(lo, hi)
		if !errors.Is(err, wantErr) || v != want {
			t.Fatalf("NegotiateVersion(%d, %d) = %d, %v; want %d, %v", lo, hi, v, err, want, wantErr)
		}
	}
	f(MinVersion, MaxVersion, MaxVersion, nil)
	f(0, math.MaxUint16, MaxVersion, nil)
	f(MaxVersion+1, MaxVersion+5, 0, ErrVersion)
	f(0, MinVersion-1, 0, ErrVersion)
	f(2, 1, 0, ErrVersion)
}

func TestDecodedSlicesCannotClobber(t *testing.T) {
	// Appending to a decoded key must not overwrite the value that follows it in the frame.
	frame := AppendSet(nil, 1, []byte("k"), 1, 0, []byte("value"))
	var r Request
	if err := DecodeRequest(frame, &r); err != nil {
		t.Fatal(err)
	}
	_ = append(r.Key, "XXXXXXXXXX"...)
	if string(r.Value) != "value" {
		t.Fatalf("value clobbered: %q", r.Value)
	}
}

func TestStrings(t *testing.T) {
	for op := OpNone; op <= numOps; op++ {
		if op.String() == "" {
			t.Fatalf("op %d has no name", op)
		}
	}
	if OpNone.Known() || opDigest.Known() || !OpPurge.Known() || numOps.Known() {
		t.Fatal("Op.Known")
	}
	for _, s := range []Status{StatusOK, StatusNotFound, StatusApplied, StatusStale, StatusError, StatusBadRequest,
		StatusTooLarge, StatusUnsupported, StatusVersion, StatusUnavailable, StatusHandshake, 0x7F, 0xFF} {
		if s.String() == "" || s.IsError() != (s >= 0x80) {
			t.Fatalf("status %#x", uint8(s))
		}
	}
}
