package config

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Keys of each mapping in the document, in the order the sample explains them.
var (
	topKeys        = []string{"master_coordinator", "coordinators", "active_deployment", "target_deployment", "deployments", "storage", "cluster_secret_file", "cluster_secret_previous_file", "http_tokens_file", "tls_cert_file", "tls_key_file", "tls_ca_file"}
	deploymentKeys = []string{"read_repair", "background_healing", "background_healing_interval", "write_acks", "max_clock_skew", "strict_reads", "tombstone_grace", "hash", "buckets"}
	hashKeys       = []string{"buckets_per_key", "points"}
	storageKeys    = []string{"sync", "sync_interval", "max_value_bytes", "cache_bytes", "memtable_bytes", "min_free_bytes"}
)

// maxVisits bounds the work of walking a document: aliases let a small
// document reference the same subtree many times.
const maxVisits = 1 << 20

// decode turns a YAML (or JSON) document into a Config with defaults applied.
// It checks shape and types; Validate checks meaning.
func decode(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, invalid(0, "", "empty document")
		}
		return nil, invalid(0, "", "%v", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, invalid(extra.Line, "", "more than one YAML document")
	}
	if len(doc.Content) != 1 || isNull(doc.Content[0]) {
		return nil, invalid(0, "", "empty document")
	}
	return (&decoder{}).config(doc.Content[0])
}

type decoder struct{ visits int }

// field is one key of a mapping, after merge keys are expanded.
type field struct {
	key  string
	line int
	val  *yaml.Node
}

// deref follows aliases and charges the visit budget.
func (d *decoder) deref(n *yaml.Node) (*yaml.Node, error) {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 64 {
			return nil, invalid(n.Line, "", "alias chain too long")
		}
		n = n.Alias
	}
	if d.visits++; d.visits > maxVisits {
		return nil, invalid(0, "", "document too large (aliases expand to more than %d nodes)", maxVisits)
	}
	return n, nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "empty"
}

// fields returns the keys of a mapping; null counts as an empty mapping.
// Duplicate keys are refused; keys from merge keys (<<) yield to explicit ones.
func (d *decoder) fields(n *yaml.Node, where string) ([]field, error) {
	n, err := d.deref(n)
	if err != nil || isNull(n) {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		if where == "" {
			where = "top level"
		}
		return nil, invalid(n.Line, where, "must be a mapping, not %s", kindName(n))
	}
	var out, merged []field
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := d.deref(n.Content[i])
		if err != nil {
			return nil, err
		}
		if k.Kind != yaml.ScalarNode {
			return nil, invalid(k.Line, where, "a key must be a string, not %s", kindName(k))
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			m, err := d.mergeFields(n.Content[i+1], where)
			if err != nil {
				return nil, err
			}
			merged = append(merged, m...)
			continue
		}
		if seen[k.Value] {
			return nil, invalid(k.Line, where, "duplicate key %q", k.Value)
		}
		seen[k.Value] = true
		out = append(out, field{key: k.Value, line: k.Line, val: n.Content[i+1]})
	}
	for _, f := range merged {
		if !seen[f.key] {
			seen[f.key] = true
			out = append(out, f)
		}
	}
	return out, nil
}

