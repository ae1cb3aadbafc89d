package config

import "strings"

// NaturalCompare orders IDs the way an operator reads them: runs of digits
// compare as numbers, so "n2" < "n10" and "b9" < "b10". IDs whose runs are
// all equal (such as "n01" and "n1") fall back to plain byte order, so the
// order is total and every process sorts the same way. It returns -1, 0 or +1
// and suits slices.SortFunc.
func NaturalCompare(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if isDigit(a[i]) && isDigit(b[j]) {
			ea, eb := digitRunEnd(a, i), digitRunEnd(b, j)
			if c := compareNumbers(a[i:ea], b[j:eb]); c != 0 {
				return c
			}
			i, j = ea, eb
			continue
		}
		if a[i] != b[j] {
			if a[i] < b[j] {
				return -1
			}
			return 1
		}
		i++
		j++
	}
	switch {
	case len(a)-i < len(b)-j:
		return -1
	case len(a)-i > len(b)-j:
		return 1
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digitRunEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// compareNumbers compares two digit strings by value without converting them,
// so arbitrarily long runs cannot overflow.
func compareNumbers(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
