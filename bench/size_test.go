package bench

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	ok := func(in string, want int) {
		t.Helper()
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := func(in string) {
		t.Helper()
		if _, err := ParseSize(in); !errors.Is(err, ErrBadSize) {
			t.Errorf("ParseSize(%q) error %v, want ErrBadSize", in, err)
		}
	}
	ok("100", 100)
	ok("0", 0)
	ok("100B", 100)
	ok("180k", 180000)
	ok("180K", 180000)
	ok("180kB", 180000)
	ok("180KiB", 184320)
	ok("180ki", 184320)
	ok("1.5MiB", 1572864)
	ok("2M", 2000000)
	ok(" 4 KiB ", 4096)
	ok("1GiB", 1<<30)
	bad("")
	bad("k")
	bad("12q")
	bad("1.2.3")
	bad("-5")
	bad("9999999GiB")
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[uint64]string{0: "0 B", 100: "100 B", 1023: "1023 B", 1024: "1.00 KiB",
		184320: "180 KiB", 1572864: "1.50 MiB", 15 << 30: "15.0 GiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"100", "180k", "180KiB", "1.5MiB", "", "x", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && (n < 0 || n > 1<<40) {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
