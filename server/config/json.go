package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// The canonical document: the seed's layout with every default spelled out.
// encoding/json writes struct fields in declaration order and map keys sorted,
// so equal configurations give byte-identical output in every process.
type (
	jsonConfig struct {
		MasterCoordinator string                    `json:"master_coordinator,omitempty"`
		Coordinators      map[string][2]any         `json:"coordinators,omitempty"`
		Active            string                    `json:"active_deployment"`
		Target            string                    `json:"target_deployment,omitempty"`
		Deployments       map[string]jsonDeployment `json:"deployments"`
		Storage           jsonStorage               `json:"storage"`
		// Added after the seed format: written only when set, so configurations
		// without them keep their version.
		ClusterSecretFile         string `json:"cluster_secret_file,omitempty"`
		ClusterSecretPreviousFile string `json:"cluster_secret_previous_file,omitempty"`
		HTTPTokensFile            string `json:"http_tokens_file,omitempty"`
		TLSCertFile               string `json:"tls_cert_file,omitempty"`
		TLSKeyFile                string `json:"tls_key_file,omitempty"`
		TLSCAFile                 string `json:"tls_ca_file,omitempty"`
	}
	jsonDeployment struct {
		ReadRepair        bool   `json:"read_repair"`
		BackgroundHealing bool   `json:"background_healing"`
		HealingInterval   string `json:"background_healing_interval"`
		WriteAcks         string `json:"write_acks"`
		// Keys added after the seed format are written only when not the
		// default, so configurations that do not use them keep their version
		// across an upgrade.
		MaxClockSkew string                       `json:"max_clock_skew,omitempty"`
		StrictReads  bool                         `json:"strict_reads,omitempty"`
		Grace        string                       `json:"tombstone_grace,omitempty"`
		Hash         jsonHash                     `json:"hash"`
		Buckets      map[string]map[string][3]any `json:"buckets"`
	}
	jsonHash struct {
		BucketsPerKey int `json:"buckets_per_key"`
		Points        int `json:"points"`
	}
	jsonStorage struct {
		Sync          string `json:"sync"`
		SyncInterval  string `json:"sync_interval"`
		MaxValueBytes int64  `json:"max_value_bytes"`
		CacheBytes    int64  `json:"cache_bytes"`
		MemtableBytes int64  `json:"memtable_bytes"`
		MinFreeBytes  int64  `json:"min_free_bytes"`
	}
)

// JSON returns the canonical JSON form: what a coordinator serves and what
// Version hashes. Parse accepts it back and yields an equal Config.
func (c *Config) JSON() ([]byte, error) {
	doc := jsonConfig{
		MasterCoordinator:         c.MasterCoordinator,
		Coordinators:              make(map[string][2]any, len(c.Coordinators)),
		Active:                    c.Active,
		Target:                    c.Target,
		Deployments:               make(map[string]jsonDeployment, len(c.Deployments)),
		ClusterSecretFile:         c.ClusterSecretFile,
		ClusterSecretPreviousFile: c.ClusterSecretPreviousFile,
		HTTPTokensFile:            c.HTTPTokensFile,
		TLSCertFile:               c.TLSCertFile,
		TLSKeyFile:                c.TLSKeyFile,
		TLSCAFile:                 c.TLSCAFile,
		Storage: jsonStorage{
			Sync:          c.Storage.Sync,
			SyncInterval:  FormatInterval(c.Storage.SyncInterval),
			MaxValueBytes: c.Storage.MaxValueBytes,
			CacheBytes:    c.Storage.CacheBytes,
			MemtableBytes: c.Storage.MemtableBytes,
			MinFreeBytes:  c.Storage.MinFreeBytes,
		},
	}
	for id, a := range c.Coordinators {
		doc.Coordinators[id] = [2]any{a.Host, a.Port}
	}
	for name, d := range c.Deployments {
		if d != nil {
			doc.Deployments[name] = deploymentJSON(d)
		}
	}
	return json.Marshal(doc)
}

// MarshalJSON makes encoding/json emit the canonical form.
func (c *Config) MarshalJSON() ([]byte, error) { return c.JSON() }

func deploymentJSON(d *Deployment) jsonDeployment {
	out := jsonDeployment{
		ReadRepair:        d.ReadRepair,
		BackgroundHealing: d.BackgroundHealing,
		HealingInterval:   FormatInterval(d.HealingInterval),
		WriteAcks:         d.WriteAcks,
		StrictReads:       d.StrictReads,
		Hash:              jsonHash{BucketsPerKey: d.BucketsPerKey, Points: d.RingPoints},
		Buckets:           make(map[string]map[string][3]any, len(d.Buckets)),
	}
	for _, b := range d.Buckets {
		nodes := make(map[string][3]any, len(b.Nodes))
		for _, n := range b.Nodes {
			nodes[n.ID] = [3]any{n.Host, n.HTTPPort, n.PeerPort}
		}
		out.Buckets[b.ID] = nodes
	}
	if d.MaxClockSkew != DefaultMaxClockSkew {
		out.MaxClockSkew = FormatInterval(d.MaxClockSkew)
	}
	if d.TombstoneGrace != DefaultTombstoneGrace {
		out.Grace = FormatInterval(d.TombstoneGrace)
	}
	return out
}

// versionOf names a canonical document: 16 hex digits of its SHA-256.
func versionOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:8])
}
