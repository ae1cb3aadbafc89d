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
//
// HEAD works like GET without a body.
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
