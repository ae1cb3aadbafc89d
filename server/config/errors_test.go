package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// validDoc parses; each broken case below changes one thing in it.
const validDoc = `
master_coordinator: c1
coordinators:
  c1: [localhost, 4701]
active_deployment: a
deployments:
  a:
    read_repair: yes
    background_healing: no
    background_healing_interval: 1d 0:00:00
    write_acks: quorum
    hash: {buckets_per_key: 2, points: 120}
    buckets:
      b1:
        n1: [localhost, 5711, 4711]
        n2: [localhost, 5712, 4712]
      b2:
        n3: [localhost, 5713, 4713]
  b:
    buckets:
      b1:
        n1: [localhost, 5711, 4711]
storage:
  sync: always
`

func TestValidDoc(t *testing.T) {
	if _, err := Parse([]byte(validDoc)); err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, old, new string // replace old with new in validDoc; old "" means new is the whole document
		want           string // substring of the error
	}{
		{"empty", "", "", "config: empty document"},
		{"comment only", "", "# nothing\n", "empty document"},
		{"not a mapping", "", "- a\n- b\n", "top level: must be a mapping, not a list"},
		{"yaml syntax", "", "a: [b\n", "config: yaml: line"},
		{"two documents", "", validDoc + "---\nactive_deployment: a\n", "more than one YAML document"},
		{"unknown top key", "active_deployment: a", "active_deployment: a\nactive_deploymnet: a",
			`line 6: top level: unknown key "active_deploymnet" (did you mean "active_deployment"?)`},
		{"unknown deployment key", "read_repair: yes", "read_repiar: yes",
			`config: line 8: deployment "a": unknown key "read_repiar" (did you mean "read_repair"?)`},
		{"unknown hash key", "points: 120", "pionts: 120", `deployment "a" hash: unknown key "pionts"`},
		{"unknown storage key", "sync: always", "fsync: always", `storage: unknown key "fsync" (did you mean "sync"?)`},
		{"unknown key no suggestion", "sync: always", "zzzzzzzz: 1", `known keys: sync, sync_interval`},
		{"duplicate key", "n2: [localhost, 5712, 4712]", "n2: [localhost, 5712, 4712]\n        n2: [localhost, 5719, 4719]",
			`deployment "a" bucket "b1": duplicate key "n2"`},
		{"missing active", "active_deployment: a\n", "", "active_deployment is missing (deployments: a, b)"},
		{"unknown active", "active_deployment: a", "active_deployment: zz", `active_deployment "zz" is not a deployment (deployments: a, b)`},
		{"unknown target", "active_deployment: a", "active_deployment: a\ntarget_deployment: c", `target_deployment "c" is not a deployment`},
		{"target is active", "active_deployment: a", "active_deployment: a\ntarget_deployment: a", `target_deployment "a" is the active_deployment`},
		{"no deployments", "", "active_deployment: a\ndeployments: {}\n", "at least one deployment"},
		{"deployment without buckets", "  b:\n    buckets:\n      b1:\n        n1: [localhost, 5711, 4711]\n", "  b:\n    read_repair: no\n",
			`deployment "b": has no buckets`},
		{"empty bucket", "      b2:\n        n3: [localhost, 5713, 4713]", "      b2:", `deployment "a" bucket "b2": bucket has no nodes`},
		{"node in two buckets", "n3: [localhost, 5713, 4713]", "n1: [localhost, 5711, 4711]",
			`deployment "a" bucket "b2" node "n1": node is listed twice in the deployment (also in bucket "b1")`},
		{"node moved address across deployments", "  b:\n    buckets:\n      b1:\n        n1: [localhost, 5711, 4711]",
			"  b:\n    buckets:\n      b1:\n        n1: [localhost, 5799, 4711]",
			`deployment "b" bucket "b1" node "n1": is [localhost, 5799, 4711] here but [localhost, 5711, 4711] in deployment "a"`},
		{"http port range", "n3: [localhost, 5713, 4713]", "n3: [localhost, 70000, 4713]",
			`config: deployment "a" bucket "b2" node "n3": http_port 70000 out of range 1..65535`},
		{"peer port zero", "n3: [localhost, 5713, 4713]", "n3: [localhost, 5713, 0]", `node "n3": peer_port 0 out of range 1..65535`},
		{"port not a number", "n3: [localhost, 5713, 4713]", "n3: [localhost, 5713, 47x3]", `node "n3": peer_port "47x3" is not an integer`},
		{"port float", "n3: [localhost, 5713, 4713]", "n3: [localhost, 5713.5, 4713]", `http_port "5713.5" is not an integer`},
		{"node entry too short", "n3: [localhost, 5713, 4713]", "n3: [localhost, 5713]", `node "n3": must be [host, http_port, peer_port]`},
		{"node entry mapping", "n3: [localhost, 5713, 4713]", "n3: {host: localhost}", `node "n3": must be [host, http_port, peer_port]`},
		{"empty host", "n3: [localhost, 5713, 4713]", "n3: ['', 5713, 4713]", `node "n3": host is empty`},
		{"bad host", "n3: [localhost, 5713, 4713]", "n3: ['a b', 5713, 4713]", `node "n3": host "a b" is not a host name`},
		{"bracketed ipv6", "n3: [localhost, 5713, 4713]", "n3: ['[::1]', 5713, 4713]", `without brackets`},
		{"http equals peer", "n3: [localhost, 5713, 4713]", "n3: [localhost, 5713, 5713]", `http_port and peer_port are both 5713`},
		{"duplicate address", "n3: [localhost, 5713, 4713]", "n3: [localhost, 5713, 4712]",
			`deployment "a" bucket "b2" node "n3": peer address localhost:4712 is already used by deployment "a" bucket "b1" node "n2"`},
		{"one IPv6 address written two ways", "n3: [localhost, 5713, 4713]", "n3: ['::1', 5713, 4713]\n        n4: ['0:0::1', 5714, 4713]",
			`node "n4": peer address [::1]:4713 is already used by deployment "a" bucket "b2" node "n3"`},
		{"address taken by coordinator", "n3: [localhost, 5713, 4713]", "n3: [LOCALHOST, 4701, 4713]",
			`node "n3": http address localhost:4701 is already used by coordinator "c1"`},
		{"bad id", "      b2:", "      'b 2':", `deployment "a" bucket "b 2": id must be`},
		{"buckets_per_key zero", "buckets_per_key: 2", "buckets_per_key: 0", `deployment "a": hash.buckets_per_key 0 out of range 1..2`},
		{"buckets_per_key too big", "buckets_per_key: 2", "buckets_per_key: 3", `hash.buckets_per_key 3 out of range 1..2 (the number of buckets)`},
		{"points", "points: 120", "points: 0", `hash.points 0 out of range 1..10000`},
		{"ring too large", "points: 120}\n    buckets:\n", "points: 10000}\n    buckets:\n" + manyBuckets(105),
			`deployment "a": 107 buckets × hash.points 10000 = 1070000 ring points, more than 1048576`},
		{"bad interval", "1d 0:00:00", "1 fortnight", `deployment "a": background_healing_interval: interval "1 fortnight": want forms like`},
		{"clock minutes", "1d 0:00:00", "1d 0:60:00", `minutes and seconds must be below 60`},
		{"zero interval", "1d 0:00:00", "0:00:00", `background_healing_interval must be positive`},
		{"interval list", "1d 0:00:00", "[1d]", `background_healing_interval must be a single value, not a list`},
		{"bad bool", "read_repair: yes", "read_repair: maybe", `deployment "a": read_repair: "maybe" is not a boolean`},
		{"write_acks", "write_acks: quorum", "write_acks: most", `deployment "a": write_acks "most" is not one of one, quorum, all`},
		{"max_clock_skew zero", "write_acks: quorum", "write_acks: quorum\n    max_clock_skew: 0s", `deployment "a": max_clock_skew must be positive`},
		{"max_clock_skew word", "write_acks: quorum", "write_acks: quorum\n    max_clock_skew: soon", `max_clock_skew`},
		{"tombstone_grace short", "write_acks: quorum", "write_acks: quorum\n    tombstone_grace: 12h", `tombstone_grace 12:00:00 must exceed background_healing_interval 1d`},
		{"strict_reads word", "write_acks: quorum", "write_acks: quorum\n    strict_reads: maybe", `strict_reads`},
		{"storage sync", "sync: always", "sync: sometimes", `storage: sync "sometimes" is not one of always, interval, none`},
		{"storage size unit", "sync: always", "cache_bytes: twelve", `storage: cache_bytes: "twelve" is not a size`},
		{"storage size unknown unit", "sync: always", "cache_bytes: 12PB", `unknown unit "PB"`},
		{"storage value too big", "sync: always", "max_value_bytes: 2GiB", `max_value_bytes 2147483648 out of range`},
		{"storage sync interval", "sync: always", "sync_interval: 0", `storage: sync_interval must be positive`},
		{"master not a coordinator", "master_coordinator: c1", "master_coordinator: c2",
			`master_coordinator "c2" is not in coordinators (coordinators: c1)`},
		{"coordinator bad port", "c1: [localhost, 4701]", "c1: [localhost, 0]", `config: coordinator "c1": port 0 out of range 1..65535`},
		{"coordinator shape", "c1: [localhost, 4701]", "c1: localhost:4701", `coordinator "c1": must be [host, port]`},
		{"coordinators not mapping", "  c1: [localhost, 4701]", "  - c1", `coordinators: must be a mapping, not a list`},
		{"key not a string", "  c1: [localhost, 4701]", "  [c1]: [localhost, 4701]", `a key must be a string, not a list`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.new
			if tc.old != "" {
				if !strings.Contains(validDoc, tc.old) {
					t.Fatalf("test bug: %q not in validDoc", tc.old)
				}
				doc = strings.Replace(validDoc, tc.old, tc.new, 1)
			}
			c, err := Parse([]byte(doc))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\n  does not contain %q", err, tc.want)
			}
		})
	}
}

