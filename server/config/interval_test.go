package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseInterval(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration // -1: error
	}{
		{"1d 0:00:00", day},
		{"  1d 0:00:00 ", day},
		{"1d", day},
		{"1 day", day},
		{"2d 3:04:05", 2*day + 3*time.Hour + 4*time.Minute + 5*time.Second},
		{"2 days, 3:04:05", 2*day + 3*time.Hour + 4*time.Minute + 5*time.Second},
		{"0:30:00", 30 * time.Minute},
		{"25:00:00", 25 * time.Hour},
		{"0:00:01.5", 1500 * time.Millisecond},
		{"12h", 12 * time.Hour},
		{"30m", 30 * time.Minute},
		{"45s", 45 * time.Second},
		{"10ms", 10 * time.Millisecond},
		{"1h30m", 90 * time.Minute},
		{"1d 12h", day + 12*time.Hour},
		{"3600", time.Hour},
		{"0.25", 250 * time.Millisecond},
		{"0", 0},
		{"0:00:00", 0},
		{"", -1},
		{"d", -1},
		{"1 fortnight", -1},
		{"1d12h", -1},
		{"-1h", -1},
		{"-1d", -1},
		{"1:60:00", -1},
		{"1:00:60", -1},
		{"1:2", -1},
		{"1d 1d", -1},
		{"999999999d", -1},
		{"100000d 23:59:59", 100000*day + 24*time.Hour - time.Second},
		{"100000d 200000h", -1}, // overflows time.Duration
		{"99999999999999999999", -1},
		{"9999999999h", -1},
	} {
		got, err := ParseInterval(tc.in)
		switch {
		case tc.want < 0 && err == nil:
			t.Errorf("ParseInterval(%q) = %v, want error", tc.in, got)
		case tc.want >= 0 && err != nil:
			t.Errorf("ParseInterval(%q): %v", tc.in, err)
		case tc.want >= 0 && got != tc.want:
			t.Errorf("ParseInterval(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFormatInterval(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{24 * time.Hour, "1d 0:00:00"},
		{12 * time.Hour, "12:00:00"},
		{30 * time.Minute, "0:30:00"},
		{49*time.Hour + 4*time.Minute + 5*time.Second, "2d 1:04:05"},
		{10 * time.Millisecond, "10ms"},
		{1500 * time.Millisecond, "1.5s"},
		{0, "0:00:00"},
	} {
		got := FormatInterval(tc.in)
		if got != tc.want {
			t.Errorf("FormatInterval(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := ParseInterval(got); err != nil || back != tc.in {
			t.Errorf("ParseInterval(%q) = %v, %v; want %v", got, back, err, tc.in)
		}
	}
}

func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{"1d 0:00:00", "2 days, 3:04:05", "12h", "0.5", "1d 1h30m", "0:30:00.25"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseInterval(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseInterval(%q) = %v, negative", s, d)
		}
		out := FormatInterval(d)
		if back, err := ParseInterval(out); err != nil || back != d {
			t.Fatalf("ParseInterval(%q) = %v; FormatInterval = %q; back %v, %v", s, d, out, back, err)
		}
		if strings.TrimSpace(out) != out {
			t.Fatalf("FormatInterval(%v) = %q has spaces around it", d, out)
		}
	})
}
