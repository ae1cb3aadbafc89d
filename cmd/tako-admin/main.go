// Command tako-admin is the operator's view of a running Tako cluster:
// status, a key's ring placement, one replica's own record, repair, key listing.
//
//	tako-admin -c HOST:PORT status
//	tako-admin -c HOST:PORT ring KEY
//	tako-admin -c HOST:PORT get KEY --replica NODE
//	tako-admin -node HOST:HTTPPORT repair
//	tako-admin -proxy HOST:PORT keys [--prefix P]
//
// -json on each; exit codes 0 ok, 1 error, 2 usage, 3 unhealthy (see
// package server/admin).
package main

import (
	"os"

	"github.com/tako-kv/tako/cmd/internal/cli"
	"github.com/tako-kv/tako/server/admin"
)

func main() {
	cli.HandleVersion("tako-admin")
	ctx, stop := cli.SignalContext()
	code := admin.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
