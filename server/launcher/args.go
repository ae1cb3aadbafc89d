package launcher

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultVarDir       = "./var/tako"
	DefaultStartTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	// DefaultHandoffTimeout is generous: a node hands off at the pace of
	// anti-entropy, a pass per background_healing_interval at worst.
	DefaultHandoffTimeout = 10 * time.Minute
)

// Usage is tako-cluster's synopsis.
const Usage = "usage: tako-cluster CONFIG [-p PORT]... [-s NODE]... [-v VARDIR] [-wait DURATION] [-handoff DURATION] [-token-file FILE] [-d]"

// ParseArgs parses tako-cluster's command line. Flags may come before and
// after the configuration file (`tako-cluster local_cluster.yaml -p 8080`);
// after `--` everything is positional. -h returns flag.ErrHelp after
// printing the help to out.
func ParseArgs(args []string, out io.Writer) (Options, error) {
	o := Options{VarDir: DefaultVarDir, StartTimeout: DefaultStartTimeout, StopTimeout: DefaultStopTimeout,
		HandoffTimeout: DefaultHandoffTimeout}
	fs := flag.NewFlagSet("tako-cluster", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintln(out, Usage)
		fs.PrintDefaults()
	}
	fs.Var((*portList)(&o.ProxyPorts), "p", "start a tako-proxy on this port (repeatable)")
	fs.Var((*nameList)(&o.Skip), "s", "do not start this node (repeatable; or comma-separated)")
	fs.StringVar(&o.VarDir, "v", o.VarDir, "var directory: data under VARDIR/<id>, logs in VARDIR/<name>.log")
	fs.DurationVar(&o.StartTimeout, "wait", o.StartTimeout, "how long each start-up phase may take")
	fs.DurationVar(&o.HandoffTimeout, "handoff", o.HandoffTimeout,
		"how long a node the configuration no longer names may take to hand off its data before it is stopped anyway")
	fs.BoolVar(&o.Debug, "d", false, "debug logging in every process")
	fs.StringVar(&o.TokenFile, "token-file", "", "the bearer token `FILE` tako-cluster and every child send (default: the configuration's http_tokens_file)")

	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return Options{}, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	switch len(positional) {
	case 0:
		return Options{}, errors.New("missing the configuration file\n" + Usage)
	case 1:
		o.ConfigPath = positional[0]
	default:
		return Options{}, fmt.Errorf("one configuration file expected, got %q\n%s", positional, Usage)
	}
	if o.StartTimeout <= 0 {
		return Options{}, fmt.Errorf("-wait %v: must be positive", o.StartTimeout)
	}
	if o.HandoffTimeout <= 0 {
		return Options{}, fmt.Errorf("-handoff %v: must be positive", o.HandoffTimeout)
	}
	return o, nil
}

// portList is a repeatable -p.
type portList []int

func (p *portList) String() string { return fmt.Sprint([]int(*p)) }

func (p *portList) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1..65535", s)
	}
	*p = append(*p, n)
	return nil
}

// nameList is a repeatable, comma-separable -s.
type nameList []string

func (l *nameList) String() string { return strings.Join(*l, ",") }

func (l *nameList) Set(s string) error {
	for name := range strings.SplitSeq(s, ",") {
		if name = strings.TrimSpace(name); name != "" {
			*l = append(*l, name)
		}
	}
	return nil
}
