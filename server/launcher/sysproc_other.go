//go:build !linux

package launcher

import "syscall"

// sysProcAttr: without Pdeathsig, children outlive a SIGKILLed tako-cluster
// on this OS; a normal stop (signal, Ctrl-C) still stops them.
func sysProcAttr() *syscall.SysProcAttr { return nil }
