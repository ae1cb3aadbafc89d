// Package bench is Tako's load harness: it drives the same YCSB-style workload against Tako
// (a standalone node, a local cluster through the proxy) and against the machine's ceilings and
// the stores users would pick instead (a do-nothing fasthttp server, Redis, etcd, each also
// replicated: a Redis primary with a replica, a three-member etcd cluster), and reports
// throughput, latency percentiles, errors by kind and the servers' CPU and peak RSS.
//
// What it owns:
//   - Histogram: a log-linear latency histogram (relative error < 0.4%), one per worker, merged
//     at the end; Record never allocates.
//   - Workloads (ingest, a, b, c), key choosers (uniform, YCSB scrambled zipfian θ=0.99) and the
//     Dataset (synthetic values of one size, or the files of a directory).
//   - Target: one client connection per worker goroutine. HTTP (Tako API and the bare server) and
//     etcd's JSON gateway go through fasthttp.HostClient with MaxConns 1; Redis through a small
//     RESP client (RESPWait adds WAIT after every SET). The peer-protocol client is a hook in
//     peer.go. An Endpoint with Addrs spreads its workers over a replicated store's members.
//   - Server: processes the harness starts on free 127.0.0.1 ports (bare, tako-node, tako-cluster,
//     redis-server, etcd), each in its own temp dir and process group, and their /proc accounting.
//     A replicated store is one Server whose members (replica, other etcd members) are started
//     with it, accounted with it (Endpoint.Pids) and stopped with it. The cluster target's
//     layout puts its nodes on 127.0.0.1 with ports of their own, or on hosts 127.0.0.11… with
//     shared ports (SharedPorts: free on every host).
//   - Run (one workload against one endpoint) and Compare (the side-by-side table).
//
// Invariants: measurement never includes the preload phase; CPU seconds are the delta over the
// measured phase only; peak RSS is the sum of VmHWM over the server's process tree at the end.
// Every process started is stopped and its temp dir removed, also on error paths.
//
// Concurrency: each worker goroutine owns its Target, Histogram, rng and buffers; the only
// shared mutable state is per-worker atomic counters read by the progress printer and the
// optional shared op budget (-n). Results are merged after all workers returned.
package bench
