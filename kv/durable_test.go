package kv

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// gatedFS holds every WAL sync while closed is set, until the gate opens.
type gatedFS struct {
	vfs.FS
	hold atomic.Bool
	gate chan struct{}
}

type gatedFile struct {
	vfs.File
	fs *gatedFS
}

func (f gatedFile) wait() {
	if f.fs.hold.Load() {
		<-f.fs.gate
	}
}
func (f gatedFile) Sync() error                  { f.wait(); return f.File.Sync() }
func (f gatedFile) SyncData() error              { f.wait(); return f.File.SyncData() }
func (f gatedFile) SyncTo(n int64) (bool, error) { f.wait(); return f.File.SyncTo(n) }

func (g *gatedFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g}, nil
}

func (g *gatedFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.ReuseForWrite(old, name, c)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g}, nil
}

// TestNoAckBeforeDurable: while a write waits for its WAL sync, it is
// already visible; a retry of it (identical) or an older write must still
// not be acknowledged before that sync, since their answer rests on it.
func TestNoAckBeforeDurable(t *testing.T) {
	fs := &gatedFS{FS: vfs.NewMem(), gate: make(chan struct{})}
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := sync.OnceFunc(func() { fs.hold.Store(false); close(fs.gate) })
	defer release() // before Close, also when the test fails
	fs.hold.Store(true)
	key := []byte("k")
	first := make(chan error, 1)
	go func() {
		_, err := s.Apply(key, Record{TS: 100, Value: []byte("v")})
		first <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for { // the write becomes visible before its sync
		if m, err := s.Stat(key); err == nil && m.TS == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first write never became visible")
		}
		time.Sleep(time.Millisecond)
	}
	others := make(chan Result, 2)
	for _, rec := range []Record{{TS: 100, Value: []byte("v")}, {TS: 99, Value: []byte("old")}} {
		go func() {
			res, err := s.Apply(key, rec)
			if err != nil {
				t.Error(err)
			}
			others <- res
		}()
	}
	select {
	case res := <-others:
		t.Fatalf("acknowledged %+v while the record it rests on was not durable", res)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if res := <-others; res.TS != 100 {
			t.Fatalf("result %+v, want current timestamp 100", res)
		}
	}
}
