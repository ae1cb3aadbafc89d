package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tako-kv/tako/internal/logbuf"
	"github.com/tako-kv/tako/internal/tlstest"
	"github.com/tako-kv/tako/server/config"
)

// doc returns a valid configuration; readRepair tells versions apart.
func doc(readRepair string) string {
	return fmt.Sprintf(`
master_coordinator: c1
coordinators:
    c1: [127.0.0.1, 4701]
active_deployment: d
deployments:
    d:
        read_repair: %s
        buckets:
            b1:
                n1: [127.0.0.1, 5711, 4711]
`, readRepair)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	// Written whole, then renamed into place: on a loaded machine a watcher
	// polling every 10ms could otherwise read the truncated file twice and
	// act on it (TestPicksUpEditsAndRefusesBrokenOnes saw an empty document).
	if err := os.WriteFile(path+".tmp", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// newCoordinator writes text to a temp file and starts a coordinator on it
// behind an httptest server.
func newCoordinator(t *testing.T, text string, poll time.Duration) (*Coordinator, string, string, *logbuf.Buffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tako.yaml")
	writeFile(t, path, text)
	logs := &logbuf.Buffer{}
	c, err := New(Options{ID: "c1", File: path, Poll: poll, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return c, path, srv.URL, logs
}

func request(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServesConfiguration(t *testing.T) {
	c, _, base, _ := newCoordinator(t, doc("yes"), time.Hour)
	want := c.Config().Version
	resp, body := request(t, "GET", base+PathConfig)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get(HeaderVersion); got != want {
		t.Errorf("%s = %q, want %q", HeaderVersion, got, want)
	}
	if got := resp.Header.Get("ETag"); got != `"`+want+`"` {
		t.Errorf("ETag = %q", got)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	served, err := config.Parse(body)
	if err != nil || served.Version != want || !served.ActiveDeployment().ReadRepair {
		t.Fatalf("served document does not parse back to the file: %v\n%s", err, body)
	}

	f := func(inm string, wantStatus int, wantBody bool) {
		t.Helper()
		resp, body := request(t, "GET", base+PathConfig, "If-None-Match", inm)
		if resp.StatusCode != wantStatus || (len(body) > 0) != wantBody {
			t.Errorf("If-None-Match %q: status %d, %d bytes; want %d, body %v", inm, resp.StatusCode, len(body), wantStatus, wantBody)
		}
		if resp.Header.Get(HeaderVersion) != want {
			t.Errorf("If-None-Match %q: version header %q", inm, resp.Header.Get(HeaderVersion))
		}
	}
	f(`"`+want+`"`, 304, false)
	f(`W/"`+want+`"`, 304, false)
	f(`"0000000000000000", "`+want+`"`, 304, false)
	f(`"0000000000000000"`, 200, true)

	resp, body = request(t, "HEAD", base+PathConfig)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get(HeaderVersion) != want {
		t.Errorf("HEAD: %d, %d bytes, version %q", resp.StatusCode, len(body), resp.Header.Get(HeaderVersion))
	}
	resp, body = request(t, "GET", base+PathHealth)
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("health: %d %q", resp.StatusCode, body)
	}
	resp, _ = request(t, "POST", base+PathConfig)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

// waitVersion polls the coordinator until it serves want (bounded).
func waitVersion(t *testing.T, base, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, _ := request(t, "GET", base+PathConfig)
		if resp.Header.Get(HeaderVersion) == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("coordinator did not serve version %s within 5s", want)
}

func versionOf(t *testing.T, text string) string {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Version
}

func TestPicksUpEditsAndRefusesBrokenOnes(t *testing.T) {
	c, path, base, logs := newCoordinator(t, doc("yes"), 10*time.Millisecond)
	watch(t, c)

	v2 := versionOf(t, doc("no"))
	writeFile(t, path, doc("no"))
	waitVersion(t, base, v2)
	if !strings.Contains(logs.String(), "serving new configuration") || !strings.Contains(logs.String(), v2) {
		t.Errorf("new version not logged:\n%s", logs)
	}

	// A broken edit is logged with the config error; v2 stays.
	writeFile(t, path, strings.Replace(doc("yes"), "read_repair", "read_repiar", 1))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "refused") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, "refused") || !strings.Contains(l, `did you mean \"read_repair\"`) {
		t.Fatalf("broken edit not logged with its error:\n%s", l)
	}
	if resp, _ := request(t, "GET", base+PathConfig); resp.Header.Get(HeaderVersion) != v2 {
		t.Fatalf("after a broken edit serving %q, want %q", resp.Header.Get(HeaderVersion), v2)
	}

	// A vanished file changes nothing; the next valid edit is served.
	os.Remove(path)
	time.Sleep(50 * time.Millisecond)
	writeFile(t, path, doc("yes"))
	waitVersion(t, base, versionOf(t, doc("yes")))
	if n := strings.Count(logs.String(), "refused"); n != 1 {
		t.Errorf("broken edit logged %d times, want once:\n%s", n, logs)
	}
}

// A file caught in the middle of a write is not acted on until it settles.
func TestWaitsForContentToSettle(t *testing.T) {
	c, path, _, _ := newCoordinator(t, doc("yes"), time.Hour)
	v1 := c.Config().Version
	writeFile(t, path, doc("no"))
	c.check()
	if c.Config().Version != v1 {
		t.Fatal("applied content seen only once")
	}
	c.check()
	if c.Config().Version == v1 {
		t.Fatal("did not apply content seen twice")
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, doc("yes"))
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "active_deployment: nope\ndeployments: {}\n")
	f := func(o Options, target error, want string) {
		t.Helper()
		_, err := New(o)
		if !errors.Is(err, target) || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("New(%+v) = %v; want %v containing %q", o, err, target, want)
		}
	}
	f(Options{ID: "c9", File: good}, ErrUnknownID, `unknown id "c9": not among the coordinators of `+good+" (known: c1)")
	f(Options{ID: "c1", File: bad}, config.ErrInvalid, bad+": config:")
	f(Options{ID: "c1", File: filepath.Join(dir, "missing.yaml")}, fs.ErrNotExist, "missing.yaml")
	// TLS files it cannot use stop it at start, the key named.
	noCert := filepath.Join(dir, "tls.yaml")
	ca := tlstest.NewCA(t, "ca")
	files := ca.WriteFiles(t, dir, ca.Leaf(t, "c1"))
	writeFile(t, noCert, doc("yes")+"tls_cert_file: nope.pem\ntls_key_file: "+files.Key+"\ntls_ca_file: "+files.CA+"\n")
	f(Options{ID: "c1", File: noCert}, fs.ErrNotExist, "tls_cert_file")
}

func TestRunListensAndStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tako.yaml")
	writeFile(t, path, doc("yes"))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = Run(context.Background(), Options{ID: "c1", File: path, Listen: taken.Addr().String()}, nil)
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "coordinator c1") {
		t.Fatalf("port taken: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ID: "c1", File: path, Listen: "127.0.0.1:0"}, func(a net.Addr) { addrs <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("not ready in 5s")
	}
	if resp, _ := request(t, "GET", "http://"+addr.String()+PathHealth); resp.StatusCode != 200 {
		t.Fatalf("health %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
