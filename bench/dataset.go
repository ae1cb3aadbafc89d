package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// ErrNoFiles reports a -files directory without regular files.
var ErrNoFiles = errors.New("bench: no regular files in directory")

// Dataset is the keyspace and its values. Synthetic datasets have n keys "k0000000000"… all
// holding the same pseudo-random value of one size (reads verify its length); file datasets use
// each file's basename as key and its bytes as value (reads verify the bytes). Immutable after
// construction, safe to share between workers.
type Dataset struct {
	n     int
	value []byte   // synthetic: the one value
	keys  [][]byte // files: basenames
	vals  [][]byte // files: contents
	dir   string
}

// NewSyntheticDataset builds n keys holding one deterministic value of size bytes.
func NewSyntheticDataset(n, size int, seed uint64) (*Dataset, error) {
	if n <= 0 || size < 0 {
		return nil, fmt.Errorf("bench: bad dataset: %d keys of %d bytes", n, size)
	}
	v := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return &Dataset{n: n, value: v}, nil
}

// LoadFilesDataset reads every regular file directly in dir (sorted by name, so the key order
// and thus the workload is deterministic).
func LoadFilesDataset(dir string) (*Dataset, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bench: read files dir: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	d := &Dataset{dir: dir}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("bench: read file: %w", err)
		}
		d.keys = append(d.keys, []byte(e.Name()))
		d.vals = append(d.vals, b)
	}
	if d.n = len(d.keys); d.n == 0 {
		return nil, fmt.Errorf("%w %s", ErrNoFiles, dir)
	}
	return d, nil
}

// Len is the number of keys.
func (d *Dataset) Len() int { return d.n }

// Files reports whether values come from files.
func (d *Dataset) Files() bool { return d.keys != nil }

// Key appends key i to dst.
func (d *Dataset) Key(dst []byte, i int) []byte {
	if d.keys != nil {
		return append(dst, d.keys[i]...)
	}
	dst = append(dst, 'k')
	for p := uint64(1_000_000_000); p > 1 && uint64(i) < p; p /= 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendUint(dst, uint64(i), 10)
}

// Value is the value stored under key i (shared: do not modify).
func (d *Dataset) Value(i int) []byte {
	if d.vals != nil {
		return d.vals[i]
	}
	return d.value
}

// Verify checks a value read back for key i: bytes for files, length otherwise.
func (d *Dataset) Verify(i int, got []byte) bool {
	if d.vals != nil {
		return bytes.Equal(got, d.vals[i])
	}
	return len(got) == len(d.value)
}

// AvgValueSize is the mean value length, for reports.
func (d *Dataset) AvgValueSize() int {
	if d.vals == nil {
		return len(d.value)
	}
	var s int
	for _, v := range d.vals {
		s += len(v)
	}
	return s / len(d.vals)
}
