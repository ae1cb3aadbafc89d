// Package launcher runs a whole Tako cluster on one machine (tako-cluster):
// every coordinator of a configuration, one tako-node per node of the active
// and target deployments, then one tako-proxy per requested port, each as a
// child process logging under the var directory. It follows the
// configuration as it changes, so a live migration needs no restart: nodes
// the configuration adds are started, nodes it drops are stopped once they
// have handed off what they hold.
//
// # Sequence
//
//  1. Parse the configuration and plan the processes (Plan): coordinators,
//     nodes (minus the skipped ones), proxies. Nodes and proxies get
//     `-c HOST:PORT` for every coordinator (the master first), or
//     `-cfg CONFIG` when the configuration has no coordinators. With a
//     token file (-token-file, by default the configuration's
//     http_tokens_file) every child gets `-token-file FILE` too, and
//     tako-cluster sends its first token with its own requests (the
//     configuration it follows, the leavers' /status).
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
//  5. Follow the configuration until ctx ends (see below): start the nodes
//     a new configuration names, stop those it no longer names once they
//     have handed off.
//  6. Meanwhile report children that exit on their own: "stopped" for exit
//     status 0, "exited unexpectedly" with the tail of the log otherwise;
//     the others keep running. Run returns ErrAllExited if none is left.
//  7. Stop: SIGTERM to every child, up to Options.StopTimeout for them to
//     exit, then SIGKILL to the rest, and reap them all.
//
// # Following the configuration
//
// A watcher (server/configsource, every Options.Poll) reads what the nodes
// read: the coordinators when there are any, so a node started for a new
// configuration is already served it; else the file, once an edit has
// settled (two polls agree). A document that does not parse or validate is
// logged and ignored: the last good one stays. Each new configuration is
// applied in turn, in this order:
//
//   - Nodes that no live deployment (neither active nor target) names any
//     more leave: during a migration both deployments are live, so a node
//     leaves only once the migration has finished. A leaving node keeps
//     running while it hands its records to their new owners; a watch polls
//     its GET /status (server/nodestatus) every Options.Poll and it is
//     stopped as in step 7 once its report says it is not named and its
//     last anti-entropy pass under its current configuration was in sync
//     with nothing it does not own and no hint pending, or once a
//     coordinator's GET /status says the migration state is none. After
//     Options.HandoffTimeout (-handoff, 10 minutes) it is stopped anyway,
//     with a warning saying what it still held.
//   - Leavers that the configuration names again stay, as nodes.
//   - Nodes it names that have no running process (new ones, ones that left
//     and came back, ones that exited) are started exactly as at start-up:
//     by the same function, with the start-up flags (the same -c list, or
//     -cfg), after the same free-port check, waiting for /health, then
//     printed in a table like step 4's. -s names are never started. A
//     node that would listen where a leaver does waits until the leaver has
//     stopped; each stop of a leaver starts the named nodes not running.
//   - One line says the configuration is in use and which nodes run.
//
// A failure (a child that exits, a wait that times out, a busy port) is
// reported and the cluster keeps running; the next configuration tries
// again. Coordinators and proxies are never added or removed.
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
// Run's goroutine owns every child and all of the cluster's state: it
// starts and stops children, applies configurations, stops leavers whose
// watch has ended and reports exits, one thing at a time (an exit that
// arrives while a configuration is applied waits for it). Each leaver's
// watch runs in its own goroutine, shares nothing with the cluster, and
// hands its verdict to Run on a channel; a verdict about a leaver that was
// named again or exited meanwhile is ignored. Run cancels the watches and
// waits for them before returning. Each child has one goroutine blocked in Wait that closes
// the child's done channel and then hands the child to Run (or gives up
// once Run has returned). The configuration watcher runs in its own
// goroutine and hands each new configuration over on a channel, waiting
// until Run takes it; Run stops it and waits for it before returning.
package launcher
