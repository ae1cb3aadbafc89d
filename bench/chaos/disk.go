package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNeedRoot reports a fault only root can inject here (mounting a tmpfs).
var ErrNeedRoot = errors.New("chaos: needs root")

// tmpfsSize is the size of a tmpfs var dir: small enough to fill in a moment.
const tmpfsSize = "48m"

// fillerName is the file FillDisk writes into a node's var dir.
const fillerName = "chaos-filler"

// mountTmpfs puts node id's var dir on a fresh tmpfs ("" does nothing).
func (c *Cluster) mountTmpfs(id string) error {
	if id == "" {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: mount a tmpfs for %s", ErrNeedRoot, id)
	}
	nd := c.Node(id)
	if nd == nil {
		return fmt.Errorf("chaos: tmpfs for unknown node %s", id)
	}
	if err := os.MkdirAll(nd.VarDir, 0o755); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+tmpfsSize, "tmpfs", nd.VarDir).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: mount tmpfs on %s: %v %s", ErrNeedRoot, nd.VarDir, err, strings.TrimSpace(string(out)))
	}
	c.tmpfs = nd.VarDir
	return nil
}

// unmountTmpfs lazily unmounts the tmpfs, if any (the node may still hold files open).
func (c *Cluster) unmountTmpfs() {
	if c.tmpfs == "" {
		return
	}
	if out, err := exec.Command("umount", "-l", c.tmpfs).CombinedOutput(); err != nil {
		c.log.Error("chaos: umount", "dir", c.tmpfs, "err", err, "out", strings.TrimSpace(string(out)))
	}
	c.tmpfs = ""
}

// fillDisk writes a filler file into dir until the file system has only leave bytes free,
// and returns how many bytes it wrote.
func fillDisk(dir string, leave int64) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("chaos: statfs %s: %w", dir, err)
	}
	n := int64(st.Bavail)*int64(st.Bsize) - leave
	if n <= 0 {
		return 0, nil
	}
	f, err := os.OpenFile(filepath.Join(dir, fillerName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("chaos: filler: %w", err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	var wrote int64
	for wrote < n {
		k, err := f.Write(block[:min(int64(len(block)), n-wrote)])
		wrote += int64(k)
		if err != nil {
			return wrote, fmt.Errorf("chaos: filler: %w", err)
		}
	}
	return wrote, nil
}

// freeDisk removes the filler file.
func freeDisk(dir string) error {
	if err := os.Remove(filepath.Join(dir, fillerName)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("chaos: remove filler: %w", err)
	}
	return nil
}
