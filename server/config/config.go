package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error Parse, Load and Validate return for a
// document that is not a valid configuration.
var ErrInvalid = errors.New("config: invalid")

// Defaults applied by Parse to keys that are absent (or null).
const (
	DefaultHealingInterval = 24 * time.Hour
	DefaultBucketsPerKey   = 1
	DefaultRingPoints      = 120 // the original implementation's points per bucket
	DefaultWriteAcks       = WriteAcksQuorum
	DefaultMaxClockSkew    = 60 * time.Second
	DefaultTombstoneGrace  = 10 * 24 * time.Hour
	DefaultSync            = SyncAlways
	DefaultSyncInterval    = 10 * time.Millisecond
	DefaultMaxValueBytes   = 64 << 20
	DefaultCacheBytes      = 256 << 20
	DefaultMemtableBytes   = 64 << 20
	DefaultMinFreeBytes    = 128 << 20
)

// Limits enforced by Validate.
const (
	MaxRingPoints    = 10000   // per bucket; the ring holds buckets*points entries
	MaxRingSize      = 1 << 20 // buckets*points of a deployment: about 16 MiB of ring in every process
	MaxValueBytesCap = 1 << 30 // values travel in one peer frame
	MinStoreBytes    = 1 << 20 // floor for cache_bytes and memtable_bytes
	MaxMemtableBytes = 4<<30 - 1
)

// Deployment.WriteAcks values: how many of a key's replicas must acknowledge
// a write before it is reported as successful.
const (
	WriteAcksOne    = "one"
	WriteAcksQuorum = "quorum"
	WriteAcksAll    = "all"
)

// Storage.Sync values: when the store fsyncs its write-ahead log.
const (
	SyncAlways   = "always"   // before acknowledging each (group-committed) write
	SyncInterval = "interval" // every Storage.SyncInterval
	SyncNone     = "none"     // leave it to the OS
)

// Addr is a coordinator's address.
type Addr struct {
	Host string
	Port int
}

// String returns "host:port" ("[v6addr]:port" for IPv6).
func (a Addr) String() string { return joinHostPort(a.Host, a.Port) }

// Node is one tako-node process: it belongs to Bucket within a deployment,
// serves HTTP on HTTPPort and the peer protocol on PeerPort.
type Node struct {
	ID, Bucket, Host string
	HTTPPort         int
	PeerPort         int
}

// HTTPAddr returns "host:http_port".
func (n Node) HTTPAddr() string { return joinHostPort(n.Host, n.HTTPPort) }

// PeerAddr returns "host:peer_port".
func (n Node) PeerAddr() string { return joinHostPort(n.Host, n.PeerPort) }

// sameAddress reports whether two entries of one node id agree on where the
// process listens (the bucket may differ between deployments).
func (n Node) sameAddress(o Node) bool {
	return n.Host == o.Host && n.HTTPPort == o.HTTPPort && n.PeerPort == o.PeerPort
}

// Bucket is a group of nodes that mirror each other. Nodes are sorted by ID.
type Bucket struct {
	ID    string
	Nodes []Node
}

// Deployment is one named cluster layout. Buckets are sorted by ID.
type Deployment struct {
	Name              string
	ReadRepair        bool
	BackgroundHealing bool
	HealingInterval   time.Duration // background_healing_interval
	BucketsPerKey     int           // hash.buckets_per_key
	RingPoints        int           // hash.points: ring points per bucket
	WriteAcks         string        // WriteAcksOne, WriteAcksQuorum or WriteAcksAll
	// MaxClockSkew (max_clock_skew) bounds how far ahead of a process's
	// clock a client's X-Timestamp or a peer's record may be.
	MaxClockSkew time.Duration
	// StrictReads (strict_reads) answers 503 instead of a value read
	// without a read quorum.
	StrictReads bool
	// TombstoneGrace (tombstone_grace) is how long a tombstone is kept at
	// least; it goes once older and held by every replica. It must exceed
	// HealingInterval.
	TombstoneGrace time.Duration
	Buckets        []Bucket
}

