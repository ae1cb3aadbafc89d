// Command tako-proxy serves Tako's HTTP API in front of a cluster. It holds
// no data: each request goes to the key's replicas over the peer protocol.
//
//	tako-proxy -p PORT (-c HOST:PORT [-c HOST:PORT…] | -cfg FILE) [-listen HOST] [-v VARDIR] [-l LOGFILE] [-d] [-pprof ADDR] [-token-file FILE] [-cacert FILE] [-clock-offset DURATION]
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/tako-kv/tako/cmd/internal/cli"
	"github.com/tako-kv/tako/server"
)

func main() {
	cli.HandleVersion("tako-proxy")
	var pc server.ProxyConfig
	var logFile, host string
	var port int
	var debug bool
	flag.IntVar(&port, "p", 8080, "HTTP port")
	flag.StringVar(&host, "listen", "", "bind the HTTP port on this `HOST` (default all interfaces: the configuration names no proxy host)")
	flag.StringVar(&host, "host", "", "the same as -listen (older name)")
	flag.StringVar(&pc.TokenFile, "token-file", "", "send the first bearer token of this `FILE` to coordinators (needed with -c when they require http_tokens_file)")
	flag.StringVar(&pc.CAFile, "cacert", "", "with -c: fetch the configuration over HTTPS, verifying the coordinators against this PEM `FILE` (their tls_ca_file)")
	flag.StringVar(&pc.ConfigPath, "cfg", "", "configuration file (YAML or JSON)")
	flag.Var((*cli.Strings)(&pc.Coordinators), "c", "coordinator HOST:PORT to fetch the configuration from (repeatable)")
	flag.StringVar(&pc.VarDir, "v", "./var/tako", "var directory: the cached configuration goes under VARDIR/proxy-<port>")
	flag.StringVar(&logFile, "l", "", "log file (JSON lines); default stderr")
	flag.BoolVar(&debug, "d", false, "debug logging")
	flag.StringVar(&pc.PprofAddr, "pprof", "", "serve net/http/pprof on this address (off by default)")
	flag.DurationVar(&pc.ClockOffset, "clock-offset", 0, "testing aid: add this `DURATION` to the process's clock (inject clock skew)")
	flag.Parse()
	if (pc.ConfigPath == "" && len(pc.Coordinators) == 0) || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: tako-proxy -p PORT (-c HOST:PORT... | -cfg FILE) [-listen HOST] [-v VARDIR] [-l LOGFILE] [-d] [-pprof ADDR] [-token-file FILE] [-cacert FILE] [-clock-offset DURATION]")
		os.Exit(2)
	}
	pc.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	cli.Main("tako-proxy", logFile, debug, func(l *cli.Env) error {
		pc.Logger = l.Logger
		return server.RunProxy(l.Ctx, pc)
	})
}
