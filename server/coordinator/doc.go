// Package coordinator serves a Tako configuration file over HTTP as the
// cluster's single point of configuration.
//
// # Protocol
//
//	GET /configuration   200, body = the canonical JSON (config.Config.JSON),
//	                     Content-Type application/json,
//	                     X-Config-Version: <Config.Version>,
//	                     ETag: "<Config.Version>".
//	                     With If-None-Match naming the current version: 304,
//	                     no body, so pollers pay a few bytes per poll.
//	GET /health          200 "ok"; X-Config-Version as above.
//	GET /                the status page: the same as /status in HTML (nodes by
//	                     bucket, up or down, the migration's progress), which
//	                     refreshes itself.
//	GET /status          200, JSON Status: every node of the configuration
//	                     (and of the previous one while it may hold keys),
//	                     up or down with its own report (GET /status on the
//	                     node, package nodestatus), and the migration: state
//	                     none | copying | ready | dropping, records copied and
//	                     remaining, an estimate of the time left.
//	GET /metrics         Prometheus metrics: the configuration served, edits
//	                     served and refused, the migration's state and
//	                     progress, every node up or down (package
//	                     server/metrics).
//	POST /force-finish   applies a finishing configuration held back because
//	                     the migration was not ready; 409 when none waits.
//
// # Migrations
//
// The state comes from the nodes' reports, never from elapsed time: a
// migration is ready once every node of the active deployment reports an
// anti-entropy pass, run under the migration's configuration, that
// confirmed every record it holds on every owner, with no hints pending. An
// edit that finishes a migration (the target becomes the active deployment)
// before it is ready is held back and logged; it applies by itself once the
// migration is ready, or at once on POST /force-finish. Any other edit
// replaces a held-back one.
//
// HEAD works like GET without a body.
//
// # Access
//
// With http_tokens_file in the configuration it serves, every request but
// GET /health must carry `Authorization: Bearer TOKEN` of that file (read
// on the coordinator's host, relative to its file's directory): a read-only
// token for GET and HEAD, a read-write one for POST /force-finish; 401 with
// WWW-Authenticate otherwise, 403 for a read-only token that writes. The
// coordinator sends a token to the nodes it asks for their /status too:
// Options.TokenFile's, else the first of http_tokens_file. The file is read
// again when a new configuration is served and on SIGHUP; an unusable file
// is logged and the tokens in use stay.
//
// With tls_cert_file in the configuration it starts with, it serves HTTPS
// only, with tls_cert_file and tls_key_file (read at start; a restart takes
// new ones): whoever fetches a layout from it must be able to trust it.
//
// # Watching the file
//
// The coordinator re-reads its file every Options.Poll (default 500ms; the
// file is small, and fsnotify is not available) and compares the SHA-256 of
// its bytes with the previous poll. This catches every edit, including ones
// that keep the size and mtime. New content is acted on once it has been the
// same in two consecutive polls, so a file caught half-written by an editor is
// never served (a truncated document can be valid YAML). A valid document with
// a different Version is served from then on and logged with the new
// version; an invalid one is logged once, with the config error, and the last
// good configuration keeps being served. A file that cannot be read (an editor
// replacing it) is logged once and changes nothing.
//
// The listen address is fixed at start: an edit that moves or removes this
// coordinator is served but logged as a warning (restart to move).
//
// # Concurrency
//
// The served state (configuration, its JSON and ETag) is one immutable
// snapshot behind an atomic.Pointer: handlers load it without locks, and the
// watcher swaps it whole, so a response never mixes two versions. Only the
// watcher goroutine (or a caller of Reload, one at a time) touches the
// file-tracking fields.
package coordinator
