package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// idForm restricts deployment, bucket, node and coordinator IDs: they become
// directory names, log fields and header values.
var idForm = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// hostForm is a DNS name or IPv4 address; IPv6 is checked with netip.
var hostForm = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9._-]{0,252})$`)

// Validate checks the configuration's meaning: references between sections,
// ranges, and that no two processes share an address. The error names the
// field and where it is; it wraps ErrInvalid. Validation order is fixed
// (deployments and IDs in natural order), so the same document always reports
// the same first problem.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateDeploymentRefs,
		c.validateCoordinators,
		c.validateDeployments,
		c.validateNodeIdentity,
		c.validateAddresses,
		c.Storage.validate,
		c.validateSecretFiles,
		c.validateTLSFiles,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateDeploymentRefs() error {
	if len(c.Deployments) == 0 {
		return invalid(0, "", "deployments: at least one deployment is required")
	}
	have := strings.Join(sortedKeys(c.Deployments), ", ")
	switch {
	case c.Active == "":
		return invalid(0, "", "active_deployment is missing (deployments: %s)", have)
	case c.Deployments[c.Active] == nil:
		return invalid(0, "", "active_deployment %q is not a deployment (deployments: %s)", c.Active, have)
	case c.Target == "":
		return nil
	case c.Deployments[c.Target] == nil:
		return invalid(0, "", "target_deployment %q is not a deployment (deployments: %s)", c.Target, have)
	case c.Target == c.Active:
		return invalid(0, "", "target_deployment %q is the active_deployment (to finish a migration, remove target_deployment)", c.Target)
	}
	return nil
}

func (c *Config) validateCoordinators() error {
	for _, id := range sortedKeys(c.Coordinators) {
		where := coordinatorWhere(id)
		if err := checkID(where, id); err != nil {
			return err
		}
		a := c.Coordinators[id]
		if err := checkHost(where, a.Host); err != nil {
			return err
		}
		if err := checkPort(where, "port", a.Port); err != nil {
			return err
		}
	}
	if c.MasterCoordinator != "" {
		if _, ok := c.Coordinators[c.MasterCoordinator]; !ok {
			return invalid(0, "", "master_coordinator %q is not in coordinators (coordinators: %s)",
				c.MasterCoordinator, strings.Join(sortedKeys(c.Coordinators), ", "))
		}
	}
	return nil
}

func (c *Config) validateDeployments() error {
	for _, name := range sortedKeys(c.Deployments) {
		if err := validateDeployment(name, c.Deployments[name]); err != nil {
			return err
		}
	}
	return nil
}

func validateDeployment(name string, d *Deployment) error {
	where := deploymentWhere(name)
	if err := checkID(where, name); err != nil {
		return err
	}
	switch {
	case d == nil:
		return invalid(0, where, "is empty")
	case d.Name != name:
		return invalid(0, where, "Name %q does not match its key", d.Name)
	case len(d.Buckets) == 0:
		return invalid(0, where, "has no buckets")
	case d.BucketsPerKey < 1 || d.BucketsPerKey > len(d.Buckets):
		return invalid(0, where, "hash.buckets_per_key %d out of range 1..%d (the number of buckets)", d.BucketsPerKey, len(d.Buckets))
	case d.RingPoints < 1 || d.RingPoints > MaxRingPoints:
		return invalid(0, where, "hash.points %d out of range 1..%d", d.RingPoints, MaxRingPoints)
	case len(d.Buckets)*d.RingPoints > MaxRingSize:
		// Every node and proxy builds the ring: 50 million points took each
		// 15 s and 1.3 GiB.
		return invalid(0, where, "%d buckets × hash.points %d = %d ring points, more than %d", len(d.Buckets), d.RingPoints, len(d.Buckets)*d.RingPoints, MaxRingSize)
	case d.HealingInterval <= 0:
		return invalid(0, where, "background_healing_interval must be positive, not %s", FormatInterval(d.HealingInterval))
	case d.TombstoneGrace <= d.HealingInterval:
		return invalid(0, where, "tombstone_grace %s must exceed background_healing_interval %s (a tombstone must outlive a healing pass)",
			FormatInterval(d.TombstoneGrace), FormatInterval(d.HealingInterval))
	case d.MaxClockSkew <= 0:
		return invalid(0, where, "max_clock_skew must be positive, not %s", FormatInterval(d.MaxClockSkew))
	case d.WriteAcks != WriteAcksOne && d.WriteAcks != WriteAcksQuorum && d.WriteAcks != WriteAcksAll:
		return invalid(0, where, "write_acks %q is not one of %s, %s, %s", d.WriteAcks, WriteAcksOne, WriteAcksQuorum, WriteAcksAll)
	}
	return validateBuckets(name, d.Buckets)
}

func validateBuckets(dep string, buckets []Bucket) error {
	bucketOf := map[string]string{} // node id -> bucket id, within this deployment
	seenBucket := map[string]bool{}
	for _, b := range buckets {
		where := bucketWhere(dep, b.ID)
		if err := checkID(where, b.ID); err != nil {
			return err
		}
		if seenBucket[b.ID] {
			return invalid(0, where, "bucket is listed twice")
		}
		seenBucket[b.ID] = true
		if len(b.Nodes) == 0 {
			return invalid(0, where, "bucket has no nodes")
		}
		for _, n := range b.Nodes {
			if prev, dup := bucketOf[n.ID]; dup {
				return invalid(0, nodeWhere(dep, b.ID, n.ID), "node is listed twice in the deployment (also in bucket %q)", prev)
			}
			bucketOf[n.ID] = b.ID
			if err := validateNode(dep, b.ID, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateNode(dep, bucket string, n Node) error {
	where := nodeWhere(dep, bucket, n.ID)
	if err := checkID(where, n.ID); err != nil {
		return err
	}
	if n.Bucket != bucket {
		return invalid(0, where, "Bucket field %q does not match its bucket", n.Bucket)
	}
	if err := checkHost(where, n.Host); err != nil {
		return err
	}
	if err := checkPort(where, "http_port", n.HTTPPort); err != nil {
		return err
	}
	if err := checkPort(where, "peer_port", n.PeerPort); err != nil {
		return err
	}
	if n.HTTPPort == n.PeerPort {
		return invalid(0, where, "http_port and peer_port are both %d", n.HTTPPort)
	}
	return nil
}

// placedNode is a node with the deployment it was found in, for messages.
type placedNode struct {
	Node
	dep string
}

func (p placedNode) where() string { return nodeWhere(p.dep, p.Bucket, p.ID) }

// spec prints the node's address as the document writes it.
func (p placedNode) spec() string {
	return fmt.Sprintf("[%s, %d, %d]", p.Host, p.HTTPPort, p.PeerPort)
}

// distinctNodes returns the first occurrence of every node id over all
// deployments (natural order), plus every later occurrence in `again`.
func (c *Config) distinctNodes() (first []placedNode, again []placedNode) {
	seen := map[string]bool{}
	for _, dep := range sortedKeys(c.Deployments) {
		for _, b := range c.Deployments[dep].Buckets {
			for _, n := range b.Nodes {
				p := placedNode{Node: n, dep: dep}
				if seen[n.ID] {
					again = append(again, p)
					continue
				}
				seen[n.ID] = true
				first = append(first, p)
			}
		}
	}
	return first, again
}

// validateNodeIdentity: a node id names one process everywhere in the file,
// so every deployment listing it must give the same host and ports (its
// bucket may change; that is what a migration does).
func (c *Config) validateNodeIdentity() error {
	first, again := c.distinctNodes()
	byID := make(map[string]placedNode, len(first))
	for _, p := range first {
		byID[p.ID] = p
	}
	for _, p := range again {
		if o := byID[p.ID]; !p.sameAddress(o.Node) {
			return invalid(0, p.where(), "is %s here but %s in deployment %q (a node id names one process; give a new node a new id)",
				p.spec(), o.spec(), o.dep)
		}
	}
	return nil
}

// validateAddresses refuses two processes (nodes, by http and peer port, and
// coordinators) listening on the same host:port. Host names compare
// case-insensitively and IP addresses by value (::1 is 0:0::1); aliases such
// as localhost/127.0.0.1 are not resolved.
func (c *Config) validateAddresses() error {
	owner := map[string]string{} // host:port -> who listens there
	claim := func(where, what, host string, port int) error {
		addr := joinHostPort(canonicalHost(host), port)
		if prev, ok := owner[addr]; ok {
			return invalid(0, where, "%s %s is already used by %s", what, addr, prev)
		}
		owner[addr] = where
		return nil
	}
	for _, id := range sortedKeys(c.Coordinators) {
		a := c.Coordinators[id]
		if err := claim(coordinatorWhere(id), "address", a.Host, a.Port); err != nil {
			return err
		}
	}
	first, _ := c.distinctNodes()
	for _, p := range first {
		if err := claim(p.where(), "http address", p.Host, p.HTTPPort); err != nil {
			return err
		}
		if err := claim(p.where(), "peer address", p.Host, p.PeerPort); err != nil {
			return err
		}
	}
	return nil
}

func (s Storage) validate() error {
	const where = "storage"
	switch {
	case s.Sync != SyncAlways && s.Sync != SyncInterval && s.Sync != SyncNone:
		return invalid(0, where, "sync %q is not one of %s, %s, %s", s.Sync, SyncAlways, SyncInterval, SyncNone)
	case s.SyncInterval <= 0:
		return invalid(0, where, "sync_interval must be positive, not %s", FormatInterval(s.SyncInterval))
	case s.MaxValueBytes < 1 || s.MaxValueBytes > MaxValueBytesCap:
		return invalid(0, where, "max_value_bytes %d out of range 1..%d", s.MaxValueBytes, MaxValueBytesCap)
	case s.CacheBytes < MinStoreBytes:
		return invalid(0, where, "cache_bytes %d is below the minimum %d (1MiB)", s.CacheBytes, MinStoreBytes)
	case s.MemtableBytes < MinStoreBytes || s.MemtableBytes > MaxMemtableBytes:
		return invalid(0, where, "memtable_bytes %d out of range %d..%d", s.MemtableBytes, MinStoreBytes, MaxMemtableBytes)
	case s.MinFreeBytes < 0:
		return invalid(0, where, "min_free_bytes %d must not be negative", s.MinFreeBytes)
	}
	return nil
}

func checkID(where, id string) error {
	if !idForm.MatchString(id) {
		return invalid(0, where, "id must be 1-64 of A-Z a-z 0-9 . _ - and start with a letter or digit")
	}
	return nil
}

func checkPort(where, field string, port int) error {
	if port < 1 || port > 65535 {
		return invalid(0, where, "%s %d out of range 1..65535", field, port)
	}
	return nil
}

// checkHost accepts DNS names, IPv4 and (unbracketed) IPv6 addresses.
func checkHost(where, host string) error {
	switch {
	case host == "":
		return invalid(0, where, "host is empty")
	case strings.HasPrefix(host, "["):
		return invalid(0, where, "host %q: write IPv6 addresses without brackets", host)
	case strings.Contains(host, ":"):
		if _, err := netip.ParseAddr(host); err != nil {
			return invalid(0, where, "host %q is not a host name or IP address", host)
		}
	case !hostForm.MatchString(host):
		return invalid(0, where, "host %q is not a host name or IP address", host)
	}
	return nil
}

// validateSecretFiles checks the cluster secret and HTTP token keys as text: the files
// themselves are read (and refused when others may read them) by each process, on its own
// host.
func (c *Config) validateSecretFiles() error {
	switch {
	case c.ClusterSecretPreviousFile != "" && c.ClusterSecretFile == "":
		return invalid(0, "", "cluster_secret_previous_file is set without cluster_secret_file")
	case c.ClusterSecretPreviousFile != "" && c.ClusterSecretPreviousFile == c.ClusterSecretFile:
		return invalid(0, "", "cluster_secret_previous_file is cluster_secret_file (%s)", c.ClusterSecretFile)
	}
	for _, p := range []string{c.ClusterSecretFile, c.ClusterSecretPreviousFile} {
		if !usablePath(p) {
			return invalid(0, "", "cluster secret file %q: not a usable path", p)
		}
	}
	if !usablePath(c.HTTPTokensFile) {
		return invalid(0, "", "http_tokens_file %q: not a usable path", c.HTTPTokensFile)
	}
	return nil
}

// usablePath refuses paths no file can have, or that hide whitespace at their ends.
func usablePath(p string) bool { return !strings.ContainsRune(p, 0) && strings.TrimSpace(p) == p }

// validateTLSFiles checks the TLS keys as text: tls_cert_file and tls_key_file go
// together, and need tls_ca_file, against which peers verify each other. The files are
// read by each process at start, on its own host.
func (c *Config) validateTLSFiles() error {
	switch {
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		return invalid(0, "", "tls_key_file is set without tls_cert_file")
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return invalid(0, "", "tls_cert_file is set without tls_key_file")
	case c.TLSCertFile != "" && c.TLSCAFile == "":
		return invalid(0, "", "tls_cert_file is set without tls_ca_file (the CA that signs the members' certificates: peers verify each other against it)")
	case c.TLSCertFile == "" && c.TLSCAFile != "":
		return invalid(0, "", "tls_ca_file is set without tls_cert_file and tls_key_file")
	}
	for _, k := range [...]struct{ key, path string }{
		{"tls_cert_file", c.TLSCertFile}, {"tls_key_file", c.TLSKeyFile}, {"tls_ca_file", c.TLSCAFile},
	} {
		if !usablePath(k.path) {
			return invalid(0, "", "%s %q: not a usable path", k.key, k.path)
		}
	}
	return nil
}

// canonicalHost is host as addresses compare: an IP address in its one
// textual form, a name in lower case.
func canonicalHost(host string) string {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().String()
	}
	return strings.ToLower(host)
}
