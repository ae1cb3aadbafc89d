package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tako-kv/tako/internal/tlstest"
)

// StartOptions configures the servers the harness starts.
type StartOptions struct {
	Bins      *Binaries // finder for tako-* and peer binaries; nil = a fresh one (no cleanup of builds)
	Self      []string  // command that runs `tako-bench`; default os.Executable(). StartBare appends "bare -p PORT -size N"
	SelfEnv   []string  // extra environment for Self (tests use it to turn the test binary into the bare server)
	ValueSize int       // size of the bare server's GET reply (default 100)
	Sync      string    // Tako storage.sync: always (default), interval, none
	TempDir   string    // parent of the servers' temp dirs ("" = os.TempDir())
	Layout    string    // cluster target: LayoutPorts ("" too) or LayoutHosts
	Timeout   time.Duration
}

func (o StartOptions) bins() *Binaries {
	if o.Bins == nil {
		return NewBinaries()
	}
	return o.Bins
}

func (o StartOptions) sync() string {
	if o.Sync == "" {
		return "always"
	}
	return o.Sync
}

func (o StartOptions) timeout(def time.Duration) time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return def
}

func (o StartOptions) mkdir(name string) (string, error) {
	return os.MkdirTemp(o.TempDir, "tako-bench-"+name+"-")
}

// peerSetup is what a peer target needs before it starts its processes.
type peerSetup struct {
	bin   string   // the installed program
	ports []int    // free on 127.0.0.1
	dirs  []string // one temp dir per process, owned by the caller
}

// setupPeer finds program on PATH (debPackage installs it), nports free ports and one temp dir per
// name; on error no dir is left.
func (o StartOptions) setupPeer(program, debPackage string, nports int, names ...string) (peerSetup, error) {
	var p peerSetup
	var err error
	if p.bin, err = o.bins().System(program, debPackage); err != nil {
		return p, err
	}
	if p.ports, err = FreePorts(nports); err != nil {
		return p, err
	}
	for _, name := range names {
		dir, err := o.mkdir(name)
		if err != nil {
			for _, d := range p.dirs {
				_ = os.RemoveAll(d)
			}
			return p, err
		}
		p.dirs = append(p.dirs, dir)
	}
	return p, nil
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// StartBare starts the do-nothing fasthttp server as a subprocess of tako-bench itself, so its
// GC and scheduling are isolated from the load generator's.
func StartBare(ctx context.Context, o StartOptions) (*Server, error) {
	self := o.Self
	if len(self) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%w: own executable: %w", ErrNoBinary, err)
		}
		self = []string{exe}
	}
	size := o.ValueSize
	if size <= 0 {
		size = 100
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	dir, err := o.mkdir("bare")
	if err != nil {
		return nil, err
	}
	a := addr(ports[0])
	args := append(self[1:len(self):len(self)], "bare", "-p", strconv.Itoa(ports[0]), "-size", strconv.Itoa(size))
	return startServer(ctx, serverSpec{
		ep: Endpoint{Name: "bare", Proto: ProtoHTTP, Addr: a}, bin: self[0], args: args, env: o.SelfEnv,
		dir: dir, ready: probeHTTP(a, "/health", "ok", 200), wait: o.timeout(10 * time.Second),
	})
}

// RunBare serves the bare server on addr until ctx is done (the `tako-bench bare` subcommand).
func RunBare(ctx context.Context, addr string, valueSize int) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bench: bare listen: %w", err)
	}
	return ServeBare(ctx, ln, valueSize)
}

// NodeConfig is a standalone configuration (the layout of examples/standalone.yaml) for node n1.
func NodeConfig(httpPort, peerPort int, sync string) string {
	return fmt.Sprintf(`# written by tako-bench
active_deployment: standalone
storage:
    sync: %s
deployments:
    standalone:
        read_repair: no
        background_healing: no
        hash:
            buckets_per_key: 1
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
`, sync, httpPort, peerPort)
}

// StartNode starts a standalone tako-node (config and var dir in a temp dir, free ports,
// storage.sync from o, default always) and waits for GET /health.
func StartNode(ctx context.Context, o StartOptions) (*Server, error) {
	return startNode(ctx, o, nodeMode{name: "node"})
}

// StartNodePeer is StartNode with the endpoint on the node's peer port: the
// same node driven over Tako's binary protocol instead of HTTP.
func StartNodePeer(ctx context.Context, o StartOptions) (*Server, error) {
	return startNode(ctx, o, nodeMode{name: "node-peer", peer: true})
}

// nodeMode is how a standalone node target is set up: its name, whether the endpoint is
// its peer port, and whether it requires a cluster secret (a fresh one, in its temp dir)
// and TLS (a fresh CA and certificate there: tlstest.Generate), which the endpoint then
// proves and speaks.
type nodeMode struct {
	name              string
	peer, secret, tls bool
}

