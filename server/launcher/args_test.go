package launcher

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/config"
)

func TestParseArgs(t *testing.T) {
	f := func(args string, want Options) {
		t.Helper()
		got, err := ParseArgs(strings.Fields(args), io.Discard)
		if err != nil {
			t.Errorf("%q: %v", args, err)
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %+v\nwant %+v", args, got, want)
		}
	}
	def := func(o Options) Options {
		if o.VarDir == "" {
			o.VarDir = DefaultVarDir
		}
		o.StartTimeout, o.StopTimeout, o.HandoffTimeout = DefaultStartTimeout, DefaultStopTimeout, DefaultHandoffTimeout
		return o
	}
	f("local_cluster.yaml -p 8080", def(Options{ConfigPath: "local_cluster.yaml", ProxyPorts: []int{8080}}))
	f("-p 8080 c.yaml", def(Options{ConfigPath: "c.yaml", ProxyPorts: []int{8080}}))
	f("-p 8080 c.yaml -p=8081 -s n1 -s n2,n3 -v /tmp/v -d",
		def(Options{ConfigPath: "c.yaml", ProxyPorts: []int{8080, 8081}, Skip: []string{"n1", "n2", "n3"}, VarDir: "/tmp/v", Debug: true}))
	f("c.yaml", def(Options{ConfigPath: "c.yaml"}))
	f("-d -- -odd-name.yaml", def(Options{ConfigPath: "-odd-name.yaml", Debug: true}))
	o := def(Options{ConfigPath: "c.yaml"})
	o.StartTimeout = 90 * time.Second
	f("c.yaml -wait 90s", o)
	o = def(Options{ConfigPath: "c.yaml"})
	o.HandoffTimeout = 30 * time.Second
	f("c.yaml -handoff 30s", o)

	bad := func(args, want string) {
		t.Helper()
		_, err := ParseArgs(strings.Fields(args), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", args, err, want)
		}
	}
	bad("-p 8080", "missing the configuration file")
	bad("a.yaml b.yaml", "one configuration file expected")
	bad("a.yaml -p 0", "want 1..65535")
	bad("a.yaml -p http", "want 1..65535")
	bad("a.yaml -x", "flag provided but not defined: -x")
	bad("a.yaml -wait 0s", "must be positive")
	bad("a.yaml -handoff 0s", "-handoff 0s: must be positive")
	if _, err := ParseArgs([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

const planDoc = `
master_coordinator: c2
coordinators:
    c1: [127.0.0.1, 4701]
    c2: [127.0.0.1, 4702]
active_deployment: d
target_deployment: grown
deployments:
    d:
        buckets:
            b1:
                n1: [127.0.0.1, 5711, 4711]
                n2: [localhost, 5712, 4712]
    grown:
        buckets:
            b1:
                n1: [127.0.0.1, 5711, 4711]
                n2: [localhost, 5712, 4712]
            b2:
                n10: [0.0.0.0, 5720, 4720]
`

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPlan(t *testing.T) {
	cfg := parse(t, planDoc)
	specs, err := Plan(cfg, Options{ConfigPath: "etc/c.yaml", VarDir: "var", ProxyPorts: []int{8080}, Skip: []string{"n2"}, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range specs {
		got = append(got, s.Kind.Binary()+" "+strings.Join(s.Args, " ")+" | "+s.Health+" | "+s.Log)
	}
	want := []string{
		"tako-coordinator -id c2 -cfg etc/c.yaml -v var -d -l var/c2.log | http://127.0.0.1:4702/health | var/c2.log",
		"tako-coordinator -id c1 -cfg etc/c.yaml -v var -d -l var/c1.log | http://127.0.0.1:4701/health | var/c1.log",
		"tako-node -id n1 -c 127.0.0.1:4702 -c 127.0.0.1:4701 -v var -d -l var/n1.log | http://127.0.0.1:5711/health | var/n1.log",
		"tako-node -id n10 -c 127.0.0.1:4702 -c 127.0.0.1:4701 -v var -d -l var/n10.log | http://127.0.0.1:5720/health | var/n10.log",
		"tako-proxy -p 8080 -c 127.0.0.1:4702 -c 127.0.0.1:4701 -v var -d -l var/proxy-8080.log | http://127.0.0.1:8080/health | var/proxy-8080.log",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Without coordinators every node and proxy reads the file.
	standalone := parse(t, "active_deployment: s\ndeployments:\n  s:\n    buckets:\n      b1:\n        n1: [localhost, 5711, 4711]\n")
	specs, err = Plan(standalone, Options{ConfigPath: "s.yaml", VarDir: "v", ProxyPorts: []int{8080}})
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || strings.Join(specs[0].Args, " ") != "-id n1 -cfg s.yaml -v v -l v/n1.log" ||
		strings.Join(specs[1].Args, " ") != "-p 8080 -cfg s.yaml -v v -l v/proxy-8080.log" {
		t.Errorf("standalone plan: %+v", specs)
	}
}

func TestPlanErrors(t *testing.T) {
	cfg := parse(t, planDoc)
	f := func(o Options, want string) {
		t.Helper()
		if _, err := Plan(cfg, o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", o, err, want)
		}
	}
	f(Options{Skip: []string{"n3"}}, "-s n3: no such node in the active or target deployment (nodes: n1, n2, n10)")
	f(Options{ProxyPorts: []int{4711}}, "-p 4711: port already used by node n1 peer_port")
	f(Options{ProxyPorts: []int{4702}}, "-p 4702: port already used by coordinator c2")
	f(Options{ProxyPorts: []int{8080, 8080}}, "-p 8080: port already used by another -p")
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindBinaries(t *testing.T) {
	cfg := parse(t, planDoc)
	specs, err := Plan(cfg, Options{ConfigPath: "c.yaml", ProxyPorts: []int{8080}})
	if err != nil {
		t.Fatal(err)
	}
	dir, pathDir := t.TempDir(), t.TempDir()
	t.Setenv("PATH", pathDir)
	writeScript(t, filepath.Join(dir, "tako-node"), "exit 0")
	if err := os.WriteFile(filepath.Join(dir, "tako-proxy"), nil, 0o644); err != nil { // not executable
		t.Fatal(err)
	}
	_, err = findBinaries(dir, specs)
	if err == nil || !strings.Contains(err.Error(), "cannot find tako-coordinator, tako-proxy (looked in "+dir+" and on $PATH)") {
		t.Fatalf("missing binaries: %v", err)
	}
	writeScript(t, filepath.Join(pathDir, "tako-coordinator"), "exit 0")
	writeScript(t, filepath.Join(pathDir, "tako-proxy"), "exit 0")
	bins, err := findBinaries(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Kind]string{Coordinator: filepath.Join(pathDir, "tako-coordinator"),
		Node: filepath.Join(dir, "tako-node"), Proxy: filepath.Join(pathDir, "tako-proxy")}
	if !reflect.DeepEqual(bins, want) {
		t.Errorf("found %v, want %v", bins, want)
	}
	// Only what the plan uses is required.
	nodesOnly, _ := Plan(parse(t, "active_deployment: s\ndeployments:\n  s:\n    buckets:\n      b1:\n        n1: [localhost, 5711, 4711]\n"), Options{})
	t.Setenv("PATH", t.TempDir())
	if _, err := findBinaries(dir, nodesOnly); err != nil {
		t.Errorf("nodes only: %v", err)
	}
}

// The token file defaults to the configuration's http_tokens_file, relative
// to the configuration's directory, and reaches every child as an absolute
// -token-file.
func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte("tok-0123456789abcdef read-only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "coordinators: {c1: [localhost, 4701]}\nactive_deployment: s\nhttp_tokens_file: tokens\ndeployments:\n  s:\n    buckets:\n      b1:\n        n1: [localhost, 5711, 4711]\n")
	o, err := Options{ConfigPath: filepath.Join(dir, "c.yaml"), ProxyPorts: []int{8080}}.withToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "tokens"); o.TokenFile != want || o.token != "tok-0123456789abcdef" {
		t.Fatalf("token file %q token %q, want %q", o.TokenFile, o.token, want)
	}
	specs, err := Plan(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if i := slices.Index(s.Args, "-token-file"); i < 0 || s.Args[i+1] != o.TokenFile {
			t.Errorf("%s: args %q lack -token-file %s", s.Name, s.Args, o.TokenFile)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tokens"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (Options{ConfigPath: filepath.Join(dir, "c.yaml")}).withToken(cfg); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("a world-readable token file: %v", err)
	}
}
