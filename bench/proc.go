package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is 100 on every Linux
// architecture Go supports (the kernel fixes it for the ABI); reading sysconf would need cgo.
const clockTicks = 100

// ErrProcFormat reports a /proc file that could not be parsed.
var ErrProcFormat = errors.New("bench: unexpected /proc format")

// ProcStat is what the harness reads for one process.
type ProcStat struct {
	Pid     int
	PPid    int
	CPUSecs float64 // utime + stime
	PeakRSS uint64  // VmHWM in bytes
}

// ReadProcStat reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProcStat(pid int) (ProcStat, error) {
	p := ProcStat{Pid: pid}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return p, err
	}
	p.PPid, p.CPUSecs, err = parseStat(b)
	if err != nil {
		return p, fmt.Errorf("pid %d: %w", pid, err)
	}
	b, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return p, err
	}
	p.PeakRSS, err = parseStatusKB(b, "VmHWM:")
	return p, err
}

// parseStat extracts ppid (field 4) and utime+stime (fields 14, 15) from /proc/<pid>/stat. The
// command name (field 2) may contain spaces and parentheses, so fields are counted after the
// last ')'.
func parseStat(b []byte) (ppid int, cpu float64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, ErrProcFormat
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, ErrProcFormat
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, 0, fmt.Errorf("%w: %w", ErrProcFormat, err)
	}
	return ppid, float64(ut+st) / clockTicks, nil
}

// parseStatusKB finds "Key:   N kB" in /proc/<pid>/status and returns N·1024. A process without
// the key (a kernel thread, a zombie) yields 0.
func parseStatusKB(b []byte, key string) (uint64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, ErrProcFormat
			}
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%w: %w", ErrProcFormat, err)
			}
			return n * 1024, nil
		}
	}
	return 0, nil
}

// ProcTree returns pid and all its descendants (walking /proc for parent links), with their
// stats. Processes that vanish during the walk are skipped.
func ProcTree(pid int) []ProcStat {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]ProcStat{}
	var root *ProcStat
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadProcStat(id)
		if err != nil {
			continue
		}
		if id == pid {
			root = &st
		}
		children[st.PPid] = append(children[st.PPid], st)
	}
	if root == nil {
		return nil
	}
	out := []ProcStat{*root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].Pid]...)
	}
	return out
}

// Usage is CPU and memory accounting of a server's process tree.
type Usage struct {
	Procs   int     // processes counted
	CPUSecs float64 // user+system seconds
	PeakRSS uint64  // sum of VmHWM over the processes (an upper bound of the joint peak)
}

// TreeUsage sums ProcTree(pid).
func TreeUsage(pid int) Usage {
	var u Usage
	for _, p := range ProcTree(pid) {
		u.Procs++
		u.CPUSecs += p.CPUSecs
		u.PeakRSS += p.PeakRSS
	}
	return u
}

// selfCPU is the harness's own CPU seconds, reported so a saturated load generator shows.
func selfCPU() float64 {
	st, err := ReadProcStat(os.Getpid())
	if err != nil {
		return 0
	}
	return st.CPUSecs
}
