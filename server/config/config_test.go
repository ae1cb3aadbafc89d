package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const examplesDir = "../../examples"

func loadExample(t *testing.T, name string) *Config {
	t.Helper()
	c, err := Load(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return c
}

func nodeIDs(ns []Node) []string {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	return ids
}

func TestExamples(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		c := loadExample(t, "standalone.yaml")
		d := c.ActiveDeployment()
		if c.Active != "standalone" || c.Target != "" || c.TargetDeployment() != nil {
			t.Fatalf("active %q target %q", c.Active, c.Target)
		}
		if d.ReadRepair || d.BackgroundHealing || d.BucketsPerKey != 1 || d.HealingInterval != 24*time.Hour {
			t.Fatalf("deployment %+v", d)
		}
		want := Node{ID: "n1", Bucket: "b1", Host: "localhost", HTTPPort: 5711, PeerPort: 4711}
		if got := c.Nodes(); !reflect.DeepEqual(got, []Node{want}) {
			t.Fatalf("nodes %+v", got)
		}
		if c.MasterCoordinator != "" || len(c.Coordinators) != 0 {
			t.Fatalf("coordinators %q %v", c.MasterCoordinator, c.Coordinators)
		}
		if c.Storage != DefaultStorage() {
			t.Fatalf("storage %+v", c.Storage)
		}
	})
	for _, name := range []string{"cluster.yaml", "local_cluster.yaml"} {
		t.Run(name, func(t *testing.T) {
			c := loadExample(t, name)
			d := c.ActiveDeployment()
			if c.Active != "cluster" || !d.ReadRepair || !d.BackgroundHealing ||
				d.HealingInterval != 24*time.Hour || d.BucketsPerKey != 2 ||
				d.RingPoints != 120 || d.WriteAcks != WriteAcksQuorum {
				t.Fatalf("deployment %+v", d)
			}
			if len(d.Buckets) != 5 || len(c.Nodes()) != 10 {
				t.Fatalf("%d buckets, %d nodes", len(d.Buckets), len(c.Nodes()))
			}
			wantIDs := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10"}
			if got := nodeIDs(c.Nodes()); !slices.Equal(got, wantIDs) {
				t.Fatalf("node order %v", got)
			}
			if got := nodeIDs(d.Buckets[4].Nodes); d.Buckets[4].ID != "b5" || !slices.Equal(got, []string{"n9", "n10"}) {
				t.Fatalf("bucket %s nodes %v", d.Buckets[4].ID, got)
			}
			if c.MasterCoordinator != "c1" || len(c.Coordinators) != 1 {
				t.Fatalf("coordinators %q %v", c.MasterCoordinator, c.Coordinators)
			}
			n10, ok := c.FindNode("n10")
			if !ok || n10.Bucket != "b5" || n10.HTTPPort != 5711 && n10.HTTPPort != 5720 {
				t.Fatalf("n10 = %+v %v", n10, ok)
			}
		})
	}
	t.Run("local_cluster addresses", func(t *testing.T) {
		c := loadExample(t, "local_cluster.yaml")
		n10, _ := c.FindNode("n10")
		if n10.HTTPAddr() != "localhost:5720" || n10.PeerAddr() != "localhost:4720" {
			t.Fatalf("n10 %s %s", n10.HTTPAddr(), n10.PeerAddr())
		}
		if a := c.Coordinators["c1"].String(); a != "localhost:4701" {
			t.Fatalf("c1 %s", a)
		}
	})
	t.Run("sample", func(t *testing.T) {
		c := loadExample(t, "sample.yaml")
		d := c.ActiveDeployment()
		if c.Active != "main" || c.Target != "" || len(c.Deployments) != 2 {
			t.Fatalf("active %q target %q deployments %d", c.Active, c.Target, len(c.Deployments))
		}
		if len(d.Buckets) != 3 || len(c.Nodes()) != 6 || d.BucketsPerKey != 2 || d.WriteAcks != WriteAcksQuorum {
			t.Fatalf("deployment %+v", d)
		}
		if g := c.Deployments["grown"]; g.HealingInterval != 12*time.Hour || !g.ReadRepair || len(g.Buckets) != 4 {
			t.Fatalf("grown %+v", g)
		}
		if c.Storage != DefaultStorage() {
			t.Fatalf("storage %+v, want the defaults it documents", c.Storage)
		}
	})
	t.Run("sample migrating", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(examplesDir, "sample.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		doc := strings.Replace(string(data), "# target_deployment: grown", "target_deployment: grown", 1)
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if c.TargetDeployment() == nil || c.TargetDeployment().Name != "grown" {
			t.Fatalf("target %q", c.Target)
		}
		if got := nodeIDs(c.Nodes()); !slices.Equal(got, []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}) {
			t.Fatalf("nodes %v", got)
		}
		if n, ok := c.FindNode("n8"); !ok || n.Bucket != "b4" {
			t.Fatalf("n8 %+v %v", n, ok)
		}
		if _, ok := c.FindNode("n9"); ok {
			t.Fatal("found n9")
		}
	})
}

