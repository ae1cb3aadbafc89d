package hints

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
)

// TestHintsAddedDuringReplayAreSent: hints taken while replays of their
// target run are all sent. Add takes its sequence number before its write
// commits, so a hint numbered below the last one a replay read may become
// visible only after the read; deleting the range read took it unsent
// (16 of 16,000 in one run).
func TestHintsAddedDuringReplayAreSent(t *testing.T) {
	s := open(t, vfs.NewMem(), Options{})
	defer s.Close()
	var mu sync.Mutex
	sent := map[string]bool{}
	send := func(b []codec.Record) error {
		mu.Lock()
		for _, r := range b {
			sent[string(r.Key)] = true
		}
		mu.Unlock()
		time.Sleep(200 * time.Microsecond) // the network round trip
		return nil
	}
	stop := make(chan struct{})
	var replayer sync.WaitGroup
	replayer.Add(1)
	go func() {
		defer replayer.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Replay("n1", send); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	const writers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if !s.Add("n1", fmt.Appendf(nil, "w%d-%d", w, i), 1, 0, nil) {
					t.Error("hint not taken")
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	replayer.Wait()
	if _, err := s.Replay("n1", send); err != nil {
		t.Fatal(err)
	}
	lost := writers*each - len(sent)
	st := s.Stats()
	if lost != 0 {
		t.Fatalf("%d of %d hints deleted without being sent; stats now %+v, targets %v", lost, writers*each, st, s.Targets())
	}
}
