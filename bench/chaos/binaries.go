package chaos

import (
	"fmt"
	"os/exec"
	"strings"
)

// Features are the test flags the binaries support: the harness adapts to binaries that
// predate a flag (no interposer without -listen; a clock-skew scenario skips without
// -clock-offset) instead of failing to start them.
type Features struct {
	Listen           bool // tako-node -listen
	NodeClockOffset  bool // tako-node -clock-offset
	ProxyClockOffset bool // tako-proxy -clock-offset
}

// binaries are the programs a cluster runs.
type binaries struct {
	node, proxy, coord string
	Features
}

// findBinaries resolves tako-node, tako-proxy and tako-coordinator with find and probes their flags.
func findBinaries(find func(name string) (string, error)) (*binaries, error) {
	b := &binaries{}
	var err error
	if b.node, err = find("tako-node"); err != nil {
		return nil, err
	}
	if b.proxy, err = find("tako-proxy"); err != nil {
		return nil, err
	}
	if b.coord, err = find("tako-coordinator"); err != nil {
		return nil, err
	}
	nodeFlags, err := flagsOf(b.node)
	if err != nil {
		return nil, err
	}
	proxyFlags, err := flagsOf(b.proxy)
	if err != nil {
		return nil, err
	}
	b.Listen = strings.Contains(nodeFlags, "-listen")
	b.NodeClockOffset = strings.Contains(nodeFlags, "-clock-offset")
	b.ProxyClockOffset = strings.Contains(proxyFlags, "-clock-offset")
	return b, nil
}

// flagsOf returns the usage text of a Go program (-h exits 2 after printing it).
func flagsOf(bin string) (string, error) {
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		return "", fmt.Errorf("chaos: %s -h: %w", bin, err)
	}
	return string(out), nil
}
