package admin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/server/tlsconf"
)

// Exit codes of Run (see the package doc).
const (
	ExitOK        = 0
	ExitError     = 1
	ExitUsage     = 2
	ExitUnhealthy = 3
)

// DefaultTimeout bounds each HTTP request when -timeout is not given.
const DefaultTimeout = 10 * time.Second

const usage = `usage: tako-admin [-c HOST:PORT | -node HOST:HTTPPORT | -proxy HOST:PORT] [-json] [-timeout D] COMMAND [ARGS]

commands:
  status                    every node by bucket, up or down, healing and the migration (-c);
                            exit code 3 when a node is down or the migration waits
  ring KEY                  the key's buckets and replicas in each live deployment (-c)
  get KEY --replica NODE    that replica's own record: timestamp, size, tombstone; no repair
                            (NODE: an id with -c, or HOST:HTTPPORT; or -node alone)
  repair [NODE]             start an anti-entropy pass on NODE (or -node), else on every node (-c)
  keys [--prefix P] [--limit N]
                            every key holding a value, in byte order (-proxy: the cluster's,
                            -node: that node's own); one a line, Go-quoted unless plain text;
                            -json: {"keys":[...]} percent-encoded as in /values/ URLs;
                            exit code 3 when some node did not answer

exit codes: 0 ok, 1 the cluster could not be asked or answered an error, 2 usage, 3 unhealthy
(or a key listing some node could not add to)

flags (before or after the command):
`

// env is one invocation's settings and outputs.
type env struct {
	coord   string // -c: the coordinator's HOST:PORT
	node    string // -node: a node's HTTP HOST:PORT
	proxy   string // -proxy: a proxy's HOST:PORT
	cacert  string // -cacert: the cluster's tls_ca_file; nodes are then reached over HTTPS
	json    bool
	timeout time.Duration
	// tokenFile (-token-file) holds the bearer token sent with every request
	// (httpproxy.ReadClientToken); token is what it holds.
	tokenFile, token string
	out              io.Writer
	client           *http.Client
	now              func() time.Time
	usage            func() // prints the usage on stderr
}

// usageError is a command line Run cannot act on (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// errUnhealthy is wrapped by status when it found the cluster unhealthy.
var errUnhealthy = errors.New("unhealthy")

// commands maps a command name to its run function; args are what follows
// the name.
var commands = map[string]func(ctx context.Context, e *env, args []string) error{
	"status": runStatus,
	"ring":   runRing,
	"get":    runGet,
	"repair": runRepair,
	"keys":   runKeys,
}

// Run runs the tako-admin command line args (without the program name),
// writing its report to stdout and errors to stderr, and returns the exit
// code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{out: stdout, now: time.Now, timeout: DefaultTimeout}
	fs := e.flagSet("tako-admin", stderr)
	e.usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.Usage = e.usage
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return ExitOK
	} else if err != nil { // the flag package printed it, with the usage
		return ExitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return ExitUsage
	}
	run, ok := commands[fs.Arg(0)]
	if !ok {
		return exitCode(usageErrorf("unknown command %q", fs.Arg(0)), stderr)
	}
	return exitCode(run(ctx, e, fs.Args()[1:]), stderr)
}

// exitCode reports err on stderr and maps it to an exit code.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp): // the usage is printed already
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tako-admin: %v\n", err)
		fmt.Fprintln(stderr, "run tako-admin -h for usage")
		return ExitUsage
	case errors.Is(err, errUnhealthy):
		fmt.Fprintf(stderr, "tako-admin: %v\n", err)
		return ExitUnhealthy
	}
	fmt.Fprintf(stderr, "tako-admin: %v\n", err)
	return ExitError
}

// flagSet returns a flag set holding the flags every command takes, bound
// to e, so that they may come before or after the command name.
func (e *env) flagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.coord, "c", e.coord, "coordinator `HOST:PORT`")
	fs.StringVar(&e.node, "node", e.node, "a node's `HOST:HTTPPORT`, for get, repair and keys (its own) without a coordinator")
	fs.StringVar(&e.proxy, "proxy", e.proxy, "a proxy's `HOST:PORT`, for keys")
	fs.BoolVar(&e.json, "json", e.json, "print JSON instead of text")
	fs.DurationVar(&e.timeout, "timeout", e.timeout, "bound on each HTTP request")
	fs.StringVar(&e.tokenFile, "token-file", e.tokenFile, "send the first bearer token of this `FILE` (when the cluster has http_tokens_file; repair needs a read-write one)")
	fs.StringVar(&e.cacert, "cacert", e.cacert, "the cluster's tls_ca_file (PEM): reach nodes over HTTPS, verified against it")
	return fs
}

// parseCommand parses a command's flags, which may sit among its
// arguments (get KEY --replica n1); after "--" everything is an argument.
// It returns the arguments, checked against minArgs and maxArgs.
func (e *env) parseCommand(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	fs.SetOutput(io.Discard) // Run reports the error once
	fs.Usage = func() {}
	var rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			e.usage()
			return nil, err
		}
		if err != nil {
			return nil, usageErrorf("%s: %v", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	pos = append(pos, rest...)
	e.client = &http.Client{Timeout: e.timeout}
	if e.cacert != "" {
		pool, err := tlsconf.LoadCA("-cacert", e.cacert)
		if err != nil {
			return nil, err
		}
		e.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		return nil, usageErrorf("%s: takes %s, got %q", fs.Name(), argCount(minArgs, maxArgs), pos)
	}
	if e.tokenFile != "" {
		tok, err := httpproxy.ReadClientToken(e.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("-token-file: %w", err)
		}
		e.token = tok
	}
	return pos, nil
}

func argCount(lo, hi int) string {
	switch {
	case lo == hi && lo == 1:
		return "one argument"
	case lo == hi:
		return fmt.Sprintf("%d arguments", lo)
	}
	return fmt.Sprintf("%d to %d arguments", lo, hi)
}

// command returns the flag set of a command, with the common flags.
func (e *env) command(name string) *flag.FlagSet {
	return e.flagSet(name, io.Discard)
}

// writeJSON prints v indented, for -json.
func (e *env) writeJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}
