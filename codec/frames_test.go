package codec

import (
	"bufio"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestFrames decodes the annotated frames of testdata/frames (format described at its top)
// and, for valid frames, checks that the encoders produce exactly those bytes.
func TestFrames(t *testing.T) {
	f, err := os.Open("testdata/frames")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		kind  string
		hexed strings.Builder
		line  int
		n     int
	)
	check := func(want string) {
		t.Helper()
		frame, err := hex.DecodeString(hexed.String())
		if err != nil {
			t.Fatalf("line %d: bad hex: %v", line, err)
		}
		var got string
		var reencoded []byte
		switch kind {
		case "request":
			var r Request
			if err := DecodeRequest(frame, &r); err != nil {
				got = "error: " + err.Error()
			} else {
				got, reencoded = describeRequest(&r), encodeRequest(&r)
			}
		case "reply":
			var r Reply
			if err := DecodeReply(frame, &r); err != nil {
				got = "error: " + err.Error()
			} else {
				got, reencoded = describeReply(&r), encodeReply(&r)
			}
		default:
			t.Fatalf("line %d: block starts with %q, want request or reply", line, kind)
		}
		if got != want {
			t.Errorf("line %d:\n got %s\nwant %s", line, got, want)
		}
		if reencoded != nil && string(reencoded) != string(frame) {
			t.Errorf("line %d: encoder gives % x", line, reencoded)
		}
		n++
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		switch {
		case text == "":
		case kind == "":
			kind = text
		case strings.HasPrefix(text, "=>"):
			check(strings.TrimSpace(strings.TrimPrefix(text, "=>")))
			kind = ""
			hexed.Reset()
		default:
			hexed.WriteString(strings.Join(strings.Fields(text), ""))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("only %d frames checked", n)
	}
}
