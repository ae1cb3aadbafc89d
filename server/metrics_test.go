package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tako-kv/tako/eventloop"
	"github.com/tako-kv/tako/httpproxy"
	"github.com/tako-kv/tako/kv"
	"github.com/tako-kv/tako/server/metrics"
	"github.com/tako-kv/tako/server/metrics/metricstest"
)

func TestErrorKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("no reply within 1s: %w", context.DeadlineExceeded), metrics.KindTimeout},
		{fmt.Errorf("get: %w", eventloop.ErrConnLost), metrics.KindConnLost},
		{fmt.Errorf("%w: 127.0.0.1:1: backing off", eventloop.ErrUnavailable), metrics.KindUnreachable},
		{fmt.Errorf("eventloop: dial 127.0.0.1:1: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), metrics.KindUnreachable},
		{fmt.Errorf("%w with 127.0.0.1:1: bad hello", eventloop.ErrHandshake), metrics.KindUnreachable},
		{&eventloop.StatusError{Msg: "disk nearly full"}, metrics.KindErrorReply},
		{errors.New("something else"), metrics.KindOther},
	} {
		if got := errorKind(c.err); got != c.want {
			t.Errorf("errorKind(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// TestClusterMetrics: a coordinated write is counted by level and outcome,
// each failed replica call by node, and a stale replica's read repair.
func TestClusterMetrics(t *testing.T) {
	tc := newTestCluster(t, fmt.Sprintf(sixNodes, "yes"))
	defer tc.Close()
	reg := metrics.NewRegistry()
	tc.metrics = metrics.NewCluster(reg)
	key := []byte("metrics-key")
	downID := tc.replicasOf(string(key))[0]
	down := tc.nodes[downID]
	down.setDown(true)
	if _, err := tc.Apply(key, kv.Record{TS: 10, Value: []byte("v")}, httpproxy.AcksQuorum); err != nil {
		t.Fatalf("quorum write with one replica down: %v", err)
	}
	if _, err := tc.Apply(key, kv.Record{TS: 11, Value: []byte("v")}, httpproxy.AcksAll); !errors.Is(err, httpproxy.ErrUnavailable) {
		t.Fatalf("write at all with one replica down: %v", err)
	}
	// The write at quorum answered without the replica that is down: its
	// call is counted once it comes back.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fams, body := metricstest.Scrape(t, reg.Serve)
		errs := fams.Value(t, "tako_replica_errors_total", "peer", downID, "kind", metrics.KindOther)
		if errs > 2 || errs < 2 && time.Now().After(deadline) {
			t.Fatalf("%v errors counted for %s, want the 2 writes it missed\n%s", errs, downID, body)
		}
		if errs < 2 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for _, c := range []struct {
			level, outcome string
			want           float64
		}{
			{"quorum", metrics.WriteApplied, 1}, {"all", metrics.WriteUnavailable, 1}, {"quorum", metrics.WriteUnavailable, 0},
		} {
			if v := fams.Value(t, "tako_write_acks_total", "write_acks", c.level, "outcome", c.outcome); v != c.want {
				t.Errorf("writes %s %s = %v, want %v", c.level, c.outcome, v, c.want)
			}
		}
		break
	}
	down.setDown(false)
	deadline = time.Now().Add(5 * time.Second)
	for {
		if _, err := tc.Get(key, nil); err != nil {
			t.Fatal(err)
		}
		fams, _ := metricstest.Scrape(t, reg.Serve)
		if fams.Value(t, "tako_read_repairs_total") >= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a read of a key one replica missed sent no repair")
		}
	}
}
