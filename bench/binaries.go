package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// ModulePath is the module whose commands Binaries can build.
const ModulePath = "github.com/tako-kv/tako"

// ErrNoBinary reports a program that is neither installed nor buildable.
var ErrNoBinary = errors.New("bench: binary not found")

// Binaries finds the programs the harness starts. Tako's own commands are looked up next to the
// running executable, then on PATH, then built with `go build` from the module root (found by
// walking up from the working directory and from the executable) into a temp dir that Close
// removes. Other programs (redis-server, etcd) come from PATH only. Safe for concurrent use.
type Binaries struct {
	mu    sync.Mutex
	found map[string]string
	fails map[string]error
	tmp   string
}

// NewBinaries returns an empty finder.
func NewBinaries() *Binaries {
	return &Binaries{found: map[string]string{}, fails: map[string]error{}}
}

// Close removes binaries this finder built.
func (b *Binaries) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tmp == "" {
		return nil
	}
	err := os.RemoveAll(b.tmp)
	b.tmp = ""
	return err
}

// Tako returns the path of the Tako command name (e.g. "tako-node").
func (b *Binaries) Tako(name string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.found[name]; ok {
		return p, nil
	}
	if err, ok := b.fails[name]; ok {
		return "", err
	}
	p, err := b.findTako(name)
	if err != nil {
		b.fails[name] = err
		return "", err
	}
	b.found[name] = p
	return p, nil
}

func (b *Binaries) findTako(name string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	root, err := findModuleRoot()
	if err != nil {
		return "", fmt.Errorf("%w: %s is not next to tako-bench nor on PATH, and %w", ErrNoBinary, name, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", name)); err != nil {
		return "", fmt.Errorf("%w: %s not next to tako-bench, not on PATH, and %s/cmd/%s does not exist", ErrNoBinary, name, root, name)
	}
	if b.tmp == "" {
		if b.tmp, err = os.MkdirTemp("", "tako-bench-bin-"); err != nil {
			return "", err
		}
	}
	out := filepath.Join(b.tmp, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: go build ./cmd/%s: %w\n%s", ErrNoBinary, name, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}

// System returns the path of an installed program, with an install hint when it is missing.
func (b *Binaries) System(name, debPackage string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s not on PATH (apt-get install -y %s)", ErrNoBinary, name, debPackage)
	}
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// findModuleRoot walks up from the working directory, then from the executable, for the go.mod
// of ModulePath.
func findModuleRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			if modulePathOf(filepath.Join(dir, "go.mod")) == ModulePath {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("no go.mod of %s above the working directory or the executable", ModulePath)
}

// modulePathOf returns the module directive of a go.mod file ("" if unreadable).
func modulePathOf(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
