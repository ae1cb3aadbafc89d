// Command tako-coordinator serves a Tako configuration file to nodes and
// proxies (GET /configuration) and notices when the file is edited.
//
//	tako-coordinator -id c1 -cfg FILE [-v VARDIR] [-l LOGFILE] [-d] [-listen HOST[:PORT]] [-token-file FILE]
//
// It listens on its own [host, port] from the file's coordinators section
// (-listen HOST binds another host at that port; -listen HOST:PORT another
// address). A broken edit of the file is logged and
// the last good configuration keeps being served.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tako-kv/tako/cmd/internal/cli"
	"github.com/tako-kv/tako/server/coordinator"
)

func main() {
	cli.HandleVersion("tako-coordinator")
	var o coordinator.Options
	var logFile, varDir string
	var debug bool
	flag.StringVar(&o.ID, "id", "", "coordinator id, as named in the configuration's coordinators (required)")
	flag.StringVar(&o.File, "cfg", "", "configuration file to serve (YAML or JSON; required)")
	flag.StringVar(&varDir, "v", "", "var directory (created if missing; the coordinator keeps no state in it)")
	flag.StringVar(&logFile, "l", "", "log file (JSON lines); default stderr")
	flag.BoolVar(&debug, "d", false, "debug logging")
	flag.StringVar(&o.Listen, "listen", "", "listen on `HOST` (at the configured port) or HOST:PORT instead of the configured address")
	flag.StringVar(&o.TokenFile, "token-file", "", "send the first bearer token of this `FILE` to nodes (default: the first of http_tokens_file)")
	flag.DurationVar(&o.Poll, "poll", coordinator.DefaultPoll, "how often to re-read the configuration file")
	flag.Parse()
	if o.ID == "" || o.File == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: tako-coordinator -id ID -cfg FILE [-v VARDIR] [-l LOGFILE] [-d] [-listen HOST[:PORT]] [-token-file FILE]")
		os.Exit(2)
	}
	if varDir != "" {
		if err := os.MkdirAll(varDir, 0o755); err != nil {
			cli.Fatal("tako-coordinator", err)
		}
	}
	log, closer, err := cli.Logger(logFile, debug)
	if err != nil {
		cli.Fatal("tako-coordinator", err)
	}
	defer closer.Close()
	o.Logger = log
	ctx, stop := cli.SignalContext()
	defer stop()
	if err := coordinator.Run(ctx, o, nil); err != nil {
		if logFile != "" {
			log.Error("tako-coordinator failed", "err", err)
		}
		closer.Close()
		cli.Fatal("tako-coordinator", err)
	}
}
