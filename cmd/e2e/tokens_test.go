package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	e2eReadToken  = "e2e-read-0123456789abcdef"
	e2eWriteToken = "e2e-write-0123456789abcdef"
)

// authDo sends one request with a bearer token ("": none) and returns the
// status, the body and the WWW-Authenticate header.
func authDo(t *testing.T, method, url, token string, body []byte) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("WWW-Authenticate")
}

// TestHTTPTokens runs a coordinator, two mirrored nodes and a proxy with
// http_tokens_file: the coordinator refuses /configuration without a token
// (a node started without -token-file says so and exits), processes given
// the token fetch it and serve; on every HTTP port a request without a token
// is 401, a read-only token reads but cannot write (403), a read-write one
// writes; /health stays open; tako-admin works with -token-file; and a
// rotated file takes effect on SIGHUP.
func TestHTTPTokens(t *testing.T) {
	p := freePorts(t, 6)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	writeTokens := func(text string) {
		t.Helper()
		if err := os.WriteFile(tokens, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeTokens("# the checker first: reading is all fetching the configuration needs\n" +
		e2eReadToken + " read-only\n" + e2eWriteToken + " read-write\n")
	cfgPath := writeTokensConfig(t, dir, tokens, p)
	coord := fmt.Sprintf("127.0.0.1:%d", p[0])
	cp := start(t, "tako-coordinator", "-id", "c1", "-cfg", cfgPath, "-poll", "100ms")
	waitHTTP(t, "http://"+coord+"/health", cp)

	// The coordinator's configuration and status are behind the tokens.
	if code, body, ch := authDo(t, "GET", "http://"+coord+"/configuration", "", nil); code != 401 || ch == "" || !strings.Contains(body, "authorization required") {
		t.Fatalf("GET /configuration without a token: %d %q (WWW-Authenticate %q), want 401", code, body, ch)
	}
	if code, _, _ := authDo(t, "GET", "http://"+coord+"/status", "", nil); code != 401 {
		t.Fatalf("GET /status without a token: %d, want 401", code)
	}
	if code, body, _ := authDo(t, "GET", "http://"+coord+"/configuration", e2eReadToken, nil); code != 200 || !strings.Contains(body, "http_tokens_file") {
		t.Fatalf("GET /configuration with a read-only token: %d %q", code, body)
	}

	// A node without a token cannot fetch its configuration: one clear line, exit 1.
	vdir := filepath.Join(dir, "var")
	lost := start(t, "tako-node", "-id", "n1", "-c", coord, "-v", filepath.Join(dir, "var-lost"))
	select {
	case <-lost.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a node without a token kept running")
	}
	if code, out := lost.cmd.ProcessState.ExitCode(), lost.logs.String(); code != 1 || !strings.Contains(out, "401") || !strings.Contains(out, "-token-file") {
		t.Fatalf("node without a token: exit %d, output:\n%s", code, out)
	}

	nodes := map[string]string{"n1": fmt.Sprintf("http://127.0.0.1:%d", p[1]), "n2": fmt.Sprintf("http://127.0.0.1:%d", p[3])}
	for _, id := range []string{"n1", "n2"} {
		n := start(t, "tako-node", "-id", id, "-c", coord, "-v", vdir, "-token-file", tokens)
		waitHTTP(t, nodes[id]+"/health", n)
	}
	proxyBase := "http://127.0.0.1:" + strconv.Itoa(p[5])
	proxy := start(t, "tako-proxy", "-listen", "127.0.0.1", "-p", strconv.Itoa(p[5]), "-c", coord, "-v", vdir, "-token-file", tokens)
	waitHTTP(t, proxyBase+"/health", proxy)

	f := func(method, url, token string, body []byte, want int, wantBody string) {
		t.Helper()
		code, got, ch := authDo(t, method, url, token, body)
		if code != want || !strings.Contains(got, wantBody) {
			t.Errorf("%s %s with %q: %d %q, want %d %q", method, url, token, code, got, want, wantBody)
		}
		if (code == 401 || code == 403) && !strings.HasPrefix(ch, "Bearer") {
			t.Errorf("%s %s: %d without WWW-Authenticate: Bearer", method, url, code)
		}
	}
	for _, base := range []string{proxyBase, nodes["n1"]} {
		key := base + "/values/k-" + strconv.Itoa(len(base))
		f("POST", key, "", []byte("v"), 401, "authorization required")
		f("POST", key, "wrong-0123456789abcdef", []byte("v"), 401, "unknown token")
		f("POST", key, e2eReadToken, []byte("v"), 403, "read-only token")
		f("DELETE", key, e2eReadToken, nil, 403, "read-only token")
		f("GET", key, "", nil, 401, "authorization required")
		f("POST", key, e2eWriteToken, []byte("v"), 200, "")
		f("GET", key, e2eReadToken, nil, 200, "v")
		f("GET", base+"/health", "", nil, 200, "ok")
		f("GET", base+"/ready", "", nil, 200, "ready")
		f("GET", base+"/metrics", "", nil, 401, "authorization required")
		f("GET", base+"/metrics", e2eReadToken, nil, 200, "# ")
	}
	f("GET", nodes["n2"]+"/replica/k-"+strconv.Itoa(len(proxyBase)), e2eReadToken, nil, 200, "v") // written through the proxy
	f("GET", nodes["n2"]+"/replica/k-"+strconv.Itoa(len(proxyBase)), "", nil, 401, "")
	f("GET", nodes["n2"]+"/status", "", nil, 401, "")
	f("GET", nodes["n2"]+"/status", e2eReadToken, nil, 200, "")
	f("POST", nodes["n2"]+"/repair", e2eReadToken, nil, 403, "read-only token")
	f("POST", nodes["n2"]+"/repair", e2eWriteToken, nil, 202, "")

	// tako-admin: refused without a token, served with one; the coordinator
	// sees both nodes up (it asks them with its own token).
	if code, _, errOut := takoAdmin(t, "-c", coord, "status"); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("tako-admin status without a token: exit %d, stderr %q", code, errOut)
	}
	if code, out, errOut := takoAdmin(t, "-c", coord, "-token-file", tokens, "status"); code != 0 {
		t.Errorf("tako-admin status with a token: exit %d\n%s\n%s", code, out, errOut)
	}

	// Rotation: a new file, then SIGHUP; the new token works, the old one no longer.
	const rotated = "e2e-rotated-0123456789abcdef"
	writeTokens(e2eReadToken + " read-only\n" + rotated + " read-write\n")
	if err := syscall.Kill(proxy.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, _ := authDo(t, "POST", proxyBase+"/values/rotated", rotated, []byte("r")); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated token is not accepted 10s after SIGHUP:\n%s", proxy.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f("POST", proxyBase+"/values/rotated", e2eWriteToken, []byte("r"), 401, "unknown token")
	select {
	case <-proxy.done:
		t.Fatal("the proxy exited on SIGHUP")
	default:
	}
}

// TestTakoClusterWithTokens: tako-cluster on a configuration with
// http_tokens_file and a coordinator hands the file to every
// child, so nodes and the proxy fetch their configuration with it; the
// cluster serves writes with a read-write token and refuses them without.
func TestTakoClusterWithTokens(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens") // absolute: nodes resolve it from the coordinator's copy
	if err := os.WriteFile(tokens, []byte(e2eReadToken+" read-only\n"+e2eWriteToken+" read-write\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 6)
	cfgPath := writeTokensConfig(t, dir, tokens, p)
	l := startLauncher(t, cfgPath, "-p", strconv.Itoa(p[5]), "-v", filepath.Join(dir, "var"))
	if pids := l.waitRunning(60 * time.Second); len(pids) != 4 {
		t.Fatalf("process table %v, want c1, n1, n2 and the proxy", pids)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/values/launched", p[5])
	if code, _, _ := authDo(t, "POST", url, "", []byte("v")); code != 401 {
		t.Fatalf("POST without a token through tako-cluster's proxy: %d, want 401", code)
	}
	if code, body, _ := authDo(t, "POST", url, e2eWriteToken, []byte("v")); code != 200 {
		t.Fatalf("POST with a read-write token: %d %q", code, body)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body, _ := authDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/replica/launched", p[3]), e2eReadToken, nil)
		if code == 200 && body == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2's replica: %d %q", code, body)
		}
	}
	l.cmd.Process.Signal(syscall.SIGTERM)
	if code := l.waitExit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// writeTokensConfig writes a configuration of one bucket of two nodes behind
// the tokens file tokens: the coordinator at p[0], the nodes' HTTP and peer
// ports at p[1:5].
func writeTokensConfig(t *testing.T, dir, tokens string, p []int) string {
	t.Helper()
	return writeConfig(t, dir, fmt.Sprintf(`
master_coordinator: c1
coordinators: {c1: [127.0.0.1, %d]}
active_deployment: d
http_tokens_file: %s
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, %d, %d], n2: [127.0.0.1, %d, %d]}
`, p[0], tokens, p[1], p[2], p[3], p[4]))
}
