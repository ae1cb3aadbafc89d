package chaos

import (
	"fmt"
	"os/exec"
	"strings"
)

// binaries are the programs a cluster runs and the test flags they support: the harness
// adapts to binaries that predate a flag (no interposer without -listen; a clock-skew
// scenario skips without -clock-offset) instead of failing to start them.
type binaries struct {
	node, proxy string
	listen      bool // tako-node -listen
	nodeSkew    bool // tako-node -clock-offset
	proxySkew   bool // tako-proxy -clock-offset
}

// findBinaries resolves tako-node and tako-proxy with find and probes their flags.
func findBinaries(find func(name string) (string, error)) (*binaries, error) {
	b := &binaries{}
	var err error
	if b.node, err = find("tako-node"); err != nil {
		return nil, err
	}
	if b.proxy, err = find("tako-proxy"); err != nil {
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
	b.listen = strings.Contains(nodeFlags, "-listen")
	b.nodeSkew = strings.Contains(nodeFlags, "-clock-offset")
	b.proxySkew = strings.Contains(proxyFlags, "-clock-offset")
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
