package launcher

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// printTable prints one row per child: pid, where it listens, its log.
func (c *cluster) printTable(cs []*child) {
	tw := tabwriter.NewWriter(c.o.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tLISTENS\tLOG")
	for _, ch := range cs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", ch.spec.Name, ch.pid(), ch.spec.Listen, ch.spec.Log)
	}
	tw.Flush()
}

// printHints ends the start-up report.
func (c *cluster) printHints() {
	out := c.o.Out
	if len(c.o.Skip) > 0 {
		fmt.Fprintf(out, "skipped (-s): %s\n", strings.Join(c.o.Skip, ", "))
	}
	if len(c.o.ProxyPorts) > 0 {
		p := c.o.ProxyPorts[0]
		fmt.Fprintf(out, "try: curl --data-binary @FILE http://localhost:%d/values/KEY; curl http://localhost:%d/values/KEY\n", p, p)
	}
	fmt.Fprintf(out, "Following %s: nodes it adds are started, nodes it drops are stopped once they have handed off their data.\n", c.o.ConfigPath)
	fmt.Fprintln(out, "Ctrl-C (or SIGTERM) stops every process.")
}

// reportExit tells about a child that exited on its own: "stopped" when it
// exited cleanly, with the tail of its log when it did not.
func (c *cluster) reportExit(ch *child) {
	alive := len(live(c.children))
	if ch.err == nil {
		fmt.Fprintf(c.o.Out, "tako-cluster: %s (pid %d) stopped (exit status 0); %d processes still running\n",
			ch.spec.Name, ch.pid(), alive)
		return
	}
	fmt.Fprintf(c.o.Out, "tako-cluster: %s (pid %d) exited unexpectedly: %s; %d processes still running. Last lines of %s:\n%s",
		ch.spec.Name, ch.pid(), ch.exitText(), alive, ch.spec.Log, ch.logTail(10))
}
