// Package server runs Tako's processes: a node (its store, its HTTP API and
// its peer server), and the replication logic that coordinates a request
// across a key's replicas for nodes and proxies alike.
//
// # Concurrency
//
// A Node is started by RunNode and lives until its context is cancelled; it
// then stops accepting requests, finishes the ones in flight, syncs and
// closes its store. The current configuration is swapped atomically; a
// request sees one configuration from start to end.
package server
