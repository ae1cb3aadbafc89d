// Package server runs Tako's processes and owns what spans nodes: a node
// (RunNode: its store, its HTTP API, its peer server, its healer), a proxy
// (RunProxy), and the Cluster that coordinates each request across the
// key's replicas for both.
//
// # Pieces
//
//   - topology.go: a configuration compiled for routing — each live
//     deployment's ring, a key's replicas and bucket groups, the quorum rules
//     (acked for writes, readQuorum for reads).
//   - cluster.go, fanout.go: the Backend of the HTTP API. Replica calls run
//     in parallel as pooled tasks, so the read path allocates nothing: a
//     call to a connected peer (a Get, a Stat, a write of a value under
//     8 KiB) is sent by the request's goroutine and completed on the peer
//     connection's reader goroutine (eventloop.Completion); the others run
//     on pooled workers.
//   - replica.go: the Replica interface; replica_local.go (this node's
//     store) and replica_peer.go (a peer over the binary protocol) implement
//     it, and replica_test.go runs one conformance test against both.
//   - peer.go, inline.go: the peer protocol served from the local store
//     (point reads on the event loop while the process reads nothing from
//     the disk, on reader goroutines otherwise); records
//     from peers beyond max_clock_skew, or of keys this node replicates in
//     no live deployment of its configuration (nor of the previous one),
//     are refused (never stored),
//     the others observed by the process's hybrid logical clock (kv/hlc).
//   - handoff.go: hinted hand-off — writes a replica missed, kept in
//     server/hints, replayed once it answers again (hints of keys a newer
//     configuration moved away from the node are dropped instead).
//   - httptokens.go: the http_tokens_file a node or proxy requires of HTTP
//     requests, read at start, on SIGHUP and with each configuration; the
//     -token-file token sent to coordinators.
//   - heal.go, reconcile.go: anti-entropy — a tree of hash-segment sums
//     compared with each peer, records exchanged only in the segments that
//     differ, keys this node no longer owns handed over and dropped; each
//     pass is reported (status.go, GET /status) for the coordinator's
//     migration state.
//   - keys.go: key listing (GET /keys) — the listings of every node of the
//     live deployments, read a page at a time over the peer Scan and
//     merged in key order, each key once, shown when its newest record
//     holds a value.
//   - tombstones.go: tombstone GC once every replica holds a tombstone past
//     tombstone_grace, and the quarantine of a node away for longer.
//   - metrics.go: what the process exposes at GET /metrics (package
//     server/metrics defines every family): replica errors by kind, the
//     store, hints, healing and peer connections read at scrape time.
//   - ready.go: GET /ready — the nodes that answer a ping against the
//     write_acks rule, by bucket.
//   - node.go, proxy.go, peers.go: process wiring, one client per peer.
//
// # Invariants
//
//   - A write is acknowledged only after write_acks replicas hold it durably;
//     quorum means a majority of the key's buckets, in every live deployment,
//     each with at least one node holding it.
//   - A read with read repair hears from a read quorum — enough replicas to
//     meet every quorum write — before it answers. Only answers count: a
//     replica that failed has not been heard. Without a quorum, a found
//     record is served marked (httpproxy.ErrNoReadQuorum) and nothing found
//     is unavailable, never not-found.
//   - A hint never counts toward write_acks.
//   - A node stores a peer write only for a key it replicates in a live
//     deployment (during a migration both are live) of its configuration or
//     of the previous one. Every writer — a request's fan-out, hinted
//     hand-off, read repair, anti-entropy pushes and migration copies —
//     writes only to a key's replicas under its own configuration, which
//     trails or leads this node's by at most a poll: a writer still on the
//     previous configuration (the old active deployment's quorum, as a
//     migration finishes) is served; only misrouted writes, and a writer
//     ahead of this node, are refused (the latter until this node catches
//     up; the write is hinted meanwhile).
//   - A node drops a key it no longer owns only after every current replica
//     holds that record or a newer one; a tombstone goes only after every
//     replica holds it.
//
// # Concurrency
//
// A node or proxy lives until its context is cancelled; it then stops
// accepting requests, finishes the ones in flight, stops healing, and (a
// node) syncs and closes its store. The configuration is swapped atomically
// (Cluster.Update); a request sees one configuration from start to end. A
// request owns its route (pooled) until every task it submitted has come
// back; tasks still running when it answers are drained by the last of
// them to come back (route.refs), so no goroutine waits for stragglers.
package server
