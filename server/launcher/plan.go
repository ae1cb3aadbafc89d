package launcher

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tako-kv/tako/server/config"
)

// Kind is a Tako binary tako-cluster starts.
type Kind int

const (
	Coordinator Kind = iota
	Node
	Proxy
)

// Binary returns the executable's name.
func (k Kind) Binary() string {
	return [...]string{"tako-coordinator", "tako-node", "tako-proxy"}[k]
}

// plural names a phase in progress lines ("nodes up 7/10").
func (k Kind) plural() string { return [...]string{"coordinators", "nodes", "proxies"}[k] }

// Spec is one process to run.
type Spec struct {
	Name   string // c1, n3, proxy-8080: unique, names the log file
	Kind   Kind
	Args   []string // without the binary
	Log    string   // VARDIR/<Name>.log
	Listen string   // where it listens, for people
	Health string   // URL that answers 200 once it serves
}

// Plan lists the processes for cfg in start order: coordinators, nodes,
// proxies. It refuses -s names that are not nodes and proxy ports that are
// duplicated or taken by the configuration.
func Plan(cfg *config.Config, o Options) ([]Spec, error) {
	skip, err := skipSet(cfg, o.Skip)
	if err != nil {
		return nil, err
	}
	if err := checkProxyPorts(cfg, o.ProxyPorts); err != nil {
		return nil, err
	}
	p := newPlanner(cfg, o)
	var specs []Spec
	for _, id := range coordinatorIDs(cfg) {
		a := cfg.Coordinators[id]
		specs = append(specs, p.spec(id, Coordinator, p.scheme+a.String()+"/configuration", localURL(p.scheme, a.Host, a.Port, "/health"),
			"-id", id, "-cfg", o.ConfigPath))
	}
	for _, n := range cfg.Nodes() {
		if !skip[n.ID] {
			specs = append(specs, p.node(n))
		}
	}
	for _, port := range o.ProxyPorts {
		ps := strconv.Itoa(port)
		specs = append(specs, p.spec("proxy-"+ps, Proxy, p.scheme+"localhost:"+ps, p.healthURL("", port),
			append([]string{"-p", ps}, p.source...)...))
	}
	return specs, nil
}

// planner builds Specs with the flags every child shares. It is made once
// from the start-up configuration, so a node that appears in a later one
// gets exactly the flags the first nodes got (the same coordinators: those
// tako-cluster started).
type planner struct {
	scheme string // of nodes' and proxies' HTTP: "https://" when tls_cert_file is set
	varDir string
	source []string // -c per coordinator, or -cfg FILE
	common []string // -v VARDIR [-d] [-token-file FILE]
}

func newPlanner(cfg *config.Config, o Options) planner {
	common := []string{"-v", o.VarDir}
	if o.Debug {
		common = append(common, "-d")
	}
	if o.TokenFile != "" {
		common = append(common, "-token-file", o.TokenFile)
	}
	return planner{scheme: httpScheme(cfg), varDir: o.VarDir, source: configSourceArgs(cfg, o.ConfigPath), common: common}
}

// coordinatorCA is the CA file children verify coordinators against (-cacert): the
// configuration's tls_ca_file, absolute, when it sets TLS and names coordinators; else "".
func coordinatorCA(cfg *config.Config, cfgPath string) string {
	if cfg.TLSCertFile == "" || len(cfg.Coordinators) == 0 {
		return ""
	}
	ca := cfg.TLSFiles(filepath.Dir(cfgPath)).CA
	if abs, err := filepath.Abs(ca); err == nil {
		ca = abs
	}
	return ca
}

func (p planner) spec(name string, kind Kind, listen, health string, args ...string) Spec {
	log := filepath.Join(p.varDir, name+".log")
	args = append(append(args, p.common...), "-l", log)
	return Spec{Name: name, Kind: kind, Args: args, Log: log, Listen: listen, Health: health}
}

func (p planner) node(n config.Node) Spec {
	return p.spec(n.ID, Node, strings.TrimSuffix(p.scheme, "://")+" "+n.HTTPAddr()+"  peer "+n.PeerAddr(), p.healthURL(n.Host, n.HTTPPort),
		append([]string{"-id", n.ID}, p.source...)...)
}

// coordinatorIDs returns the coordinators, master first, then in natural order.
func coordinatorIDs(cfg *config.Config) []string {
	ids := make([]string, 0, len(cfg.Coordinators))
	for id := range cfg.Coordinators {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		switch {
		case a == cfg.MasterCoordinator:
			return -1
		case b == cfg.MasterCoordinator:
			return 1
		}
		return config.NaturalCompare(a, b)
	})
	return ids
}

// configSourceArgs tells a node or proxy where its configuration comes
// from: every coordinator, or the file when there is none.
func configSourceArgs(cfg *config.Config, path string) []string {
	ids := coordinatorIDs(cfg)
	if len(ids) == 0 {
		return []string{"-cfg", path}
	}
	var args []string
	for _, id := range ids {
		args = append(args, "-c", cfg.Coordinators[id].String())
	}
	if ca := coordinatorCA(cfg, path); ca != "" {
		args = append(args, "-cacert", ca)
	}
	return args
}

func skipSet(cfg *config.Config, names []string) (map[string]bool, error) {
	skip := make(map[string]bool, len(names))
	for _, name := range names {
		if _, ok := cfg.FindNode(name); !ok {
			var ids []string
			for _, n := range cfg.Nodes() {
				ids = append(ids, n.ID)
			}
			return nil, fmt.Errorf("-s %s: no such node in the active or target deployment (nodes: %s)",
				name, strings.Join(ids, ", "))
		}
		skip[name] = true
	}
	return skip, nil
}

// checkProxyPorts refuses a -p given twice or used by the configuration
// (on any host: the proxy listens on every interface).
func checkProxyPorts(cfg *config.Config, ports []int) error {
	used := map[int]string{}
	for id, a := range cfg.Coordinators {
		used[a.Port] = "coordinator " + id
	}
	for _, n := range cfg.Nodes() {
		used[n.HTTPPort] = "node " + n.ID + " http_port"
		used[n.PeerPort] = "node " + n.ID + " peer_port"
	}
	for _, p := range ports {
		if who, ok := used[p]; ok {
			return fmt.Errorf("-p %d: port already used by %s", p, who)
		}
		used[p] = "another -p"
	}
	return nil
}

// healthURL is where to poll a node or proxy.
func (p planner) healthURL(host string, port int) string {
	return localURL(p.scheme, host, port, "/health")
}

// httpScheme is the scheme of cfg's nodes and proxies: with tls_cert_file they serve
// HTTPS (coordinators always speak HTTP).
func httpScheme(cfg *config.Config) string {
	if cfg.TLSCertFile != "" {
		return "https://"
	}
	return "http://"
}

// localURL is path on a process of this machine; an empty or wildcard host
// is reached over loopback.
func localURL(scheme, host string, port int, path string) string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(port)) + path
}
