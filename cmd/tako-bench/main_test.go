package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{{"-workload", "z"}, {"-size", "12q"}, {"compare", "-only", "mysql"}, {"compare", "-layout", "racks"}, {"-nope"},
		{"chaos", "-scenario", "nope"}, {"chaos", "-nope"}, {"chaos", "extra"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}

func TestRunUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"-proto", "redis", "-addr", addr, "-n", "1", "-q"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "refused") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

// TestChaosAcks runs the shortest scenario end to end: cluster, nemesis, checker, verdict.
func TestChaosAcks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	var out, errb bytes.Buffer
	code := run([]string{"chaos", "-scenario", "acks", "-q"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "verdict: ok") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
}
