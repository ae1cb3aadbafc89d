package launcher

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/internal/logbuf"
	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
)

// The test binary doubles as the fake tako-coordinator/node/proxy (scripts
// in a temp dir exec it with TAKO_FAKE_AS set) and as a tako-cluster that
// the test SIGKILLs (TAKO_LAUNCHER_HELPER holds its Options as JSON).
func TestMain(m *testing.M) {
	if as := os.Getenv("TAKO_FAKE_AS"); as != "" {
		os.Exit(fakeChild(as, os.Args[1:]))
	}
	if o := os.Getenv("TAKO_LAUNCHER_HELPER"); o != "" {
		os.Exit(launcherHelper(o))
	}
	os.Exit(m.Run())
}

// fakeChild records "start PID NAME ARGS" in $TAKO_FAKE_RECORD and then
// behaves as $TAKO_FAKE_MODE says for its name ("n2=die,c1=stubborn"):
//
//	(default) wait for SIGTERM, record "term PID", exit 0
//	fail      print a start-up error, exit 1
//	die       run 300ms, print an error, exit 3
//	stubborn  ignore SIGTERM
//	quit      run 300ms, exit 0
//
// A fake coordinator also serves its -cfg file at GET /configuration (as
// the real one does, with X-Config-Version and If-None-Match) and records
// "fetch PID" for every such request. With $TAKO_FAKE_STATUS set, fake
// nodes and coordinators serve GET /status (see serveStatus).
//
// Every mode ends by itself within a minute, so a test bug leaks nothing
// for long.
func fakeChild(as string, args []string) int {
	name, cfgPath := as, ""
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-id":
			name = args[i+1]
		case "-p":
			name = "proxy-" + args[i+1]
		case "-cfg":
			cfgPath = args[i+1]
		}
	}
	mode := ""
	for kv := range strings.SplitSeq(os.Getenv("TAKO_FAKE_MODE"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			mode = v
		}
	}
	record := func(format string, a ...any) {
		f, err := os.OpenFile(os.Getenv("TAKO_FAKE_RECORD"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			fmt.Fprintf(f, format+"\n", a...)
			f.Close()
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var status http.Handler // GET /status, when the test controls it
	if dir := os.Getenv("TAKO_FAKE_STATUS"); dir != "" {
		status = statusFile(dir, name, func() { record("status %d %s", os.Getpid(), name) })
	}
	switch as {
	case Coordinator.Binary():
		serveConfiguration(name, cfgPath, func() { record("fetch %d", os.Getpid()) }, status)
	case Node.Binary():
		if status != nil {
			serveNodeStatus(name, args, status)
		}
	}
	record("start %d %s %s %s", os.Getpid(), name, as, strings.Join(args, " "))
	switch mode {
	case "fail":
		fmt.Fprintln(os.Stderr, "listen tcp 127.0.0.1:5711: bind: address already in use")
		return 1
	case "die":
		time.Sleep(300 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "boom: disk on fire")
		return 3
	case "quit":
		time.Sleep(300 * time.Millisecond)
		return 0
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Minute)
		return 0
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for end := time.After(time.Minute); ; {
		select {
		case <-hup:
			record("hup %d", os.Getpid())
			continue
		case <-term:
			record("term %d", os.Getpid())
		case <-end:
		}
		return 0
	}
}

// serveConfiguration is the fake coordinator's GET /configuration: the file
// as it is now, on the address the file gives coordinator id. Nothing is
// served when the file or address is unusable; tests that rely on it fail
// on what they then miss. A non-nil status serves GET /status.
func serveConfiguration(id, path string, fetched func(), status http.Handler) {
	cfg, err := config.Load(path)
	if err != nil {
		return
	}
	ln, err := net.Listen("tcp", cfg.Coordinators[id].String())
	if err != nil {
		return
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" && status != nil {
			status.ServeHTTP(w, r)
			return
		}
		cfg, err := config.Load(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fetched()
		w.Header().Set("X-Config-Version", cfg.Version)
		if r.Header.Get("If-None-Match") == `"`+cfg.Version+`"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		js, _ := cfg.JSON()
		w.Write(js)
	}))
}

// helperOptions is what TestNothingLeftWhenKilled hands the helper.
type helperOptions struct {
	ConfigPath, VarDir, BinDir string
	ProxyPorts                 []int
	Skip                       []string
}

func launcherHelper(js string) int {
	var h helperOptions
	if err := json.Unmarshal([]byte(js), &h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o := Options{ConfigPath: h.ConfigPath, VarDir: h.VarDir, BinDir: h.BinDir, ProxyPorts: h.ProxyPorts, Skip: h.Skip}
	var err error
	if o.Health, err = recordHealth(o, os.Getenv("TAKO_FAKE_RECORD")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := Run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// fixture is a configuration on free ports plus fake binaries.
type fixture struct {
	t      *testing.T
	o      Options
	ports  []int // ports[0]: c1
	record string
	out    *logbuf.Buffer
}

// fakeBins writes tako-coordinator, tako-node and tako-proxy scripts into
// dir/bin that run this test binary as fakeChild, and returns dir/bin.
func fakeBins(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{Coordinator, Node, Proxy} {
		writeScript(t, filepath.Join(bin, k.Binary()), fmt.Sprintf("TAKO_FAKE_AS=%s exec '%s' \"$@\"", k.Binary(), self))
	}
	return bin
}

func newFixture(t *testing.T, mode string) *fixture {
	t.Helper()
	dir := t.TempDir()
	bin := fakeBins(t, dir)
	p := freePorts(t, 10)
	cfg := filepath.Join(dir, "tako.yaml")
	text := fmt.Sprintf(`
coordinators:
    c1: [127.0.0.1, %d]
active_deployment: d
target_deployment: t
deployments:
    d:
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
                n2: [127.0.0.1, %d, %d]
                n3: [127.0.0.1, %d, %d]
    t:
        buckets:
            b1:
                n1: [127.0.0.1, %d, %d]
                n4: [127.0.0.1, %d, %d]
`, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[1], p[2], p[7], p[8])
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ports: p, record: filepath.Join(dir, "record"), out: &logbuf.Buffer{}}
	t.Setenv("TAKO_FAKE_RECORD", f.record)
	t.Setenv("TAKO_FAKE_MODE", mode)
	f.o = Options{
		ConfigPath: cfg, ProxyPorts: []int{p[9]}, Skip: []string{"n3"}, VarDir: filepath.Join(dir, "var"),
		StartTimeout: 10 * time.Second, StopTimeout: 5 * time.Second, BinDir: bin, Out: f.out,
	}
	f.o.Health = f.startedHealth()
	return f
}

// startedHealth answers like a real health check would: a process is up
// once its fake has started (recorded itself).
func (f *fixture) startedHealth() func(context.Context, string) error {
	h, err := recordHealth(f.o, f.record)
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

func recordHealth(o Options, record string) (func(context.Context, string) error, error) {
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	return recordHealthFor(o, record, false, cfg)
}

// recordHealthFor answers for the processes of every configuration in
// cfgs: up once a fake started under that name, and with mustLive only
// while the latest one is alive (a name started again is then not up until
// its new process recorded itself).
func recordHealthFor(o Options, record string, mustLive bool, cfgs ...*config.Config) (func(context.Context, string) error, error) {
	names := map[string][]string{} // several when nodes share an address in turn
	for _, cfg := range cfgs {
		specs, err := Plan(cfg, o)
		if err != nil {
			return nil, err
		}
		for _, s := range specs {
			if !slices.Contains(names[s.Health], s.Name) {
				names[s.Health] = append(names[s.Health], s.Name)
			}
		}
	}
	return func(_ context.Context, url string) error {
		pids, _, _ := readRecord(record)
		for _, name := range names[url] {
			if pid := pids[name]; pid != 0 && (!mustLive || alive(pid)) {
				return nil
			}
		}
		return errors.New("not started")
	}, nil
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// started returns name -> pid and name -> args of the fakes that started,
// and the pids that recorded a SIGTERM.
func (f *fixture) started() (pids map[string]int, args map[string]string, termed map[int]bool) {
	return readRecord(f.record)
}

func readRecord(path string) (pids map[string]int, args map[string]string, termed map[int]bool) {
	pids, args, termed = map[string]int{}, map[string]string{}, map[int]bool{}
	data, _ := os.ReadFile(path)
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(fields[1])
		switch {
		case fields[0] == "start" && len(fields) >= 4:
			pids[fields[2]] = pid
			args[fields[2]] = strings.Join(fields[3:], " ")
		case fields[0] == "term":
			termed[pid] = true
		}
	}
	return pids, args, termed
}

// run starts Run in the background; wait returns its error (bounded).
func (f *fixture) run() (cancel func(), wait func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, f.o) }()
	f.t.Cleanup(cancel)
	return cancel, func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			f.t.Fatalf("Run did not return within 20s; output:\n%s", f.out)
			return nil
		}
	}
}

func (f *fixture) waitOutput(want string) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(f.out.String(), want) {
		if time.Now().After(deadline) {
			f.t.Fatalf("output lacks %q after 10s:\n%s", want, f.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: a zombie counts as alive
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

func (f *fixture) checkAllGone(pids map[string]int) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for name, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				f.t.Errorf("%s (pid %d) still running", name, pid)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestRunStartsAndStops(t *testing.T) {
	f := newFixture(t, "")
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, args, _ := f.started()
	port := strconv.Itoa(f.o.ProxyPorts[0])
	v := f.o.VarDir
	c1 := fmt.Sprintf("127.0.0.1:%d", f.ports[0])
	want := map[string]string{
		"c1":            "-id c1 -cfg " + f.o.ConfigPath + " -v " + v + " -l " + v + "/c1.log",
		"n1":            "-id n1 -c " + c1 + " -v " + v + " -l " + v + "/n1.log",
		"n2":            "-id n2 -c " + c1 + " -v " + v + " -l " + v + "/n2.log",
		"n4":            "-id n4 -c " + c1 + " -v " + v + " -l " + v + "/n4.log",
		"proxy-" + port: "-p " + port + " -c " + c1 + " -v " + v + " -l " + v + "/proxy-" + port + ".log",
	}
	for name, a := range want {
		if got := args[name]; !strings.HasSuffix(got, " "+a) {
			t.Errorf("%s started as %q, want args %q", name, got, a)
		}
	}
	if len(args) != len(want) {
		t.Errorf("started %v, want %d processes (n3 skipped)", args, len(want))
	}
	out := f.out.String()
	for _, s := range []string{"coordinators up 1/1", "nodes up 3/3", "proxies up 1/1", "skipped (-s): n3",
		v + "/proxy-" + port + ".log"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if row := regexp.MustCompile(fmt.Sprintf(`\nn4 +%d +http 127\.0\.0\.1:\d+  peer `, pids["n4"])); !row.MatchString(out) {
		t.Errorf("no table row for n4 (pid %d):\n%s", pids["n4"], out)
	}
	for name, pid := range pids {
		if !alive(pid) {
			t.Errorf("%s not running", name)
		}
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	_, _, termed := f.started()
	for name, pid := range pids {
		if !termed[pid] {
			t.Errorf("%s (pid %d) did not get SIGTERM", name, pid)
		}
	}
	f.checkAllGone(pids)
	if !strings.Contains(f.out.String(), "stopping 5 processes") {
		t.Errorf("output:\n%s", f.out)
	}
}

// SIGHUP to tako-cluster (logrotate's postrotate) stops nothing: it reaches
// every child, which reopens its log.
func TestRunForwardsSIGHUP(t *testing.T) {
	f := newFixture(t, "")
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	f.waitOutput("SIGHUP passed on to 5 processes")
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(f.record)
		missing := []string{}
		for name, pid := range pids {
			if !strings.Contains(string(data), fmt.Sprintf("hup %d\n", pid)) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SIGHUP reached %v", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for name, pid := range pids {
		if !alive(pid) {
			t.Errorf("%s stopped on SIGHUP", name)
		}
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	f.checkAllGone(pids)
}

func TestRunReportsUnexpectedExit(t *testing.T) {
	f := newFixture(t, "n2=die")
	cancel, wait := f.run()
	f.waitOutput("exited unexpectedly")
	pids, _, _ := f.started()
	out := f.out.String()
	for _, s := range []string{fmt.Sprintf("n2 (pid %d) exited unexpectedly: exit status 3", pids["n2"]),
		"4 processes still running", "n2.log", "    boom: disk on fire"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	for name, pid := range pids {
		if name != "n2" && !alive(pid) {
			t.Errorf("%s stopped after n2 died", name)
		}
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	f.checkAllGone(pids)
}

func TestRunStartupFailureStopsEverything(t *testing.T) {
	f := newFixture(t, "n2=fail")
	// Only the coordinator comes up, so the nodes phase waits until n2 exits.
	coordinator := fmt.Sprintf("http://127.0.0.1:%d/health", f.ports[0])
	started := f.startedHealth()
	f.o.Health = func(ctx context.Context, url string) error {
		if url == coordinator {
			return started(ctx, url)
		}
		return errors.New("not yet")
	}
	start := time.Now()
	_, wait := f.run()
	err := wait()
	if err == nil {
		t.Fatalf("no error; output:\n%s", f.out)
	}
	for _, s := range []string{"n2 (tako-node, pid", "exited during start-up: exit status 1", "n2.log", "address already in use"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("took %v to notice", d)
	}
	pids, _, _ := f.started()
	f.checkAllGone(pids)
}

func TestRunStartTimeout(t *testing.T) {
	f := newFixture(t, "")
	f.o.Health = func(context.Context, string) error { return errors.New("refused") }
	f.o.StartTimeout = 300 * time.Millisecond
	_, wait := f.run()
	err := wait()
	if err == nil || !strings.Contains(err.Error(), "coordinators not answering /health after 300ms: c1") {
		t.Fatalf("error %v", err)
	}
	pids, _, _ := f.started()
	f.checkAllGone(pids)
}

func TestRunKillsStubbornChild(t *testing.T) {
	f := newFixture(t, "n1=stubborn")
	f.o.StopTimeout = 300 * time.Millisecond
	cancel, wait := f.run()
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	time.Sleep(100 * time.Millisecond) // let the fake ignore SIGTERM
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	f.checkAllGone(pids)
	if s := fmt.Sprintf("n1 (pid %d) did not stop within 300ms: killing it", pids["n1"]); !strings.Contains(f.out.String(), s) {
		t.Errorf("output lacks %q:\n%s", s, f.out)
	}
}

func TestRunRefusesBusyPort(t *testing.T) {
	f := newFixture(t, "")
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", f.o.ProxyPorts[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, wait := f.run()
	err = wait()
	if err == nil || !strings.Contains(err.Error(), "is another cluster running?") ||
		!strings.Contains(err.Error(), fmt.Sprintf("proxy -p %d", f.o.ProxyPorts[0])) {
		t.Fatalf("error %v", err)
	}
	if pids, _, _ := f.started(); len(pids) != 0 {
		t.Errorf("started %v", pids)
	}
}

// TestNothingLeftWhenKilled SIGKILLs a running tako-cluster: Pdeathsig must
// take every child with it.
func TestNothingLeftWhenKilled(t *testing.T) {
	f := newFixture(t, "")
	js, err := json.Marshal(helperOptions{ConfigPath: f.o.ConfigPath, VarDir: f.o.VarDir, BinDir: f.o.BinDir,
		ProxyPorts: f.o.ProxyPorts, Skip: f.o.Skip})
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	out := &logbuf.Buffer{}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "TAKO_LAUNCHER_HELPER="+string(js))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.out = out
	f.waitOutput("Ctrl-C")
	pids, _, _ := f.started()
	if len(pids) != 5 {
		t.Fatalf("started %v", pids)
	}
	cmd.Process.Kill()
	cmd.Wait()
	f.checkAllGone(pids)
}

func TestHTTPHealth(t *testing.T) {
	status := http.StatusServiceUnavailable
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	pc := pollClientsOf(t, "")
	if err := pc.health(context.Background(), srv.URL+"/health"); err == nil {
		t.Error("503 counted as healthy")
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	if err := pc.health(context.Background(), srv.URL+"/health"); err != nil {
		t.Error(err)
	}
}

// TestHTTPSHealth: with tls_cert_file set, nodes and proxies are polled over HTTPS and
// verified against tls_ca_file; without it, their certificate is not trusted.
func TestHTTPSHealth(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	f := ca.WriteFiles(t, t.TempDir(), ca.Leaf(t, "n1"))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "n1").TLS(t)}}
	srv.StartTLS()
	defer srv.Close()
	keys := f.ConfigKeys()
	pc := pollClientsOf(t, keys)
	if err := pc.health(context.Background(), srv.URL+"/health"); err != nil {
		t.Fatal(err)
	}
	if err := pollClientsOf(t, "").health(context.Background(), srv.URL+"/health"); err == nil {
		t.Fatal("a certificate of the test CA trusted without tls_ca_file")
	}
	if p := newPlanner(oneNodeConfig(t, keys), Options{}); p.healthURL("", 5711) != "https://127.0.0.1:5711/health" {
		t.Fatalf("health URL under TLS: %s", p.healthURL("", 5711))
	}
}

// oneNodeConfig is a configuration of one node, with extra keys.
func oneNodeConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("active_deployment: a\ndeployments: {a: {buckets: {b1: {n1: [h, 1, 2]}}}}\n" + extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// pollClientsOf returns the poll clients of oneNodeConfig(extra).
func pollClientsOf(t *testing.T, extra string) pollClients {
	t.Helper()
	pc, err := newPollClients(oneNodeConfig(t, extra), "tako.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return pc
}
