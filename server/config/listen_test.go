package config

import "testing"

func TestListenAddr(t *testing.T) {
	for _, c := range []struct{ addr, override, want string }{
		{"10.0.0.1:4701", "", "10.0.0.1:4701"},
		{"10.0.0.1:4701", "127.0.0.2", "127.0.0.2:4701"},
		{"10.0.0.1:4701", "127.0.0.2:9000", "127.0.0.2:9000"},
		{"10.0.0.1:4701", "0.0.0.0", "0.0.0.0:4701"},
		{"10.0.0.1:4701", "::1", "[::1]:4701"},
		{"10.0.0.1:4701", "[::1]", "[::1]:4701"},
		{"10.0.0.1:4701", "[::1]:9000", "[::1]:9000"},
		{"[fe80::1]:4701", "127.0.0.1", "127.0.0.1:4701"},
	} {
		if got := ListenAddr(c.addr, c.override); got != c.want {
			t.Errorf("ListenAddr(%q, %q) = %q, want %q", c.addr, c.override, got, c.want)
		}
	}
}
