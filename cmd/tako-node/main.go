// Command tako-node runs one Tako node: its embedded store, its HTTP API on
// http_port and its peer protocol on peer_port.
//
//	tako-node -id n1 (-cfg FILE | -c HOST:PORT [-c HOST:PORT…]) [-v VARDIR] [-l LOGFILE] [-d] [-pprof ADDR]
//		[-listen HOST] [-listen-http HOST[:PORT]] [-listen-peer HOST[:PORT]] [-token-file FILE] [-cacert FILE] [-clock-offset DURATION]
//
// Each port binds the host the configuration gives the node unless told otherwise:
// -listen HOST binds both on HOST (the ports stay the configured ones), -listen-http and
// -listen-peer one port each, at HOST (the configured port) or HOST:PORT.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tako-kv/tako/cmd/internal/cli"
	"github.com/tako-kv/tako/server"
)

func main() {
	cli.HandleVersion("tako-node")
	var nc server.NodeConfig
	var logFile string
	var debug bool
	flag.StringVar(&nc.ID, "id", "", "node id, as named in the configuration (required)")
	flag.StringVar(&nc.ConfigPath, "cfg", "", "configuration file (YAML or JSON)")
	flag.Var((*cli.Strings)(&nc.Coordinators), "c", "coordinator HOST:PORT to fetch the configuration from (repeatable)")
	flag.StringVar(&nc.VarDir, "v", "./var/tako", "var directory: data and cached configuration go under VARDIR/<id>")
	flag.StringVar(&logFile, "l", "", "log file (JSON lines); default stderr")
	flag.BoolVar(&debug, "d", false, "debug logging")
	flag.StringVar(&nc.PprofAddr, "pprof", "", "serve net/http/pprof on this address (off by default)")
	flag.StringVar(&nc.ListenHost, "listen", "", "bind the HTTP and peer ports on this `HOST` instead of the configured one")
	flag.StringVar(&nc.ListenHTTP, "listen-http", "", "bind the HTTP port at this `HOST[:PORT]` (wins over -listen)")
	flag.StringVar(&nc.ListenPeer, "listen-peer", "", "bind the peer port at this `HOST[:PORT]` (wins over -listen; peers still dial the configured address)")
	flag.StringVar(&nc.TokenFile, "token-file", "", "send the first bearer token of this `FILE` to coordinators (needed with -c when they require http_tokens_file)")
	flag.StringVar(&nc.CAFile, "cacert", "", "with -c: fetch the configuration over HTTPS, verifying the coordinators against this PEM `FILE` (their tls_ca_file)")
	flag.DurationVar(&nc.ClockOffset, "clock-offset", 0, "testing aid: add this `DURATION` to the process's clock (inject clock skew)")
	flag.Parse()
	if nc.ID == "" || (nc.ConfigPath == "" && len(nc.Coordinators) == 0) || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: tako-node -id ID (-cfg FILE | -c HOST:PORT...) [-v VARDIR] [-l LOGFILE] [-d] [-pprof ADDR] [-listen HOST] [-listen-http HOST[:PORT]] [-listen-peer HOST[:PORT]] [-token-file FILE] [-cacert FILE] [-clock-offset DURATION]")
		os.Exit(2)
	}
	cli.Main("tako-node", logFile, debug, func(l *cli.Env) error {
		nc.Logger = l.Logger
		return server.RunNode(l.Ctx, nc)
	})
}