// FindNode returns the node with the given id in this deployment.
func (d *Deployment) FindNode(id string) (Node, bool) {
	if d == nil {
		return Node{}, false
	}
	for _, b := range d.Buckets {
		for _, n := range b.Nodes {
			if n.ID == id {
				return n, true
			}
		}
	}
	return Node{}, false
}

// Nodes returns a new slice of all nodes of the deployment sorted by ID.
func (d *Deployment) Nodes() []Node {
	if d == nil {
		return nil
	}
	var out []Node
	for _, b := range d.Buckets {
		out = append(out, b.Nodes...)
	}
	sortNodes(out)
	return out
}

// Storage configures every node's embedded store (the top-level `storage:`
// section; Tako's addition to the seed format).
type Storage struct {
	Sync          string        // SyncAlways, SyncInterval or SyncNone
	SyncInterval  time.Duration // used when Sync == SyncInterval
	MaxValueBytes int64
	CacheBytes    int64 // Pebble block cache
	MemtableBytes int64
	// MinFreeBytes: writes of values are refused (HTTP 507) while the data
	// directory's file system has less free space, so the store never runs
	// into a full disk mid-write. 0 disables the check.
	MinFreeBytes int64
}

// Changed returns the keys of the storage section, as the document spells
// them (storage.sync, ...), whose values differ between s and o.
func (s Storage) Changed(o Storage) []string {
	var keys []string
	for _, f := range []struct {
		key  string
		same bool
	}{
		{"sync", s.Sync == o.Sync},
		{"sync_interval", s.SyncInterval == o.SyncInterval},
		{"max_value_bytes", s.MaxValueBytes == o.MaxValueBytes},
		{"cache_bytes", s.CacheBytes == o.CacheBytes},
		{"memtable_bytes", s.MemtableBytes == o.MemtableBytes},
		{"min_free_bytes", s.MinFreeBytes == o.MinFreeBytes},
	} {
		if !f.same {
			keys = append(keys, "storage."+f.key)
		}
	}
	return keys
}

// DefaultStorage returns the storage settings used when `storage:` is absent.
func DefaultStorage() Storage {
	return Storage{
		Sync:          DefaultSync,
		SyncInterval:  DefaultSyncInterval,
		MaxValueBytes: DefaultMaxValueBytes,
		CacheBytes:    DefaultCacheBytes,
		MemtableBytes: DefaultMemtableBytes,
		MinFreeBytes:  DefaultMinFreeBytes,
	}
}

// Config is a whole cluster configuration. See the package doc for the
// invariants Parse establishes and the concurrency rules.
type Config struct {
	MasterCoordinator string
	Coordinators      map[string]Addr
	Active            string // active_deployment
	Target            string // target_deployment, "" when no migration runs
	Deployments       map[string]*Deployment
	Storage           Storage
	// ClusterSecretFile (cluster_secret_file) names the file holding the secret every
	// member proves in the peer handshake; "" leaves the peer protocol unauthenticated.
	// ClusterSecretPreviousFile (cluster_secret_previous_file) names a second secret that
	// is accepted as well while the secret is rotated (SECURITY.md). Relative paths are
	// resolved by SecretFiles.
	ClusterSecretFile         string
	ClusterSecretPreviousFile string
	// HTTPTokensFile (http_tokens_file) names the file of bearer tokens every HTTP
	// request but /health must carry, on nodes, proxies and coordinators
	// (httpproxy.ParseTokens has the format); "" leaves HTTP open. Resolved by TokensFile.
	HTTPTokensFile string
	// TLSCertFile (tls_cert_file) and TLSKeyFile (tls_key_file) name a PEM certificate
	// and its key: set, nodes and proxies serve HTTP and the peer protocol over TLS with
	// it, and present it to their peers. TLSCAFile (tls_ca_file) names the PEM CA
	// certificates that sign the members' certificates: peers verify each other against
	// it (mutual TLS), and tools verify the HTTP API with it. Relative paths are resolved
	// by TLSFiles; each process reads the files at start, on its own host.
	TLSCertFile string
	TLSKeyFile  string
	TLSCAFile   string
	Version     string // set by Parse: hash of the canonical JSON
}

