package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// "1d", "2 days,", "1day": an optional day count in front.
	daysPrefix = regexp.MustCompile(`^(\d+)\s*(?:days|day|d)(?:\s*,\s*|\s+|$)`)
	// Python timedelta style clock: "0:30:00", "23:59:59.5".
	clockForm = regexp.MustCompile(`^(\d+):(\d{1,2}):(\d{1,2})(\.\d{1,9})?$`)
	// A bare number is seconds (YAML/JSON `3600`, `0.5`).
	secondsForm = regexp.MustCompile(`^\d+(\.\d{1,9})?$`)
)

const maxIntervalDays = 100000 // ~270 years; keeps the arithmetic far from overflow

// ParseInterval parses a duration as the seed and the original implementation
// write it, and a few more forms:
//
//	"1d 0:00:00", "2d 3:04:05", "2 days, 3:04:05"   days and a clock
//	"1d", "0:30:00"                                 either part alone
//	"12h", "30m", "45s", "1h30m", "10ms"            Go durations (time.ParseDuration)
//	"1d 12h"                                        days and a Go duration
//	"3600", "0.5"                                   seconds (YAML/JSON numbers)
//
// Negative durations are refused. Zero parses (validation decides whether a
// field may be zero).
func ParseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty interval")
	}
	if secondsForm.MatchString(s) {
		return parseSeconds(s)
	}
	var days int64
	rest := s
	if m := daysPrefix.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > maxIntervalDays {
			return 0, fmt.Errorf("interval %q: too many days (max %d)", s, maxIntervalDays)
		}
		days = n
		rest = strings.TrimSpace(s[len(m[0]):])
	}
	var d time.Duration
	switch {
	case rest == "":
		// days only ("1d"): s is not empty, so the prefix matched
	case clockForm.MatchString(rest):
		var err error
		if d, err = parseClock(rest); err != nil {
			return 0, fmt.Errorf("interval %q: %w", s, err)
		}
	default:
		var err error
		d, err = time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("interval %q: want forms like 1d 0:00:00, 1d, 12h, 30m, 45s", s)
		}
		if d < 0 {
			return 0, fmt.Errorf("interval %q: negative", s)
		}
	}
	return addDays(d, days, s)
}

func addDays(d time.Duration, days int64, s string) (time.Duration, error) {
	dd := time.Duration(days) * 24 * time.Hour
	if d > math.MaxInt64-dd {
		return 0, fmt.Errorf("interval %q: too long", s)
	}
	return d + dd, nil
}

func parseSeconds(s string) (time.Duration, error) {
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || sec > maxIntervalDays*86400 {
		return 0, fmt.Errorf("interval %q: too long", s)
	}
	return time.Duration(sec)*time.Second + fraction(frac), nil
}

// parseClock parses "H:MM:SS[.fff]"; minutes and seconds must be below 60.
func parseClock(s string) (time.Duration, error) {
	m := clockForm.FindStringSubmatch(s)
	h, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || h > maxIntervalDays*24 {
		return 0, errors.New("too many hours")
	}
	mins, _ := strconv.Atoi(m[2])
	secs, _ := strconv.Atoi(m[3])
	if mins > 59 || secs > 59 {
		return 0, errors.New("minutes and seconds must be below 60")
	}
	d := time.Duration(h)*time.Hour + time.Duration(mins)*time.Minute + time.Duration(secs)*time.Second
	return d + fraction(strings.TrimPrefix(m[4], ".")), nil
}

// fraction turns up to 9 decimal digits of a second into a duration.
func fraction(digits string) time.Duration {
	if digits == "" {
		return 0
	}
	n, _ := strconv.ParseInt((digits + "000000000")[:9], 10, 64)
	return time.Duration(n)
}

// FormatInterval prints d in the seed's style when it is whole seconds
// ("1d 0:00:00", "12:00:00", "0:00:45") and as a Go duration otherwise
// ("10ms", "1.5s"). ParseInterval(FormatInterval(d)) == d for d >= 0.
func FormatInterval(d time.Duration) string {
	if d < 0 || d%time.Second != 0 {
		return d.String()
	}
	secs := int64(d / time.Second)
	days, secs := secs/86400, secs%86400
	clock := fmt.Sprintf("%d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	if days == 0 {
		return clock
	}
	return fmt.Sprintf("%dd %s", days, clock)
}
