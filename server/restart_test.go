package server

import (
	"slices"
	"strings"
	"testing"

	"github.com/tako-kv/tako/server/config"
)

func TestRestartKeys(t *testing.T) {
	const doc = `
active_deployment: d
deployments:
    d:
        read_repair: %READ%
        buckets:
            b1: {n1: [127.0.0.1, %PORT%, 9101], n2: [127.0.0.1, 9002, 9102]}
%STORAGE%`
	parse := func(read, port, storage string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(strings.NewReplacer("%READ%", read, "%PORT%", port, "%STORAGE%", storage).Replace(doc)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	started := parse("yes", "9001", "")
	for _, c := range []struct {
		name string
		cfg  *config.Config
		self string
		want []string
	}{
		{"applied at once", parse("no", "9001", ""), "n1", nil},
		{"storage, node", parse("yes", "9001", "storage: {sync: none, max_value_bytes: 1MiB}"), "n1", []string{"storage.sync", "storage.max_value_bytes"}},
		{"storage, proxy", parse("yes", "9001", "storage: {sync: none, max_value_bytes: 1MiB}"), "", []string{"storage.max_value_bytes"}},
		{"own port", parse("yes", "9011", ""), "n1", []string{"node n1: [host, http_port, peer_port]"}},
		{"another node's port", parse("yes", "9011", ""), "n2", nil},
	} {
		if got := restartKeys(started, c.cfg, c.self); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
