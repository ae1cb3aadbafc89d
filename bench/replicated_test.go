package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/config"
)

// startPeer starts a peer target with start, or skips the test when program is not on PATH
// (saying how to install it). The server is stopped at the end of the test at the latest.
func startPeer(t *testing.T, program, debPackage string, start func(context.Context, StartOptions) (*Server, error)) (*Server, StartOptions) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		t.Skipf("%s not on PATH (apt-get install -y %s)", program, debPackage)
	}
	o := testStartOptions(t)
	s, err := start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s, o
}

// runReplicated runs workload a against s and fails on any error; with members, the verified
// reads of keys other workers wrote check that the members agree.
func runReplicated(t *testing.T, s *Server, procs int) *Dataset {
	t.Helper()
	cfg := shortConfig("a")
	ds, err := cfg.NewDataset()
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunDataset(context.Background(), cfg, ds, s.Endpoint)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.LogTail(20))
	}
	if res.Ops == 0 || res.ErrorCount != 0 {
		t.Fatalf("ops %d errors %v\n%s", res.Ops, res.Errors, s.LogTail(20))
	}
	if res.ServerProcs != procs || res.ServerPeakRSS == 0 {
		t.Fatalf("accounting: %d processes (want %d), peak RSS %d", res.ServerProcs, procs, res.ServerPeakRSS)
	}
	return ds
}

// stopAndCheckClean stops s and checks that no process and no temp dir is left.
func stopAndCheckClean(t *testing.T, s *Server, tmp string) {
	t.Helper()
	if err := s.Stop(); err != nil {
		t.Error(err)
	}
	for _, pid := range append([]int{s.Pid}, s.Pids...) {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still alive: %v", pid, err)
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("temp dirs left behind: %v", ents)
	}
}

func TestStartRedis(t *testing.T) {
	for _, durable := range []bool{false, true} {
		s, o := startPeer(t, "redis-server", "redis-server", func(ctx context.Context, o StartOptions) (*Server, error) {
			return StartRedis(ctx, o, durable)
		})
		runReplicated(t, s, 1)
		_, err := os.Stat(filepath.Join(s.Dir, "appendonlydir"))
		if durable != (err == nil) {
			t.Errorf("durable %v: append-only dir: %v", durable, err)
		}
		stopAndCheckClean(t, s, o.TempDir)
	}
}

func TestStartRedisReplica(t *testing.T) {
	s, o := startPeer(t, "redis-server", "redis-server", StartRedisReplica)
	if s.Proto != ProtoRedisWait || len(s.members) != 1 || len(s.Pids) != 1 {
		t.Fatalf("endpoint %+v, %d members", s.Endpoint, len(s.members))
	}
	ds := runReplicated(t, s, 2)
	// What the primary acknowledged is on the replica.
	rc, err := DialRESP(s.members[0].Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for i := range ds.Len() {
		key := ds.Key(nil, i)
		got, err := rc.Get(key, nil)
		if err != nil || !ds.Verify(i, got) {
			t.Fatalf("replica GET %s: %d bytes, %v", key, len(got), err)
		}
	}
	// Without the replica, a write is refused by the WAIT check.
	if err := s.members[0].Stop(); err != nil {
		t.Fatal(err)
	}
	w, err := DialRESPWait(s.Addr, 400*time.Millisecond, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Set([]byte("after"), []byte("x")); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("write without a replica: %v", err)
	}
	stopAndCheckClean(t, s, o.TempDir)
}

func TestStartEtcd(t *testing.T) {
	s, o := startPeer(t, "etcd", "etcd-server", StartEtcd)
	runReplicated(t, s, 1)
	stopAndCheckClean(t, s, o.TempDir)
}

func TestStartEtcd3(t *testing.T) {
	s, o := startPeer(t, "etcd", "etcd-server", StartEtcd3)
	if len(s.Addrs) != EtcdMembers || len(s.Pids) != EtcdMembers-1 {
		t.Fatalf("endpoint %+v", s.Endpoint)
	}
	runReplicated(t, s, EtcdMembers)
	// A write through one member is read through every other: one cluster, not three.
	w := NewEtcdTarget(s.Addrs[0], 5*time.Second)
	defer w.Close()
	if err := w.Set([]byte("across"), []byte("members")); err != nil {
		t.Fatal(err)
	}
	for _, a := range s.Addrs[1:] {
		r := NewEtcdTarget(a, 5*time.Second)
		got, err := r.Get([]byte("across"), nil)
		r.Close()
		if err != nil || string(got) != "members" {
			t.Fatalf("GET through %s: %q, %v", a, got, err)
		}
	}
	stopAndCheckClean(t, s, o.TempDir)
}

// TestStartClusterHosts starts the cluster target in LayoutHosts: every node must listen on its
// own loopback address, on the ports all nodes share, and nowhere else.
func TestStartClusterHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	o := testStartOptions(t)
	if _, err := o.Bins.Tako("tako-cluster"); err != nil {
		t.Skipf("tako-cluster unavailable: %s", firstLine(err.Error()))
	}
	o.Timeout, o.Layout = time.Minute, LayoutHosts
	s, err := StartCluster(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	cfg, err := config.Load(filepath.Join(s.Dir, "local_cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	nodes := cfg.Nodes()
	if len(nodes) != clusterNodes {
		t.Fatalf("%d nodes", len(nodes))
	}
	for i, n := range nodes {
		if want := fmt.Sprintf("127.0.0.%d", 11+i); n.Host != want || n.HTTPPort != nodes[0].HTTPPort || n.PeerPort != nodes[0].PeerPort {
			t.Fatalf("node %s at %s:%d/%d, want %s on %d/%d", n.ID, n.Host, n.HTTPPort, n.PeerPort, want, nodes[0].HTTPPort, nodes[0].PeerPort)
		}
		for _, a := range []string{n.HTTPAddr(), n.PeerAddr()} {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				t.Fatalf("node %s does not listen on %s: %v", n.ID, a, err)
			}
			c.Close()
		}
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(nodes[0].HTTPPort)), time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on 127.0.0.1:%d: the nodes should be on their own hosts only", nodes[0].HTTPPort)
	}
	if coord := cfg.Coordinators["c1"]; coord.Host != "127.0.0.10" {
		t.Errorf("coordinator on %s", coord.String())
	}
	smoke(t, s)
}

func TestParseLayout(t *testing.T) {
	for in, want := range map[string]string{"": LayoutPorts, "ports": LayoutPorts, "hosts": LayoutHosts} {
		if got, err := ParseLayout(in); err != nil || got != want {
			t.Errorf("%q: %q, %v", in, got, err)
		}
	}
	if _, err := ParseLayout("host"); !errors.Is(err, ErrUnknownLayout) || !strings.Contains(err.Error(), "ports or hosts") {
		t.Errorf("bad layout: %v", err)
	}
	if _, err := StartCluster(context.Background(), StartOptions{Layout: "racks"}); !errors.Is(err, ErrUnknownLayout) {
		t.Errorf("StartCluster with a bad layout: %v", err)
	}
}
