package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is one tako-node or tako-proxy the harness runs. It can be killed, paused and
// started again with the same arguments; its stdout and stderr are appended to one file
// across restarts, so a crash and its restart read in order.
type process struct {
	name string
	bin  string
	args []string
	out  string // stdout+stderr

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd exited
	paused bool
}

// exitWait bounds how long a signalled process may take to exit.
const exitWait = 10 * time.Second

// start runs the process; it must not be running.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("chaos: start %s: already running", p.name)
	}
	f, err := os.OpenFile(p.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: start %s: %w", p.name, err)
	}
	defer f.Close()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, so a signal reaches the process and nothing else; and no orphan
	// survives the harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done, p.paused = cmd, done, false
	return nil
}

// running reports whether the process was started and has not exited.
func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pid returns the running process's id (0 if not started).
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *process) isPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// exited returns a channel closed when the current run ends (nil if not started).
func (p *process) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// signal sends sig to the process group; a paused process is continued first when sig
// must be handled (SIGTERM), since a stopped process would never act on it.
func (p *process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("chaos: signal %s: not running", p.name)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("chaos: %v to %s: %w", sig, p.name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return nil
}

// stop ends the process with sig (SIGKILL if it ignores sig for exitWait) and reaps it.
// Stopping a process that is not running does nothing.
func (p *process) stop(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done, paused := p.cmd, p.done, p.paused
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	pg := -cmd.Process.Pid
	_ = syscall.Kill(pg, sig)
	if paused && sig != syscall.SIGKILL {
		_ = syscall.Kill(pg, syscall.SIGCONT)
	}
	var err error
	select {
	case <-done:
	case <-time.After(exitWait):
		err = fmt.Errorf("chaos: %s ignored %v for %v, killed", p.name, sig, exitWait)
	}
	_ = syscall.Kill(pg, syscall.SIGKILL) // whatever is left of the group
	<-done
	p.mu.Lock()
	p.cmd, p.done, p.paused = nil, nil, false
	p.mu.Unlock()
	return err
}
