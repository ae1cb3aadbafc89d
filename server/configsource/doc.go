// Package configsource is how a node or proxy obtains its configuration and
// its updates: from a file (-cfg), or from coordinators (-c HOST:PORT,
// repeatable) with a cache on disk so the process restarts without them.
//
// # Where the first configuration comes from (Open)
//
//  1. Options.File, when set. The file wins: coordinators and the cache are
//     then not used at all (also when the file lists coordinators).
//  2. Otherwise the first coordinator that answers GET /configuration with a
//     valid document, trying each in order, in rounds, for Options.OpenWait
//     (default 3s) in total. The document is written to Options.CachePath
//     atomically (temporary file in the same directory, fsync, rename), so a
//     crash never leaves a torn cache.
//  3. Otherwise the cache file.
//  4. Otherwise an error naming every source tried and why it failed.
//
// # Updates (Watch)
//
// Watch polls every Options.Poll (default 1s). With a File it re-reads the
// file and acts on content that differs from the last seen (and has settled:
// identical in two consecutive polls, so a half-written file is never used).
// With coordinators it asks the one that answered last (sticky, so two
// coordinators serving different versions do not make the process flap)
// with If-None-Match naming the current version; a 304 costs a few bytes. On
// failure it tries the others in order. A valid document with a different
// Version is cached (coordinator mode) and handed to onChange; a broken one
// is logged once and ignored, and the current configuration stays.
//
// With Options.Token every request to a coordinator carries it as a bearer
// token (Authorization: Bearer); a 401 is an unreachable coordinator, its
// reason quoted in the error. With Options.CAFile (-cacert) coordinators are
// asked over HTTPS, their certificates verified against that file; a
// coordinator that speaks TLS to a client without it answers 400, and the
// error says to pass -cacert.
//
// Versions are content hashes (config.Config.Version), so "newer" means
// "different from the current one": the coordinator is the authority.
//
// # Concurrency
//
// Open and Current may be called from any goroutine; Watch runs in one
// goroutine and calls onChange from it, one call at a time, in order. The
// current configuration is an atomic.Pointer: readers never block.
package configsource
