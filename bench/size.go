package bench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadSize reports a value size that ParseSize cannot read.
var ErrBadSize = errors.New("bench: bad size")

// sizeUnits maps a lower-cased suffix to its multiplier: SI for k/M/G (and kB/MB/GB), binary for
// KiB/MiB/GiB (and Ki/Mi/Gi). "b" and "" are bytes.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
}

// ParseSize reads a byte count such as "100", "180k" (180 000), "180KiB" (184 320) or "1.5MiB".
func ParseSize(s string) (int, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok || num == "" {
		return 0, fmt.Errorf("%w %q: want e.g. 100, 180k, 180KiB", ErrBadSize, s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f*mult > 1<<40 {
		return 0, fmt.Errorf("%w %q", ErrBadSize, s)
	}
	return int(f*mult + 0.5), nil
}

// FormatBytes renders n with a binary unit and 3 significant digits ("100 B", "180 KiB", "1.50 MiB").
func FormatBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	f := float64(n)
	u := -1
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	return sig3(f) + " " + units[u:u+1] + "iB"
}

// sig3 formats f with three significant digits and no trailing ".0".
func sig3(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
}
