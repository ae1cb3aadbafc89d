package config

import (
	"fmt"
	"strconv"
	"strings"
)

// invalidError is a configuration problem located by where (`deployment "d"
// bucket "b"`, empty for the top level) and, when it comes from the document,
// by line. It reads "config: [line N: ][where: ]msg" and unwraps to
// ErrInvalid, so the message stays free of a second "config: invalid" prefix.
type invalidError struct {
	line  int
	where string
	msg   string
}

func (e *invalidError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.line))
		b.WriteString(": ")
	}
	if e.where != "" {
		b.WriteString(e.where)
		b.WriteString(": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalid(line int, where, format string, args ...any) error {
	return &invalidError{line: line, where: where, msg: fmt.Sprintf(format, args...)}
}

func deploymentWhere(dep string) string { return fmt.Sprintf("deployment %q", dep) }

func bucketWhere(dep, bucket string) string {
	return fmt.Sprintf("deployment %q bucket %q", dep, bucket)
}

func nodeWhere(dep, bucket, node string) string {
	return fmt.Sprintf("deployment %q bucket %q node %q", dep, bucket, node)
}

func coordinatorWhere(id string) string { return fmt.Sprintf("coordinator %q", id) }

// unknownKey reports a key the schema does not have, suggesting the closest
// known key when the difference looks like a typo.
func unknownKey(line int, where, key string, known []string) error {
	msg := fmt.Sprintf("unknown key %q", key)
	if s := closest(key, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		msg += " (known keys: " + strings.Join(known, ", ") + ")"
	}
	if where == "" {
		where = "top level"
	}
	return invalid(line, where, "%s", msg)
}

// closest returns the known key within edit distance 2 of key, if any.
func closest(key string, known []string) string {
	best, bestDist := "", 3
	if len(key) > 64 {
		return ""
	}
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
