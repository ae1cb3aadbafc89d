package launcher

import (
	"fmt"
	"syscall"
	"time"
)

// reapTimeout bounds the wait for a SIGKILLed child to be reaped.
const reapTimeout = 5 * time.Second

// stopAll stops every child still running.
func (c *cluster) stopAll() {
	running := live(c.children)
	if len(running) == 0 {
		return
	}
	fmt.Fprintf(c.o.Out, "tako-cluster: stopping %d processes\n", len(running))
	c.stop(running)
	fmt.Fprintln(c.o.Out, "tako-cluster: stopped")
}

// stop sends SIGTERM to every child in cs, waits up to StopTimeout for
// them, SIGKILLs the rest and reaps them all. Their exits are expected:
// follow does not report them again.
func (c *cluster) stop(cs []*child) {
	for _, ch := range cs {
		ch.expected = true
		ch.signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(c.o.StopTimeout)
	for _, ch := range cs {
		if !waitDone(ch, time.Until(deadline)) {
			fmt.Fprintf(c.o.Out, "tako-cluster: %s (pid %d) did not stop within %v: killing it\n",
				ch.spec.Name, ch.pid(), c.o.StopTimeout)
			ch.signal(syscall.SIGKILL)
		}
	}
	for _, ch := range cs {
		if !waitDone(ch, reapTimeout) {
			fmt.Fprintf(c.o.Out, "tako-cluster: %s (pid %d) survived SIGKILL for %v\n", ch.spec.Name, ch.pid(), reapTimeout)
		} else if ch.err != nil && !killedBy(ch, syscall.SIGKILL) {
			fmt.Fprintf(c.o.Out, "tako-cluster: %s stopped with %s; see %s\n", ch.spec.Name, ch.exitText(), ch.spec.Log)
		}
	}
}

// live returns the children of cs that have not exited.
func live(cs []*child) []*child {
	var out []*child
	for _, ch := range cs {
		if !ch.exited() {
			out = append(out, ch)
		}
	}
	return out
}

func waitDone(ch *child, d time.Duration) bool {
	if d <= 0 {
		return ch.exited()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch.done:
		return true
	case <-t.C:
		return false
	}
}

func killedBy(ch *child, sig syscall.Signal) bool {
	ws, ok := ch.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
