package kv

import (
	"bytes"
	"testing"
)

// FuzzParseHeader: any stored bytes either parse into a header whose
// payload is the rest of the input, or are refused as corrupt — never a
// panic — and a header written by putHeader always parses back.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{}, int64(0), byte(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 'v'}, int64(-1), byte(flagTombstone))
	f.Add([]byte{0xff, 1, 2, 3, 4, 5, 6, 7, 8}, int64(1<<62), byte(flagCompressed))
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 'v'}, int64(7), byte(flagHashed))
	f.Fuzz(func(t *testing.T, raw []byte, ts int64, flags byte) {
		if gotTS, gotFlags, _, payload, err := parseHeader(raw); err == nil {
			if len(raw) < headerSize(gotFlags) || gotFlags&^knownFlags != 0 || !bytes.Equal(payload, raw[headerSize(gotFlags):]) {
				t.Fatalf("accepted %x as ts=%d flags=%#x payload=%x", raw, gotTS, gotFlags, payload)
			}
			if gotFlags&flagCompressed != 0 {
				decodePayload(nil, gotFlags, payload) // must not panic on garbage
			}
		}
		flags &= knownFlags
		vhash := uint64(ts) * 0x9e3779b97f4a7c15
		buf := make([]byte, headerSize(flags), headerSize(flags)+len(raw))
		putHeader(buf, ts, flags, vhash)
		buf = append(buf, raw...)
		gotTS, gotFlags, gotHash, payload, err := parseHeader(buf)
		if err != nil || gotTS != ts || gotFlags != flags || !bytes.Equal(payload, raw) || flags&flagHashed != 0 && gotHash != vhash {
			t.Fatalf("round trip of ts=%d flags=%#x: %d %#x %v", ts, flags, gotTS, gotFlags, err)
		}
	})
}
