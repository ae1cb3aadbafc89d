// Command tako-node runs one Tako node: its embedded store, its HTTP API on
// http_port and (in a cluster) its peer protocol on peer_port.
//
//	tako-node -id n1 -cfg examples/standalone.yaml [-v VARDIR] [-l LOGFILE] [-d]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tako-kv/tako/cmd/internal/cli"
	"github.com/tako-kv/tako/server"
)

func main() {
	var nc server.NodeConfig
	var logFile string
	var debug bool
	flag.StringVar(&nc.ID, "id", "", "node id, as named in the configuration (required)")
	flag.StringVar(&nc.ConfigPath, "cfg", "", "configuration file (YAML or JSON)")
	flag.StringVar(&nc.VarDir, "v", "./var/tako", "var directory: data and cached configuration go under VARDIR/<id>")
	flag.StringVar(&logFile, "l", "", "log file (JSON lines); default stderr")
	flag.BoolVar(&debug, "d", false, "debug logging")
	flag.StringVar(&nc.PprofAddr, "pprof", "", "serve net/http/pprof on this address (off by default)")
	flag.Parse()
	if nc.ID == "" || nc.ConfigPath == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: tako-node -id ID -cfg FILE [-v VARDIR] [-l LOGFILE] [-d]")
		os.Exit(2)
	}
	log, closer, err := cli.Logger(logFile, debug)
	if err != nil {
		cli.Fatal("tako-node", err)
	}
	defer closer.Close()
	nc.Logger = log
	ctx, stop := cli.SignalContext()
	defer stop()
	if err := server.RunNode(ctx, nc); err != nil {
		if logFile != "" {
			log.Error("tako-node failed", "err", err)
		}
		closer.Close()
		cli.Fatal("tako-node", err)
	}
}
