package launcher

import "syscall"

// sysProcAttr makes the kernel SIGKILL the child when tako-cluster dies,
// however it dies (see the package doc).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
