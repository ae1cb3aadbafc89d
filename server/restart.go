package server

import (
	"fmt"
	"slices"

	"github.com/tako-kv/tako/server/config"
)

// restartKeys names what cfg changes, against started (the configuration
// the process started with), that the process reads only at start, so the
// change waits for a restart: a node's storage section (its store is open)
// and its own addresses (its ports are bound); a proxy's
// storage.max_value_bytes (its HTTP server is sized by it). self is the
// node's id, empty in a proxy. The cluster secret files are noted by
// peerAuth.noteChange.
func restartKeys(started, cfg *config.Config, self string) []string {
	keys := started.Storage.Changed(cfg.Storage)
	if self == "" {
		return slices.DeleteFunc(keys, func(k string) bool { return k != "storage.max_value_bytes" })
	}
	was, _ := started.FindNode(self)
	if now, ok := cfg.FindNode(self); ok && (now.Host != was.Host || now.HTTPPort != was.HTTPPort || now.PeerPort != was.PeerPort) {
		keys = append(keys, fmt.Sprintf("node %s: [host, http_port, peer_port]", self))
	}
	return keys
}
