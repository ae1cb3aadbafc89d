package hints

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tako-kv/tako/codec"
)

func open(t *testing.T, fs vfs.FS, o Options) *Store {
	t.Helper()
	o.FS = fs
	s, err := Open("hints", o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// collect replays target's hints into a slice.
func collect(t *testing.T, s *Store, target string) []codec.Record {
	t.Helper()
	var got []codec.Record
	if _, err := s.Replay(target, func(b []codec.Record) error { got = append(got, b...); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestReplayInOrderAcrossRestart(t *testing.T) {
	fs := vfs.NewMem()
	s := open(t, fs, Options{})
	for i := range 600 { // more than one batch
		s.Add("n2", []byte(fmt.Sprintf("k%d", i)), int64(i+1), 0, []byte("v"))
	}
	s.Add("n3", []byte("other"), 1, codec.Tombstone, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, fs, Options{})
	defer s.Close()
	if st := s.Stats(); st.Pending != 601 {
		t.Fatalf("after reopen: %+v", st)
	}
	// A failing send keeps the hints.
	boom := errors.New("down")
	if _, err := s.Replay("n2", func([]codec.Record) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("replay to a down node: %v", err)
	}
	got := collect(t, s, "n2")
	if len(got) != 600 {
		t.Fatalf("replayed %d of 600", len(got))
	}
	for i, r := range got {
		if string(r.Key) != fmt.Sprintf("k%d", i) || r.TS != int64(i+1) || string(r.Value) != "v" {
			t.Fatalf("hint %d: %q %d %q", i, r.Key, r.TS, r.Value)
		}
	}
	if got := collect(t, s, "n2"); len(got) != 0 {
		t.Fatalf("replayed twice: %d", len(got))
	}
	if got := collect(t, s, "n3"); len(got) != 1 || got[0].Flags != codec.Tombstone {
		t.Fatalf("n3: %+v", got)
	}
	if st := s.Stats(); st.Pending != 0 || st.PendingBytes != 0 || st.Replayed != 601 || len(s.Targets()) != 0 {
		t.Fatalf("after replay: %+v %v", st, s.Targets())
	}
}

func TestBounds(t *testing.T) {
	s := open(t, vfs.NewMem(), Options{MaxBytes: 1000, MaxAge: time.Hour})
	defer s.Close()
	taken := 0
	for i := range 100 {
		if s.Add("n2", []byte(fmt.Sprintf("k%d", i)), 1, 0, make([]byte, 50)) {
			taken++
		}
	}
	st := s.Stats()
	if taken == 0 || taken == 100 || st.Dropped != int64(100-taken) || st.PendingBytes > 1000 {
		t.Fatalf("taken %d: %+v", taken, st)
	}
	s.opts.MaxAge = time.Nanosecond // every hint is now too old
	time.Sleep(time.Millisecond)
	if got := collect(t, s, "n2"); len(got) != 0 {
		t.Fatalf("stale hints replayed: %d", len(got))
	}
	if st := s.Stats(); st.Dropped != 100 || st.Pending != 0 {
		t.Fatalf("after age-out: %+v", st)
	}
}

func TestDrop(t *testing.T) {
	s := open(t, vfs.NewMem(), Options{})
	defer s.Close()
	s.Add("gone", []byte("a"), 1, 0, nil)
	s.Add("gone", []byte("b"), 1, 0, nil)
	s.Add("n2", []byte("c"), 1, 0, nil)
	if err := s.Drop("gone"); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, s, "gone"); len(got) != 0 {
		t.Fatalf("dropped hints replayed: %d", len(got))
	}
	if st := s.Stats(); st.Dropped != 2 || st.Pending != 1 {
		t.Fatalf("%+v", st)
	}
}