func TestRoundTrip(t *testing.T) {
	docs := map[string]string{}
	for _, f := range []string{"standalone.yaml", "cluster.yaml", "local_cluster.yaml", "sample.yaml"} {
		data, err := os.ReadFile(filepath.Join(examplesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		docs[f] = string(data)
	}
	docs["custom"] = `
active_deployment: a
target_deployment: b
storage: {sync: interval, sync_interval: 1.5s, max_value_bytes: 1MiB, cache_bytes: 8MiB, memtable_bytes: 4194304}
deployments:
  a: {write_acks: all, background_healing_interval: 1500ms, hash: {points: 7}, buckets: {x: {n1: ["::1", 1, 2]}}}
  b: {write_acks: one, buckets: {x: {n1: ["::1", 1, 2]}, y: {n2: [h2, 1, 2]}}}
`
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			c1, err := Parse([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			js, err := c1.JSON()
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Parse(js)
			if err != nil {
				t.Fatalf("Parse(JSON()): %v\n%s", err, js)
			}
			if !reflect.DeepEqual(c1, c2) {
				t.Fatalf("round trip differs:\n%+v\n%+v", c1, c2)
			}
			if len(c1.Version) != 16 || c1.Version != c2.Version {
				t.Fatalf("versions %q %q", c1.Version, c2.Version)
			}
		})
	}
}

func TestIPv6(t *testing.T) {
	c, err := Parse([]byte("active_deployment: a\ndeployments: {a: {buckets: {x: {n1: ['::1', 1, 2]}}}}"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c.FindNode("n1"); n.PeerAddr() != "[::1]:2" {
		t.Fatalf("peer addr %s", n.PeerAddr())
	}
	// An address is not an id.
	_, err = Parse([]byte("active_deployment: a\ndeployments: {a: {buckets: {x: {\"::1\": [h, 1, 2]}}}}"))
	if err == nil || !strings.Contains(err.Error(), `node "::1": id must be`) {
		t.Fatalf("err = %v", err)
	}
}

func TestVersion(t *testing.T) {
	parse := func(doc string) *Config {
		t.Helper()
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := parse("active_deployment: a\ndeployments: {a: {buckets: {b1: {n1: [h, 1, 2]}}}}")
	// Same content, other spelling: explicit defaults, JSON, reordered keys.
	b := parse(`{"deployments": {"a": {"hash": {"buckets_per_key": "1", "points": 120}, "read_repair": "yes",
		"background_healing_interval": "24h", "buckets": {"b1": {"n1": ["h", "1", 2]}}}}, "active_deployment": "a"}`)
	c := parse("active_deployment: a\ndeployments: {a: {buckets: {b1: {n1: [h, 1, 3]}}}}")
	if a.Version != b.Version {
		t.Fatalf("same content, versions %s %s", a.Version, b.Version)
	}
	if a.Version == c.Version {
		t.Fatalf("different content, same version %s", a.Version)
	}
	const pinned = "standalone.yaml"
	// The version is a pure function of the content: pin one so a change in
	// the canonical form (which would split a mixed-version cluster) is noticed.
	if v := loadExample(t, pinned).Version; v != "0655dd610ce30729" {
		t.Fatalf("%s version %s changed; the canonical JSON form changed", pinned, v)
	}
}

func TestBooleans(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"yes", true}, {"Yes", true}, {"YES", true}, {"on", true}, {"On", true}, {"true", true},
		{"True", true}, {"y", true}, {`"yes"`, true},
		{"no", false}, {"No", false}, {"off", false}, {"OFF", false}, {"false", false}, {"n", false}, {"'no'", false},
	} {
		doc := "active_deployment: a\ndeployments: {a: {read_repair: " + tc.in + ", background_healing: " + tc.in +
			", buckets: {b1: {n1: [h, 1, 2]}}}}"
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if d := c.ActiveDeployment(); d.ReadRepair != tc.want || d.BackgroundHealing != tc.want {
			t.Fatalf("%s: read_repair %v background_healing %v", tc.in, d.ReadRepair, d.BackgroundHealing)
		}
	}
}

func TestJSONDocument(t *testing.T) {
	doc := `{
  "master_coordinator": "c1",
  "coordinators": {"c1": ["localhost", "4701"]},
  "active_deployment": "d",
  "target_deployment": null,
  "deployments": {"d": {"read_repair": false, "background_healing": true,
    "background_healing_interval": 3600,
    "hash": {"buckets_per_key": 1},
    "buckets": {"b10": {"n1": ["localhost", 5711, "4711"]}, "b9": {"n2": ["127.0.0.1", 5712, 4712]}}}},
  "storage": {"max_value_bytes": "1048576", "sync": "none"}
}`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d := c.ActiveDeployment()
	if d.ReadRepair || !d.BackgroundHealing || d.HealingInterval != time.Hour || c.Target != "" {
		t.Fatalf("deployment %+v target %q", d, c.Target)
	}
	if d.Buckets[0].ID != "b9" || d.Buckets[1].ID != "b10" {
		t.Fatalf("bucket order %s %s", d.Buckets[0].ID, d.Buckets[1].ID)
	}
	if n, _ := c.FindNode("n1"); n.PeerPort != 4711 || c.Coordinators["c1"].Port != 4701 {
		t.Fatalf("n1 %+v c1 %+v", n, c.Coordinators["c1"])
	}
	if c.Storage.MaxValueBytes != 1<<20 || c.Storage.Sync != SyncNone || c.Storage.CacheBytes != DefaultCacheBytes {
		t.Fatalf("storage %+v", c.Storage)
	}
}

func TestAliasesAndMerge(t *testing.T) {
	doc := `
active_deployment: new
target_deployment: old
deployments:
  old: &old
    read_repair: no
    hash: {buckets_per_key: 1}
    buckets: &b
      b1: {n1: [h, 1, 2]}
  new:
    <<: *old
    read_repair: yes
    buckets:
      <<: *b
      b2: {n2: [h, 3, 4]}
`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	n, o := c.Deployments["new"], c.Deployments["old"]
	if !n.ReadRepair || o.ReadRepair || len(n.Buckets) != 2 || len(o.Buckets) != 1 || n.Name != "new" {
		t.Fatalf("new %+v old %+v", n, o)
	}
}

func TestAliasBomb(t *testing.T) {
	// Each level references the previous one ten times: 10^8 nodes if expanded.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		prev := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		b.WriteString(strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	b.WriteString("deployments:\n  d:\n    buckets:\n      b1:\n        <<: *a8\n")
	if _, err := Parse([]byte(b.String())); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("active_deployment: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), path+": config: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestNaturalCompare(t *testing.T) {
	sorted := []string{"", "0", "01", "1", "2", "9", "10", "a", "b1", "b2", "b9", "b10", "b11", "b100",
		"n", "n1", "n1a", "n1b", "n2", "n10", "n10a", "node", "x99999999999999999999999", "x100000000000000000000000"}
	for i := range sorted {
		for j := range sorted {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := NaturalCompare(sorted[i], sorted[j]); got != want {
				t.Errorf("NaturalCompare(%q, %q) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
	shuffled := slices.Clone(sorted)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, NaturalCompare)
	if !slices.Equal(shuffled, sorted) {
		t.Fatalf("sorted %q", shuffled)
	}
}

// The keys added for the hybrid clock and strict reads parse, default, and
// survive the canonical JSON form; at their defaults they leave the version
// of an older configuration unchanged.
func TestClockSkewAndStrictReads(t *testing.T) {
	base := "active_deployment: a\ndeployments: {a: {%sbuckets: {b1: {n1: [h, 1, 2]}}}}"
	parse := func(extra string) *Config {
		t.Helper()
		c, err := Parse([]byte(fmt.Sprintf(base, extra)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	def := parse("")
	if d := def.ActiveDeployment(); d.MaxClockSkew != DefaultMaxClockSkew || d.StrictReads {
		t.Fatalf("defaults: skew %s strict %v", d.MaxClockSkew, d.StrictReads)
	}
	if v := parse("max_clock_skew: 60s, strict_reads: no, ").Version; v != def.Version {
		t.Fatalf("explicit defaults changed the version: %s vs %s", v, def.Version)
	}
	c := parse("max_clock_skew: 2s, strict_reads: yes, ")
	back := reparse(t, c)
	if d := back.ActiveDeployment(); d.MaxClockSkew != 2*time.Second || !d.StrictReads || back.Version != c.Version {
		t.Fatalf("after JSON: skew %s strict %v version %s want %s", d.MaxClockSkew, d.StrictReads, back.Version, c.Version)
	}
}

// Changed names every storage key whose value an edit changed, as the
// document spells it; every key the decoder knows is covered.
func TestStorageChanged(t *testing.T) {
	const doc = "active_deployment: d\ndeployments:\n    d:\n        buckets:\n            b1: {n1: [127.0.0.1, 5711, 4711]}\n"
	edits := map[string]string{"sync": "interval", "sync_interval": "50ms", "max_value_bytes": "1MiB",
		"cache_bytes": "64MiB", "memtable_bytes": "32MiB", "min_free_bytes": "0"}
	base, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := base.Storage.Changed(base.Storage); got != nil {
		t.Errorf("no edit: %v", got)
	}
	for _, key := range storageKeys {
		edited, err := Parse([]byte(doc + "storage: {" + key + ": " + edits[key] + "}\n"))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got := base.Storage.Changed(edited.Storage); !slices.Equal(got, []string{"storage." + key}) {
			t.Errorf("storage.%s edited: Changed = %v", key, got)
		}
	}
}
