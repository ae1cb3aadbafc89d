// Package config owns Tako's cluster configuration: the document format (the
// seed's YAML, and the same document as JSON when a coordinator serves it),
// its defaults, its validation, and a canonical JSON form with a content
// version.
//
// # Document
//
// The top level holds master_coordinator, coordinators (id: [host, port]),
// active_deployment, an optional target_deployment, deployments and an
// optional storage section, and optionally cluster_secret_file and
// cluster_secret_previous_file (the peer protocol's shared secret),
// http_tokens_file (the HTTP bearer tokens), and tls_cert_file, tls_key_file
// and tls_ca_file (TLS on HTTP and the peer protocol; all three or none); the
// files are read by each process at start, not here (server/tlsconf reads the
// TLS ones). A deployment holds read_repair,
// background_healing, background_healing_interval, write_acks,
// hash.buckets_per_key, hash.points and buckets (bucket: node: [host,
// http_port, peer_port]). examples/sample.yaml explains every key.
//
// Parsing rules, chosen so the seed files load verbatim and typos never pass
// silently:
//   - Booleans accept YAML 1.1 spellings (yes/no/on/off/y/n/true/false, any
//     case, quoted or not); yaml.v3 alone would treat yes/no as strings.
//   - Integers may be written as strings ("5711"); sizes in storage also take
//     units ("64MiB", "1GB").
//   - A key with a null value (`key:` or `key: ~`) counts as absent.
//   - Unknown keys, duplicate keys and a second YAML document are refused.
//   - Anchors, aliases and merge keys (<<) work.
//
// Intervals are parsed by ParseInterval and printed by FormatInterval.
//
// # Invariants
//
// A *Config returned by Parse or Load has passed Validate, has its defaults
// applied, has non-nil Coordinators and Deployments maps, keeps every
// Deployment's Buckets and every Bucket's Nodes sorted by ID in natural order
// (NaturalCompare: n2 < n10), and carries Version: the first 16 hex digits of
// the SHA-256 of its canonical JSON (Config.JSON). The canonical form spells
// out every default, so documents that differ only in formatting, key order
// or omitted defaults get the same Version in every process; JSON() output
// parses back to an equal Config.
//
// Validation errors name the field and where it is, for example
//
//	config: deployment "cluster" bucket "b2" node "n3": http_port 70000 out of range 1..65535
//
// and satisfy errors.Is(err, ErrInvalid).
//
// # Concurrency
//
// A Config is a plain value with no internal state: it is never mutated by
// this package after Parse returns, so one *Config may be shared by any number
// of goroutines as long as nobody writes to it. To change the configuration,
// parse a new one and swap the pointer (for example with atomic.Pointer).
package config
