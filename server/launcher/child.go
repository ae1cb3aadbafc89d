package launcher

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// child is one started process.
type child struct {
	spec Spec
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait returned; then err is set
	err  error

	// expected marks an exit that needs no report when it arrives: the
	// child was stopped on purpose, or its failure was reported already.
	// Only Run's goroutine touches it.
	expected bool
}

// startChild starts spec's binary with stdout and stderr appended to its log
// file. Once it has exited (done is closed), the child is sent on exits, or
// dropped when closed is closed first: nobody reads exits any more.
func startChild(bin string, spec Spec, exits chan<- *child, closed <-chan struct{}) (*child, error) {
	logf, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", spec.Name, err)
	}
	defer logf.Close() // the child has its own descriptor once started
	cmd := exec.Command(bin, spec.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", spec.Name, bin, err)
	}
	c := &child{spec: spec, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
		select {
		case exits <- c:
		case <-closed:
		}
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the child is already reaped.
func (c *child) signal(sig syscall.Signal) {
	if !c.exited() {
		c.cmd.Process.Signal(sig) // an error only means it just exited
	}
}

// exitText describes how the child ended ("exit status 1", "signal: killed").
func (c *child) exitText() string {
	if c.err == nil {
		return "exit status 0"
	}
	return c.err.Error()
}

// logTail returns the last lines of the child's log (at most 4 KiB),
// indented for printing under a message.
func (c *child) logTail(lines int) string {
	f, err := os.Open(c.spec.Log)
	if err != nil {
		return "    (no log: " + err.Error() + ")\n"
	}
	defer f.Close()
	const max = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	var b bytes.Buffer
	for _, l := range all {
		if l != "" {
			b.WriteString("    " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "    (log is empty)\n"
	}
	return b.String()
}
