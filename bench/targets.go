package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// StartOptions configures the servers the harness starts.
type StartOptions struct {
	Bins      *Binaries // finder for tako-* and peer binaries; nil = a fresh one (no cleanup of builds)
	Self      []string  // command that runs `tako-bench`; default os.Executable(). StartBare appends "bare -p PORT -size N"
	SelfEnv   []string  // extra environment for Self (tests use it to turn the test binary into the bare server)
	ValueSize int       // size of the bare server's GET reply (default 100)
	Sync      string    // Tako storage.sync: always (default), interval, none
	TempDir   string    // parent of the servers' temp dirs ("" = os.TempDir())
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
	return startNode(ctx, o, false)
}

// StartNodePeer is StartNode with the endpoint on the node's peer port: the
// same node driven over Tako's binary protocol instead of HTTP.
func StartNodePeer(ctx context.Context, o StartOptions) (*Server, error) {
	return startNode(ctx, o, true)
}

func startNode(ctx context.Context, o StartOptions, peer bool) (*Server, error) {
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
	cfg, err := writeFile(dir, "standalone.yaml", NodeConfig(ports[0], ports[1], o.sync()))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	a := addr(ports[0])
	ep := Endpoint{Name: "node", Proto: ProtoHTTP, Addr: a}
	if peer {
		ep = Endpoint{Name: "node-peer", Proto: ProtoPeer, Addr: addr(ports[1])}
	}
	return startServer(ctx, serverSpec{
		ep:  ep,
		bin: bin, args: []string{"-id", "n1", "-cfg", cfg, "-v", filepath.Join(dir, "var"), "-l", filepath.Join(dir, "node.log")},
		dir: dir, ready: probeHTTP(a, "/health", "ok", 200), wait: o.timeout(30 * time.Second),
	})
}

// ClusterConfig is examples/local_cluster.yaml's layout (coordinator c1, five buckets of two
// nodes, two buckets per key, read repair and daily healing) on the given ports: ports[0] is the
// coordinator, then an http and a peer port per node. It needs 21 ports.
func ClusterConfig(ports []int, sync string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by tako-bench, layout of examples/local_cluster.yaml
master_coordinator: c1
coordinators:
    c1: [127.0.0.1, %d]
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
`, ports[0], sync)
	for n := 1; n <= 10; n++ {
		if n%2 == 1 {
			fmt.Fprintf(&b, "            b%d:\n", (n+1)/2)
		}
		fmt.Fprintf(&b, "                n%d: [127.0.0.1, %d, %d]\n", n, ports[2*n-1], ports[2*n])
	}
	return b.String()
}

// StartCluster starts tako-cluster with ClusterConfig on free ports and its proxy on another,
// and waits until the proxy answers. CPU and RSS cover the launcher and all its descendants.
func StartCluster(ctx context.Context, o StartOptions) (*Server, error) {
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
	ports, err := FreePorts(22)
	if err != nil {
		return nil, err
	}
	dir, err := o.mkdir("cluster")
	if err != nil {
		return nil, err
	}
	cfg, err := writeFile(dir, "local_cluster.yaml", ClusterConfig(ports[:21], o.sync()))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	a := addr(ports[21])
	health, value := probeHTTP(a, "/health", "", 200), probeHTTP(a, "/values/tako-bench-probe", "", 200, 404)
	return startServer(ctx, serverSpec{
		ep:  Endpoint{Name: "cluster", Proto: ProtoHTTP, Addr: a},
		bin: bin, args: []string{cfg, "-p", strconv.Itoa(ports[21]), "-v", filepath.Join(dir, "var")},
		dir: dir, wait: o.timeout(60 * time.Second),
		ready: func(ctx context.Context) error {
			if health(ctx) == nil {
				return nil
			}
			return value(ctx)
		},
	})
}

// StartRedis starts redis-server on a free port with persistence snapshots off; durable adds
// the append-only file with fsync on every write.
func StartRedis(ctx context.Context, o StartOptions, durable bool) (*Server, error) {
	bin, err := o.bins().System("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	name := "redis"
	if durable {
		name = "redis-always"
	}
	dir, err := o.mkdir(name)
	if err != nil {
		return nil, err
	}
	args := []string{"--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--protected-mode", "no", "--daemonize", "no", "--logfile", ""}
	if durable {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	a := addr(ports[0])
	return startServer(ctx, serverSpec{
		ep: Endpoint{Name: name, Proto: ProtoRedis, Addr: a}, bin: bin, args: args,
		dir: dir, ready: probeRESP(a), wait: o.timeout(10 * time.Second),
	})
}

// StartEtcd starts a single-member etcd (data dir in a temp dir, free client and peer ports)
// and waits for its /health.
func StartEtcd(ctx context.Context, o StartOptions) (*Server, error) {
	bin, err := o.bins().System("etcd", "etcd-server")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	dir, err := o.mkdir("etcd")
	if err != nil {
		return nil, err
	}
	client, peer := "http://"+addr(ports[0]), "http://"+addr(ports[1])
	args := []string{"--name", "bench", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench=" + peer, "--initial-cluster-state", "new",
		"--quota-backend-bytes", strconv.Itoa(8 << 30), "--max-request-bytes", strconv.Itoa(32 << 20),
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"}
	a := addr(ports[0])
	return startServer(ctx, serverSpec{
		ep: Endpoint{Name: "etcd", Proto: ProtoEtcd, Addr: a}, bin: bin, args: args,
		dir: dir, ready: probeHTTP(a, "/health", `"true"`, 200), wait: o.timeout(30 * time.Second),
	})
}
