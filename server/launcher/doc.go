// Package launcher runs a whole Tako cluster on one machine (tako-cluster):
// every coordinator of a configuration, one tako-node per node of the active
// and target deployments, then one tako-proxy per requested port, each as a
// child process logging under the var directory.
//
// # Sequence
//
//  1. Parse the configuration and plan the processes (Plan): coordinators,
//     nodes (minus the skipped ones), proxies. Nodes and proxies get
//     `-c HOST:PORT` for every coordinator (the master first), or
//     `-cfg CONFIG` when the configuration has no coordinators.
//  2. Find tako-coordinator, tako-node and tako-proxy next to the running
//     executable, else on $PATH; report every missing one at once. Check
//     that every address the cluster will listen on is free, so a leftover
//     process from an earlier run is reported instead of answering health
//     checks in place of a new child.
//  3. Start the coordinators, wait for their /health; start the nodes, wait
//     for every node's GET http://host:http_port/health to answer 200,
//     showing "nodes up 7/10"; then the proxies likewise. Each phase is
//     bounded (Options.StartTimeout); a child that exits during start-up or
//     a phase that times out stops everything and returns an error carrying
//     the tail of the failing child's log.
//  4. Print a table of every process: pid, where it listens, its log file.
//  5. Run until ctx ends. A child that exits on its own is reported (with
//     the tail of its log) and the others keep running.
//  6. Stop: SIGTERM to every child, up to Options.StopTimeout for them to
//     exit, then SIGKILL to the rest, and reap them all.
//
// # Leaving nothing behind
//
// Children stay in tako-cluster's process group (Ctrl-C in a terminal
// reaches them too) and, on Linux, are started with Pdeathsig = SIGKILL: the
// kernel kills them if tako-cluster dies, even by SIGKILL. Go never exits an
// OS thread that started a child unless the thread was locked, which this
// package never does, so Pdeathsig fires only when the process dies.
//
// Each child's stdout and stderr are appended to its log file (the same
// file it writes its JSON log lines to with -l), so start-up errors printed
// before logging is set up are in the tail shown on failure.
//
// # Concurrency
//
// Run owns every child. Each child has one goroutine blocked in Wait that
// closes the child's done channel and reports the exit on a channel Run
// reads; nothing else is shared.
package launcher