// Hand-built configurations get the same checks (and a usable message).
func TestValidateBuilt(t *testing.T) {
	build := func() *Config {
		return &Config{
			Active: "d",
			Deployments: map[string]*Deployment{"d": {
				Name: "d", BucketsPerKey: 1, RingPoints: 1, HealingInterval: 1, WriteAcks: WriteAcksAll, MaxClockSkew: 1, TombstoneGrace: 2,
				Buckets: []Bucket{{ID: "b", Nodes: []Node{{ID: "n", Bucket: "b", Host: "h", HTTPPort: 1, PeerPort: 2}}}},
			}},
			Storage: DefaultStorage(),
		}
	}
	if err := build().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"nil deployment", func(c *Config) { c.Deployments["e"] = nil }, `deployment "e": is empty`},
		{"name mismatch", func(c *Config) { c.Deployments["d"].Name = "x" }, `Name "x" does not match`},
		{"bucket field", func(c *Config) { c.Deployments["d"].Buckets[0].Nodes[0].Bucket = "x" }, `Bucket field "x"`},
		{"bucket twice", func(c *Config) { d := c.Deployments["d"]; d.Buckets = append(d.Buckets, d.Buckets[0]) }, `bucket is listed twice`},
		{"zero storage", func(c *Config) { c.Storage = Storage{} }, `storage: sync "" is not one of`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := build()
			tc.mutate(c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// manyBuckets is n more buckets of one node each, for deployment "a".
func manyBuckets(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "      m%d: {x%d: [localhost, %d, %d]}\n", i, i, 20000+i, 30000+i)
	}
	return b.String()
}
