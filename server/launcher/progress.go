package launcher

import (
	"fmt"
	"io"
	"os"
)

// progress shows "nodes up 3/10": rewritten in place on a terminal, one line
// per change otherwise (logs, pipes).
type progress struct {
	out      io.Writer
	what     string
	total    int
	shown    int
	terminal bool
}

func newProgress(out io.Writer, what string, total int) *progress {
	p := &progress{out: out, what: what, total: total, shown: -1}
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progress) show(n int) {
	if n == p.shown {
		return
	}
	p.shown = n
	if p.terminal {
		fmt.Fprintf(p.out, "\r%s up %d/%d", p.what, n, p.total)
	} else {
		fmt.Fprintf(p.out, "%s up %d/%d\n", p.what, n, p.total)
	}
}

// end finishes a terminal's in-place line.
func (p *progress) end() {
	if p.terminal && p.shown >= 0 {
		fmt.Fprintln(p.out)
	}
}