// mergeFields expands the value of a merge key: a mapping, or a list of
// mappings where earlier ones win.
func (d *decoder) mergeFields(v *yaml.Node, where string) ([]field, error) {
	v, err := d.deref(v)
	if err != nil {
		return nil, err
	}
	if v.Kind != yaml.SequenceNode {
		return d.fields(v, where)
	}
	var out []field
	seen := map[string]bool{}
	for _, item := range v.Content {
		fs, err := d.fields(item, where)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			if !seen[f.key] {
				seen[f.key] = true
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// scalar returns a field's scalar text; ok is false for null (absent).
func (d *decoder) scalar(f field, where string) (s string, ok bool, err error) {
	n, err := d.deref(f.val)
	if err != nil || isNull(n) {
		return "", false, err
	}
	if n.Kind != yaml.ScalarNode {
		return "", false, invalid(n.Line, where, "%s must be a single value, not %s", f.key, kindName(n))
	}
	return n.Value, true, nil
}

func (d *decoder) str(f field, where string, dst *string) error {
	s, ok, err := d.scalar(f, where)
	if ok {
		*dst = s
	}
	return err
}

// boolean accepts YAML 1.1 spellings, which the seed files use (`yes`/`no`).
func (d *decoder) boolean(f field, where string, dst *bool) error {
	s, ok, err := d.scalar(f, where)
	if !ok {
		return err
	}
	switch strings.ToLower(s) {
	case "true", "yes", "y", "on":
		*dst = true
	case "false", "no", "n", "off":
		*dst = false
	default:
		return invalid(f.line, where, "%s: %q is not a boolean (use yes/no or true/false)", f.key, s)
	}
	return nil
}

func (d *decoder) integer(f field, where string, dst *int) error {
	s, ok, err := d.scalar(f, where)
	if !ok {
		return err
	}
	n, err := parseInt(s)
	if err != nil {
		return invalid(f.line, where, "%s: %q is not an integer", f.key, s)
	}
	*dst = n
	return nil
}

func (d *decoder) size(f field, where string, dst *int64) error {
	s, ok, err := d.scalar(f, where)
	if !ok {
		return err
	}
	n, err := parseSize(s)
	if err != nil {
		return invalid(f.line, where, "%s: %v", f.key, err)
	}
	*dst = n
	return nil
}

func (d *decoder) interval(f field, where string, dst *time.Duration) error {
	s, ok, err := d.scalar(f, where)
	if !ok {
		return err
	}
	iv, err := ParseInterval(s)
	if err != nil {
		return invalid(f.line, where, "%s: %v", f.key, err)
	}
	*dst = iv
	return nil
}

// parseInt accepts decimal integers, also when a JSON producer quoted them.
func parseInt(s string) (int, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 0)
	return int(n), err
}

// list returns the items of a sequence of exactly want scalars.
func (d *decoder) list(f field, where, shape string, want int) ([]string, error) {
	n, err := d.deref(f.val)
	if err != nil {
		return nil, err
	}
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) != want {
		return nil, invalid(f.line, where, "must be %s", shape)
	}
	out := make([]string, want)
	for i, item := range n.Content {
		item, err := d.deref(item)
		if err != nil {
			return nil, err
		}
		if item.Kind != yaml.ScalarNode || isNull(item) {
			return nil, invalid(f.line, where, "must be %s", shape)
		}
		out[i] = item.Value
	}
	return out, nil
}

func (d *decoder) config(root *yaml.Node) (*Config, error) {
	c := &Config{
		Coordinators: map[string]Addr{},
		Deployments:  map[string]*Deployment{},
		Storage:      DefaultStorage(),
	}
	fs, err := d.fields(root, "")
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		switch f.key {
		case "master_coordinator":
			err = d.str(f, "", &c.MasterCoordinator)
		case "coordinators":
			err = d.coordinators(f, c.Coordinators)
		case "active_deployment":
			err = d.str(f, "", &c.Active)
		case "target_deployment":
			err = d.str(f, "", &c.Target)
		case "deployments":
			err = d.deployments(f, c.Deployments)
		case "storage":
			err = d.storage(f, &c.Storage)
		case "cluster_secret_file":
			err = d.str(f, "", &c.ClusterSecretFile)
		case "cluster_secret_previous_file":
			err = d.str(f, "", &c.ClusterSecretPreviousFile)
		case "http_tokens_file":
			err = d.str(f, "", &c.HTTPTokensFile)
		case "tls_cert_file":
			err = d.str(f, "", &c.TLSCertFile)
		case "tls_key_file":
			err = d.str(f, "", &c.TLSKeyFile)
		case "tls_ca_file":
			err = d.str(f, "", &c.TLSCAFile)
		default:
			err = unknownKey(f.line, "", f.key, topKeys)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (d *decoder) coordinators(f field, dst map[string]Addr) error {
	fs, err := d.fields(f.val, "coordinators")
	if err != nil {
		return err
	}
	for _, cf := range fs {
		where := coordinatorWhere(cf.key)
		v, err := d.list(cf, where, "[host, port]", 2)
		if err != nil {
			return err
		}
		port, err := parseInt(v[1])
		if err != nil {
			return invalid(cf.line, where, "port %q is not an integer", v[1])
		}
		dst[cf.key] = Addr{Host: v[0], Port: port}
	}
	return nil
}

func (d *decoder) deployments(f field, dst map[string]*Deployment) error {
	fs, err := d.fields(f.val, "deployments")
	if err != nil {
		return err
	}
	for _, df := range fs {
		dep, err := d.deployment(df)
		if err != nil {
			return err
		}
		dst[df.key] = dep
	}
	return nil
}

func (d *decoder) deployment(f field) (*Deployment, error) {
	dep := &Deployment{
		Name:              f.key,
		ReadRepair:        true, // as in the original implementation
		BackgroundHealing: true,
		HealingInterval:   DefaultHealingInterval,
		BucketsPerKey:     DefaultBucketsPerKey,
		RingPoints:        DefaultRingPoints,
		WriteAcks:         DefaultWriteAcks,
		MaxClockSkew:      DefaultMaxClockSkew,
		TombstoneGrace:    DefaultTombstoneGrace,
	}
	where := deploymentWhere(f.key)
	fs, err := d.fields(f.val, where)
	if err != nil {
		return nil, err
	}
	for _, df := range fs {
		switch df.key {
		case "read_repair":
			err = d.boolean(df, where, &dep.ReadRepair)
		case "background_healing":
			err = d.boolean(df, where, &dep.BackgroundHealing)
		case "background_healing_interval":
			err = d.interval(df, where, &dep.HealingInterval)
		case "write_acks":
			err = d.str(df, where, &dep.WriteAcks)
		case "max_clock_skew":
			err = d.interval(df, where, &dep.MaxClockSkew)
		case "strict_reads":
			err = d.boolean(df, where, &dep.StrictReads)
		case "tombstone_grace":
			err = d.interval(df, where, &dep.TombstoneGrace)
		case "hash":
			err = d.hash(df, where, dep)
		case "buckets":
			dep.Buckets, err = d.buckets(df, f.key)
		default:
			err = unknownKey(df.line, where, df.key, deploymentKeys)
		}
		if err != nil {
			return nil, err
		}
	}
	return dep, nil
}

func (d *decoder) hash(f field, where string, dep *Deployment) error {
	where += " hash"
	fs, err := d.fields(f.val, where)
	if err != nil {
		return err
	}
	for _, hf := range fs {
		switch hf.key {
		case "buckets_per_key":
			err = d.integer(hf, where, &dep.BucketsPerKey)
		case "points":
			err = d.integer(hf, where, &dep.RingPoints)
		default:
			err = unknownKey(hf.line, where, hf.key, hashKeys)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) buckets(f field, dep string) ([]Bucket, error) {
	fs, err := d.fields(f.val, deploymentWhere(dep)+" buckets")
	if err != nil {
		return nil, err
	}
	buckets := make([]Bucket, 0, len(fs))
	for _, bf := range fs {
		nfs, err := d.fields(bf.val, bucketWhere(dep, bf.key))
		if err != nil {
			return nil, err
		}
		b := Bucket{ID: bf.key}
		for _, nf := range nfs {
			n, err := d.node(nf, dep, bf.key)
			if err != nil {
				return nil, err
			}
			b.Nodes = append(b.Nodes, n)
		}
		sortNodes(b.Nodes)
		buckets = append(buckets, b)
	}
	sortBuckets(buckets)
	return buckets, nil
}

func (d *decoder) node(f field, dep, bucket string) (Node, error) {
	where := nodeWhere(dep, bucket, f.key)
	v, err := d.list(f, where, "[host, http_port, peer_port]", 3)
	if err != nil {
		return Node{}, err
	}
	var ports [2]int
	for i, name := range [...]string{"http_port", "peer_port"} {
		if ports[i], err = parseInt(v[i+1]); err != nil {
			return Node{}, invalid(f.line, where, "%s %q is not an integer", name, v[i+1])
		}
	}
	return Node{ID: f.key, Bucket: bucket, Host: v[0], HTTPPort: ports[0], PeerPort: ports[1]}, nil
}

func (d *decoder) storage(f field, s *Storage) error {
	const where = "storage"
	fs, err := d.fields(f.val, where)
	if err != nil {
		return err
	}
	for _, sf := range fs {
		switch sf.key {
		case "sync":
			err = d.str(sf, where, &s.Sync)
		case "sync_interval":
			err = d.interval(sf, where, &s.SyncInterval)
		case "max_value_bytes":
			err = d.size(sf, where, &s.MaxValueBytes)
		case "cache_bytes":
			err = d.size(sf, where, &s.CacheBytes)
		case "memtable_bytes":
			err = d.size(sf, where, &s.MemtableBytes)
		case "min_free_bytes":
			err = d.size(sf, where, &s.MinFreeBytes)
		default:
			err = unknownKey(sf.line, where, sf.key, storageKeys)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