// TLSFiles are the TLS keys' files, resolved.
type TLSFiles struct{ Cert, Key, CA string }

// TLSFiles returns the TLS files, relative paths joined to base like SecretFiles; the
// zero TLSFiles when TLS is off (no tls_cert_file).
func (c *Config) TLSFiles(base string) TLSFiles {
	if c.TLSCertFile == "" {
		return TLSFiles{}
	}
	return TLSFiles{Cert: resolve(base, c.TLSCertFile), Key: resolve(base, c.TLSKeyFile), CA: resolve(base, c.TLSCAFile)}
}

// SecretFiles returns the cluster secret files, the current one first, relative paths
// joined to base (the configuration file's directory; "" for the working directory).
// It returns nil when no cluster_secret_file is set.
func (c *Config) SecretFiles(base string) []string {
	var out []string
	for _, p := range []string{c.ClusterSecretFile, c.ClusterSecretPreviousFile} {
		if p != "" {
			out = append(out, resolve(base, p))
		}
	}
	return out
}

// TokensFile returns http_tokens_file, a relative path joined to base like SecretFiles';
// "" when the key is not set.
func (c *Config) TokensFile(base string) string {
	if c.HTTPTokensFile == "" {
		return ""
	}
	return resolve(base, c.HTTPTokensFile)
}

// resolve joins a relative path p to base, when base is set.
func resolve(base, p string) string {
	if !filepath.IsAbs(p) && base != "" {
		return filepath.Join(base, p)
	}
	return p
}

// Parse reads a configuration document (YAML, or the same document as JSON),
// applies defaults, validates it and sets Version.
func Parse(data []byte) (*Config, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	js, err := c.JSON()
	if err != nil {
		return nil, err
	}
	c.Version = versionOf(js)
	return c, nil
}

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *fs.PathError already names the path
	}
	c, err := Parse(data)
	if err != nil {
		return nil, &pathError{path: path, err: err}
	}
	return c, nil
}

// pathError prefixes an error with the file it came from, like a compiler:
// "etc/tako.yaml: config: deployment ...".
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// ActiveDeployment returns the active deployment (nil only for a Config that
// has not been validated).
func (c *Config) ActiveDeployment() *Deployment { return c.Deployments[c.Active] }

// TargetDeployment returns the deployment being migrated to, or nil.
func (c *Config) TargetDeployment() *Deployment {
	if c.Target == "" {
		return nil
	}
	return c.Deployments[c.Target]
}

// FindNode looks the node up in the active deployment, then in the target.
func (c *Config) FindNode(id string) (Node, bool) {
	if n, ok := c.ActiveDeployment().FindNode(id); ok {
		return n, true
	}
	return c.TargetDeployment().FindNode(id)
}

// Nodes returns every distinct node of the active and target deployments,
// sorted by ID. A node in both carries its active-deployment bucket.
func (c *Config) Nodes() []Node {
	nodes := c.ActiveDeployment().Nodes()
	for _, n := range c.TargetDeployment().Nodes() {
		if _, ok := c.ActiveDeployment().FindNode(n.ID); !ok {
			nodes = append(nodes, n)
		}
	}
	sortNodes(nodes)
	return nodes
}

// ListenAddr is where a server configured at addr (host:port) listens when
// told override (a -listen flag): override itself when it names a port
// (HOST:PORT, [V6]:PORT), override's host at addr's port when it names only
// a host (HOST, V6, [V6]), addr when it is empty.
func ListenAddr(addr, override string) string {
	if override == "" {
		return addr
	}
	if _, _, err := net.SplitHostPort(override); err == nil {
		return override
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr // the listener reports it
	}
	return net.JoinHostPort(strings.Trim(override, "[]"), port)
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func sortNodes(ns []Node) {
	slices.SortFunc(ns, func(a, b Node) int { return NaturalCompare(a.ID, b.ID) })
}

func sortBuckets(bs []Bucket) {
	slices.SortFunc(bs, func(a, b Bucket) int { return NaturalCompare(a.ID, b.ID) })
}

// sortedKeys returns a map's keys in natural order, so that iteration (and
// therefore the first error reported) is deterministic.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, NaturalCompare)
	return keys
}