// The node-peer variants compare's side-by-side targets run: the secret's cost is in the
// handshake, TLS's in every byte.
var (
	nodePeerSecret = nodeMode{name: "node-peer-secret", peer: true, secret: true}
	nodePeerTLS    = nodeMode{name: "node-peer-tls", peer: true, secret: true, tls: true}
)

func startNode(ctx context.Context, o StartOptions, m nodeMode) (*Server, error) {
	bin, err := o.bins().Tako("tako-node")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	dir, err := o.mkdir("node")
	if err != nil {
		return nil, err
	}
	ep := Endpoint{Name: m.name, Proto: ProtoHTTP, Addr: addr(ports[0])}
	if m.peer {
		ep.Proto, ep.Addr = ProtoPeer, addr(ports[1])
	}
	text, err := m.security(dir, &ep)
	var cfg string
	if err == nil {
		cfg, err = writeFile(dir, "standalone.yaml", NodeConfig(ports[0], ports[1], o.sync())+text)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	ready := probeHTTP(addr(ports[0]), "/health", "ok", 200)
	if m.tls {
		ready = probeTarget(ep) // the HTTP port speaks TLS too
	}
	return startServer(ctx, serverSpec{
		ep:  ep,
		bin: bin, args: []string{"-id", "n1", "-cfg", cfg, "-v", filepath.Join(dir, "var"), "-l", filepath.Join(dir, "node.log")},
		dir: dir, ready: ready, wait: o.timeout(30 * time.Second),
	})
}

// security writes m's secret and TLS files into dir, points ep at them and returns the
// configuration keys naming them.
func (m nodeMode) security(dir string, ep *Endpoint) (string, error) {
	var text string
	if m.secret {
		ep.SecretFile = filepath.Join(dir, "secret")
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		if err := os.WriteFile(ep.SecretFile, []byte(hex.EncodeToString(secret)), 0o600); err != nil {
			return "", err
		}
		text += "cluster_secret_file: " + ep.SecretFile + "\n"
	}
	if m.tls {
		f, err := tlstest.Generate(dir, "n1")
		if err != nil {
			return "", err
		}
		ep.TLSCAFile, ep.TLSCertFile, ep.TLSKeyFile = f.CA, f.Cert, f.Key
		text += f.ConfigKeys()
	}
	return text, nil
}

// Cluster layouts: where the cluster target's processes listen.
const (
	// LayoutPorts is examples/local_cluster.yaml's: every process on 127.0.0.1, each node with
	// ports of its own.
	LayoutPorts = "ports"
	// LayoutHosts is the seed's cluster.yaml's, on loopback: node i on host 127.0.0.(10+i), the
	// coordinator on 127.0.0.10, every node on the same HTTP and peer ports.
	LayoutHosts = "hosts"
)

// ClusterLayouts are the layouts StartCluster knows.
var ClusterLayouts = []string{LayoutPorts, LayoutHosts}

// ErrUnknownLayout reports a cluster layout StartCluster does not know.
var ErrUnknownLayout = errors.New("bench: unknown cluster layout")

// ParseLayout checks a layout name ("" is LayoutPorts).
func ParseLayout(s string) (string, error) {
	if s == "" {
		return LayoutPorts, nil
	}
	if !slices.Contains(ClusterLayouts, s) {
		return "", fmt.Errorf("%w %q (want %s)", ErrUnknownLayout, s, strings.Join(ClusterLayouts, " or "))
	}
	return s, nil
}

// clusterNodes is how many nodes local_cluster.yaml has (five buckets of two).
const clusterNodes = 10

// clusterHost is node i's host in layout (i = 0: the coordinator's).
func clusterHost(layout string, i int) string {
	if layout == LayoutHosts {
		return "127.0.0." + strconv.Itoa(10+i)
	}
	return "127.0.0.1"
}

// clusterPorts is how many ports ClusterConfig needs in layout: the coordinator's, then an
// http and a peer port per node (LayoutPorts) or one pair that every node shares (LayoutHosts).
func clusterPorts(layout string) int {
	if layout == LayoutHosts {
		return 3
	}
	return 1 + 2*clusterNodes
}

// ClusterConfig is examples/local_cluster.yaml's layout (coordinator c1, five buckets of two
// nodes, two buckets per key, read repair and daily healing) on the given ports (see
// clusterPorts), the hosts as layout places them.
func ClusterConfig(layout string, ports []int, sync string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by tako-bench, layout of examples/local_cluster.yaml (%s)
master_coordinator: c1
coordinators:
    c1: [%s, %d]
active_deployment: cluster
storage:
    sync: %s
deployments:
    cluster:
        read_repair: yes
        background_healing: yes
        background_healing_interval: '1d 0:00:00'
        hash:
            buckets_per_key: 2
        buckets:
`, layout, clusterHost(layout, 0), ports[0], sync)
	for n := 1; n <= clusterNodes; n++ {
		if n%2 == 1 {
			fmt.Fprintf(&b, "            b%d:\n", (n+1)/2)
		}
		http, peer := ports[1], ports[2]
		if layout != LayoutHosts {
			http, peer = ports[2*n-1], ports[2*n]
		}
		fmt.Fprintf(&b, "                n%d: [%s, %d, %d]\n", n, clusterHost(layout, n), http, peer)
	}
	return b.String()
}

// StartCluster starts tako-cluster with ClusterConfig in o's layout on free ports and its proxy
// on another, and waits until the proxy answers. CPU and RSS cover the launcher and all its
// descendants.
func StartCluster(ctx context.Context, o StartOptions) (*Server, error) {
	layout, err := ParseLayout(o.Layout)
	if err != nil {
		return nil, err
	}
	// tako-cluster starts these from its own directory: find or build them
	// first, so a build puts all four side by side.
	for _, name := range []string{"tako-node", "tako-proxy", "tako-coordinator"} {
		if _, err := o.bins().Tako(name); err != nil {
			return nil, err
		}
	}
	bin, err := o.bins().Tako("tako-cluster")
	if err != nil {
		return nil, err
	}
	ports, err := clusterFreePorts(layout)
	if err != nil {
		return nil, err
	}
	dir, err := o.mkdir("cluster")
	if err != nil {
		return nil, err
	}
	cfg, err := writeFile(dir, "local_cluster.yaml", ClusterConfig(layout, ports, o.sync()))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	proxy := ports[len(ports)-1]
	a := addr(proxy)
	health, value := probeHTTP(a, "/health", "", 200), probeHTTP(a, "/values/tako-bench-probe", "", 200, 404)
	return startServer(ctx, serverSpec{
		ep:  Endpoint{Name: "cluster", Proto: ProtoHTTP, Addr: a},
		bin: bin, args: []string{cfg, "-p", strconv.Itoa(proxy), "-v", filepath.Join(dir, "var")},
		dir: dir, wait: o.timeout(60 * time.Second),
		ready: func(ctx context.Context) error {
			if health(ctx) == nil {
				return nil
			}
			return value(ctx)
		},
	})
}

// clusterFreePorts returns ClusterConfig's ports, then the proxy's. In LayoutHosts each is free
// on every host and on 127.0.0.1, since the proxy listens on every interface.
func clusterFreePorts(layout string) ([]int, error) {
	n := clusterPorts(layout) + 1
	if layout != LayoutHosts {
		return FreePorts(n)
	}
	var hosts []string
	for i := 0; i <= clusterNodes; i++ {
		hosts = append(hosts, clusterHost(layout, i))
	}
	return SharedPorts(hosts, n)
}

// StartRedis starts redis-server on a free port with persistence snapshots off; durable adds
// the append-only file with fsync on every write.
func StartRedis(ctx context.Context, o StartOptions, durable bool) (*Server, error) {
	name := "redis"
	if durable {
		name = "redis-always"
	}
	p, err := o.setupPeer("redis-server", "redis-server", 1, name)
	if err != nil {
		return nil, err
	}
	a := addr(p.ports[0])
	return startServer(ctx, serverSpec{
		ep: Endpoint{Name: name, Proto: ProtoRedis, Addr: a}, bin: p.bin, args: redisArgs(p.ports[0], p.dirs[0], durable),
		dir: p.dirs[0], ready: probeRESP(a), wait: o.timeout(10 * time.Second),
	})
}

// redisArgs are redis-server's flags: loopback, data in dir, no snapshots; durable adds the
// append-only file fsynced before every reply.
func redisArgs(port int, dir string, durable bool) []string {
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--protected-mode", "no", "--daemonize", "no", "--logfile", ""}
	if durable {
		return append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	return append(args, "--appendonly", "no")
}

// StartRedisReplica starts a Redis primary and one replica of it (replicaof), both with the
// append-only file fsynced on every write, each in its own temp dir, and waits until a write is
// acknowledged by the replica. The load goes to the primary over ProtoRedisWait, every SET
// followed by WAIT 1; reads go there too, since a replica may lag.
func StartRedisReplica(ctx context.Context, o StartOptions) (*Server, error) {
	p, err := o.setupPeer("redis-server", "redis-server", 2, "redis-primary", "redis-replica")
	if err != nil {
		return nil, err
	}
	bin, ports, dirs := p.bin, p.ports, p.dirs
	primary, replica := addr(ports[0]), addr(ports[1])
	// The primary syncs the replica at once instead of waiting for more replicas to come.
	pargs := append(redisArgs(ports[0], dirs[0], true), "--repl-diskless-sync-delay", "0")
	rargs := append(redisArgs(ports[1], dirs[1], true), "--replicaof", "127.0.0.1", strconv.Itoa(ports[0]))
	return startGroup(ctx, []serverSpec{
		{ep: Endpoint{Name: "redis-replica", Proto: ProtoRedisWait, Addr: primary}, bin: bin, args: pargs,
			dir: dirs[0], ready: probeRESPWait(primary), wait: o.timeout(30 * time.Second)},
		{ep: Endpoint{Name: "redis-replica (replica)", Proto: ProtoRedis, Addr: replica}, bin: bin, args: rargs,
			dir: dirs[1], ready: probeRESP(replica), wait: o.timeout(10 * time.Second)},
	})
}

// StartEtcd starts a single-member etcd (data dir in a temp dir, free client and peer ports)
// and waits for its /health.
func StartEtcd(ctx context.Context, o StartOptions) (*Server, error) {
	p, err := o.setupPeer("etcd", "etcd-server", 2, "etcd")
	if err != nil {
		return nil, err
	}
	m := etcdMember{name: "bench", dir: p.dirs[0], client: p.ports[0], peer: p.ports[1]}
	a := addr(m.client)
	return startServer(ctx, serverSpec{
		ep: Endpoint{Name: "etcd", Proto: ProtoEtcd, Addr: a}, bin: p.bin, args: m.args(m.member(), filepath.Base(m.dir)),
		dir: m.dir, ready: probeHTTP(a, "/health", `"true"`, 200), wait: o.timeout(30 * time.Second),
	})
}

// EtcdMembers is the size of the etcd3 target's cluster.
const EtcdMembers = 3

// StartEtcd3 starts an EtcdMembers-member etcd cluster on free loopback ports, each member in a
// temp dir of its own, and waits until every member's /health says the cluster has a leader.
// Raft acknowledges a write once a majority has it in its log, and etcd fsyncs the log before
// that. The load is spread over the members (worker i on member i%3), as etcd's own client
// balances over its endpoints: a follower forwards writes to the leader and serves a
// linearizable read once the leader confirmed its read index, so every member does its share
// of the JSON gateway and gRPC work while the leader orders every write.
func StartEtcd3(ctx context.Context, o StartOptions) (*Server, error) {
	names := make([]string, EtcdMembers)
	for i := range names {
		names[i] = "etcd3-m" + strconv.Itoa(i+1)
	}
	p, err := o.setupPeer("etcd", "etcd-server", 2*EtcdMembers, names...)
	if err != nil {
		return nil, err
	}
	bin, ports, dirs := p.bin, p.ports, p.dirs
	members := make([]etcdMember, EtcdMembers)
	urls := make([]string, EtcdMembers)
	addrs := make([]string, EtcdMembers)
	for i := range members {
		members[i] = etcdMember{name: names[i], dir: dirs[i], client: ports[2*i], peer: ports[2*i+1]}
		urls[i] = members[i].member()
		addrs[i] = addr(members[i].client)
	}
	token := filepath.Base(dirs[0]) // unique: members of another run never join this cluster
	specs := make([]serverSpec, EtcdMembers)
	for i, m := range members {
		specs[i] = serverSpec{
			ep: Endpoint{Name: m.name, Proto: ProtoEtcd, Addr: addrs[i]}, bin: bin, args: m.args(strings.Join(urls, ","), token),
			dir: m.dir, ready: probeHTTP(addrs[i], "/health", `"true"`, 200), wait: o.timeout(30 * time.Second),
		}
	}
	specs[0].ep = Endpoint{Name: "etcd3", Proto: ProtoEtcd, Addr: addrs[0], Addrs: addrs}
	return startGroup(ctx, specs)
}

// etcdMember is one etcd process: its name, data dir and loopback ports.
type etcdMember struct {
	name         string
	dir          string
	client, peer int
}

func (m etcdMember) peerURL() string { return "http://" + addr(m.peer) }

// member is the member's entry in --initial-cluster.
func (m etcdMember) member() string { return m.name + "=" + m.peerURL() }

// args are the member's flags; initialCluster lists every member(), token names
// the cluster.
func (m etcdMember) args(initialCluster, token string) []string {
	client := "http://" + addr(m.client)
	return []string{"--name", m.name, "--data-dir", filepath.Join(m.dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", m.peerURL(), "--initial-advertise-peer-urls", m.peerURL(),
		"--initial-cluster", initialCluster, "--initial-cluster-state", "new", "--initial-cluster-token", token,
		"--quota-backend-bytes", strconv.Itoa(8 << 30), "--max-request-bytes", strconv.Itoa(32 << 20),
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"}
}
