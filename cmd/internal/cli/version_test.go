package cli

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	f := func(set string, bi *debug.BuildInfo, want string) {
		t.Helper()
		if got := VersionString(set, bi); got != want {
			t.Errorf("VersionString(%q, %+v) = %q, want %q", set, bi, got, want)
		}
	}
	rev := func(r, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: r}, {Key: "vcs.modified", Value: modified}}
	}
	module := func(v string, s []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/tako-kv/tako", Version: v}, Settings: s}
	}
	f("v1.2.3", module("v0.0.0-20260101000000-0123456789ab", nil), "v1.2.3 (go1.99.1)")
	f("", module("v0.0.0-20260101000000-0123456789ab+dirty", nil), "v0.0.0-20260101000000-0123456789ab+dirty (go1.99.1)")
	f("", module("(devel)", rev("0123456789abcdef0123", "false")), "0123456789ab (go1.99.1)")
	f("", module("(devel)", rev("0123456789abcdef0123", "true")), "0123456789ab-dirty (go1.99.1)")
	f("", module("", rev("abc", "false")), "abc (go1.99.1)")
	f("", module("(devel)", nil), "devel (go1.99.1)")
	f("", nil, "devel ("+runtime.Version()+")")
	f("v9", nil, "v9 ("+runtime.Version()+")")
}

func TestWantsVersion(t *testing.T) {
	f := func(args string, want bool) {
		t.Helper()
		if got := WantsVersion(strings.Fields(args)); got != want {
			t.Errorf("WantsVersion(%q) = %v, want %v", args, got, want)
		}
	}
	f("-version", true)
	f("--version", true)
	f("-id n1 -version", true)
	f("compare -version=true", true)
	f("", false)
	f("-id n1", false)
	f("-versions", false)
	f("-version=false", false)
	f("-- -version", false)
}

func TestPrintVersion(t *testing.T) {
	var b bytes.Buffer
	PrintVersion(&b, "tako-node")
	line := b.String()
	if !strings.HasPrefix(line, "tako-node ") || !strings.HasSuffix(line, ")\n") || !strings.Contains(line, "(go") {
		t.Fatalf("PrintVersion = %q, want \"tako-node VERSION (goX.Y.Z)\\n\"", line)
	}
}
