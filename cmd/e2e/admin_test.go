package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tako-kv/tako/server/admin"
	"github.com/tako-kv/tako/server/coordinator"
)

// adminVersion is what the test's tako-admin is built as (-ldflags -X).
const adminVersion = "v0.0.0-e2e"

var (
	adminOnce sync.Once
	adminErr  error
)

// adminBinary builds tako-admin into binDir once (TestMain removes it).
func adminBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(binDir, "tako-admin")
	adminOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", path,
			"-ldflags", "-X github.com/tako-kv/tako/cmd/internal/cli.Version="+adminVersion, "../tako-admin").CombinedOutput()
		if err != nil {
			adminErr = fmt.Errorf("build tako-admin: %v\n%s", err, out)
		}
	})
	if adminErr != nil {
		t.Fatal(adminErr)
	}
	return path
}

// takoAdmin runs tako-admin (bounded) and returns its exit code and output.
func takoAdmin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(adminBinary(t), args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("tako-admin %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// adminJSON runs tako-admin -json and decodes its report into v.
func adminJSON(t *testing.T, v any, args ...string) int {
	t.Helper()
	code, out, errOut := takoAdmin(t, append([]string{"-json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("tako-admin -json %q (exit %d): %v\nstdout:\n%s\nstderr:\n%s", args, code, err, out, errOut)
	}
	return code
}

// smallCluster is a coordinator and two buckets of two nodes on free
// 127.0.0.1 ports; it returns the coordinator's address and the nodes.
func smallCluster(t *testing.T) (string, map[string]*proc, map[string]string) {
	t.Helper()
	p := freePorts(t, 9)
	dir := t.TempDir()
	path := writeConfig(t, dir, fmt.Sprintf(`
master_coordinator: c1
coordinators: {c1: [127.0.0.1, %d]}
active_deployment: d
deployments:
    d:
        buckets:
            b1: {n1: [127.0.0.1, %d, %d], n2: [127.0.0.1, %d, %d]}
            b2: {n3: [127.0.0.1, %d, %d], n4: [127.0.0.1, %d, %d]}
`, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]))
	coord := fmt.Sprintf("127.0.0.1:%d", p[0])
	cp := start(t, "tako-coordinator", "-id", "c1", "-cfg", path, "-poll", "100ms")
	waitHTTP(t, "http://"+coord+"/health", cp)
	nodes, addrs := map[string]*proc{}, map[string]string{}
	for i, id := range []string{"n1", "n2", "n3", "n4"} {
		addrs[id] = fmt.Sprintf("127.0.0.1:%d", p[1+2*i])
		nodes[id] = start(t, "tako-node", "-id", id, "-c", coord, "-v", filepath.Join(dir, "var"))
	}
	for id, n := range nodes {
		waitHTTP(t, "http://"+addrs[id]+"/health", n)
	}
	return coord, nodes, addrs
}

// TestAdmin drives tako-admin against a real cluster: ring names the nodes
// that hold a written key, get --replica reads each node's own record, and
// status shows a killed node down with exit code 3.
func TestAdmin(t *testing.T) {
	coord, nodes, addrs := smallCluster(t)
	key, value := []byte("admin/e2e key ✓"), []byte("a value of 23 bytes....")
	resp, err := client.Post(keyURL("http://"+addrs["n1"], key), "application/octet-stream", strings.NewReader(string(value)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("write: %s", resp.Status)
	}
	ts := resp.Header.Get("X-Timestamp")

	var place admin.Placement
	if code := adminJSON(t, &place, "-c", coord, "ring", string(key)); code != admin.ExitOK ||
		len(place.Replicas) != 2 || len(place.Deployments) != 1 || len(place.Deployments[0].Buckets) != 1 {
		t.Fatalf("ring: exit %d, %+v; want one bucket of two replicas", code, place)
	}
	// Every replica ring names holds the write (the second may ack after
	// the write returned), and no other node does.
	for id := range nodes {
		want := admin.StateAbsent
		if slices.Contains(place.Replicas, id) {
			want = admin.StateValue
		}
		var rec admin.ReplicaRecord
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if code := adminJSON(t, &rec, "-c", coord, "get", string(key), "--replica", id); code != admin.ExitOK {
				t.Fatalf("get --replica %s: exit %d", id, code)
			}
			if rec.State == want || time.Now().After(deadline) {
				break
			}
		}
		if rec.State != want || want == admin.StateValue && (rec.Size != int64(len(value)) || fmt.Sprint(rec.Timestamp) != ts) {
			t.Errorf("get --replica %s = %+v; want %s (replicas %v, %d bytes at %s)", id, rec, want, place.Replicas, len(value), ts)
		}
	}
	if code, out, _ := takoAdmin(t, "-node", addrs[place.Replicas[0]], "get", string(key)); code != 0 || !strings.Contains(out, "value of 23 bytes, timestamp "+ts) {
		t.Errorf("get -node: exit %d:\n%s", code, out)
	}

	if code, out, errOut := takoAdmin(t, "-c", coord, "status"); code != admin.ExitOK {
		t.Errorf("status with every node up: exit %d\n%s%s", code, out, errOut)
	}
	nodes["n4"].kill(syscall.SIGKILL)
	code, out, errOut := takoAdmin(t, "-c", coord, "status")
	if code != admin.ExitUnhealthy || !tableRow(out, "n4", addrs["n4"], "down") || !strings.Contains(errOut, "node n4 ("+addrs["n4"]+") is down") {
		t.Errorf("status with n4 killed: exit %d, want %d and n4 down\nstdout:\n%s\nstderr:\n%s", code, admin.ExitUnhealthy, out, errOut)
	}
	var st admin.StatusReport
	adminJSON(t, &st, "-c", coord, "status")
	for _, n := range st.Nodes {
		if n.Up != (n.ID != "n4") {
			t.Errorf("status -json: %s up=%v (%s)", n.ID, n.Up, n.Error)
		}
	}
	if st.Healthy || st.Migration.State != coordinator.StateNone {
		t.Errorf("status -json: healthy %v, migration %q; want unhealthy, none", st.Healthy, st.Migration.State)
	}

	if code, out, _ := takoAdmin(t, "-c", coord, "repair"); code != admin.ExitError || strings.Count(out, "anti-entropy pass started") != 3 {
		t.Errorf("repair with n4 down: exit %d, want 1 and three passes started:\n%s", code, out)
	}
	if code, out, errOut := takoAdmin(t, "-c", coord, "repair", "n1"); code != admin.ExitOK {
		t.Errorf("repair n1: exit %d\n%s%s", code, out, errOut)
	}
}

// tableRow reports whether some line of a table holds cols in a row.
func tableRow(out string, cols ...string) bool {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		for i := range f {
			if i+len(cols) <= len(f) && slices.Equal(f[i:i+len(cols)], cols) {
				return true
			}
		}
	}
	return false
}

// TestVersionFlag checks -version on every binary: the version set at
// build time for tako-admin, the build-info fallback for the others.
func TestVersionFlag(t *testing.T) {
	adminBinary(t)
	for _, name := range []string{"tako-admin", "tako-node", "tako-proxy", "tako-coordinator", "tako-cluster"} {
		out, err := exec.Command(filepath.Join(binDir, name), "-version").Output()
		line := string(out)
		ok := strings.HasPrefix(line, name+" ") && strings.Contains(line, " (go") && strings.HasSuffix(line, ")\n")
		if name == "tako-admin" {
			ok = ok && strings.HasPrefix(line, name+" "+adminVersion+" (go")
		}
		if err != nil || !ok {
			t.Errorf("%s -version = %q, %v; want \"%s VERSION (goX.Y)\"", name, line, err, name)
		}
	}
}
