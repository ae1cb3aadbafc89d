// Command tako-cluster runs a whole Tako cluster on one machine, for
// testing: every coordinator of the configuration, one tako-node per node of
// the active and target deployments, then a tako-proxy per -p once the nodes
// answer. It then follows the configuration: nodes that an edit adds (a
// target_deployment's) are started, nodes that no live deployment names any
// more are stopped once they have handed off what they hold (or after
// -handoff, 10m by default). Ctrl-C (or SIGTERM) stops them all; SIGHUP is
// passed on to every child, which reopens its log file.
//
//	tako-cluster CONFIG [-p PORT]... [-s NODE]... [-v VARDIR] [-wait 30s] [-handoff 10m] [-token-file FILE] [-d]
//	tako-cluster examples/local_cluster.yaml -p 8080
//
// Flags may follow the configuration file. tako-coordinator, tako-node and
// tako-proxy are found next to this executable or on $PATH; from a clone,
// `go build -o bin/ ./cmd/... && bin/tako-cluster examples/local_cluster.yaml -p 8080`.
// Logs go to VARDIR/<name>.log, data to VARDIR/<node id>/.
package main

import (
	"errors"
	"flag"
	"os"

	"github.com/tako-kv/tako/cmd/internal/cli"
	"github.com/tako-kv/tako/server/launcher"
)

func main() {
	cli.HandleVersion("tako-cluster")
	o, err := launcher.ParseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		cli.Fatal("tako-cluster", err)
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	if err := launcher.Run(ctx, o); err != nil {
		stop()
		cli.Fatal("tako-cluster", err)
	}
}
