package chaos

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at returns t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func write(v string, start, end int, status int, ts int64) Op {
	return Op{Kind: OpWrite, Key: "k", Value: v, Start: at(start), End: at(end), Status: status, TS: ts}
}

func del(start, end int, status int, ts int64) Op {
	return Op{Kind: OpDelete, Key: "k", Start: at(start), End: at(end), Status: status, TS: ts}
}

func read(v string, start, end int, status int, ts int64) Op {
	return Op{Kind: OpRead, Key: "k", Value: v, Start: at(start), End: at(end), Status: status, TS: ts}
}

func val(node, v string, ts int64) Record { return Record{Node: node, Present: true, TS: ts, Value: v} }
func tomb(node string, ts int64) Record {
	return Record{Node: node, Present: true, TS: ts, Tombstone: true}
}

func TestCheck(t *testing.T) {
	f := checker(t, CheckOptions{Acks: "quorum"})
	a, b := val("n1", "a", 10), val("n2", "a", 10)
	f("acked write read back", []Op{write("a", 0, 5, 200, 10)}, []Record{a, b})
	f("superseded by a newer write", []Op{write("a", 0, 5, 200, 10), write("b", 6, 9, 200, 20)},
		[]Record{val("n1", "b", 20), val("n2", "b", 20)})
	f("newer write that timed out may have happened", []Op{write("a", 0, 5, 200, 10), {Kind: OpWrite, Key: "k", Value: "b", Err: errTimeout}},
		[]Record{val("n1", "b", 20), val("n2", "b", 20)})
	f("acked write lost", []Op{write("a", 0, 5, 200, 10), write("b", 6, 9, 200, 20)},
		[]Record{a, b}, KindLost)
	f("acked write absent everywhere", []Op{write("a", 0, 5, 200, 10)},
		[]Record{{Node: "n1"}, {Node: "n2"}}, KindLost)
	f("acked delete undone", []Op{write("a", 0, 5, 200, 10), del(6, 9, 200, 20)},
		[]Record{a, b}, KindLost)
	f("acked delete kept", []Op{write("a", 0, 5, 200, 10), del(6, 9, 200, 20)},
		[]Record{tomb("n1", 20), tomb("n2", 20)})
	f("same ts, another value, no tie", []Op{write("a", 0, 5, 200, 10), write("b", 0, 5, 503, 0)},
		[]Record{val("n1", "c", 10), val("n2", "c", 10)}, KindLost, KindUnknown)
	f("same ts, a tie with a write that may have happened", []Op{write("a", 0, 5, 200, 10), write("b", 0, 5, 503, 0)},
		[]Record{val("n1", "b", 10), val("n2", "b", 10)})
	f("a tie with a refused write does not count", []Op{write("a", 0, 5, 200, 10), write("b", 0, 5, 400, 0)},
		[]Record{val("n1", "b", 10), val("n2", "b", 10)}, KindLost, KindUnknown)
	f("not applied: the winner's ts", []Op{{Kind: OpWrite, Key: "k", Value: "x", Status: 200, TS: 10, Applied: "no"}, write("a", 0, 5, 200, 10)},
		[]Record{a, b})
	f("divergent replicas", []Op{write("a", 0, 5, 200, 10)}, []Record{a, {Node: "n2"}}, KindDivergent)
	f("unreadable replica", []Op{write("a", 0, 5, 200, 10)}, []Record{a, {Node: "n2", Err: "refused"}}, KindUnreadable)
	f("final value nobody wrote", []Op{write("a", 0, 5, 503, 0)}, []Record{val("n1", "z", 10), val("n2", "z", 10)}, KindUnknown)

	w := write("a", 0, 5, 200, 10)
	f("read after the write sees it", []Op{w, read("a", 6, 7, 200, 10)}, []Record{a, b})
	f("stale read", []Op{w, read("", 6, 7, 404, 0)}, []Record{a, b}, KindStaleRead)
	f("concurrent read may miss it", []Op{w, read("", 4, 7, 404, 0)}, []Record{a, b})
	f("read without quorum promises nothing", []Op{w, {Kind: OpRead, Key: "k", Start: at(6), End: at(7), Status: 404, ReadQuorum: "no"}}, []Record{a, b})
	one := w
	one.Acks = "one"
	f("a write acknowledged by one replica binds no read", []Op{one, read("", 6, 7, 404, 0)}, []Record{a, b})
	f("404 of a delete carries the tombstone's ts", []Op{w, del(6, 8, 200, 20), read("", 9, 10, 404, 20)},
		[]Record{tomb("n1", 20), tomb("n2", 20)})
	f("final tombstone nobody wrote", []Op{w}, []Record{tomb("n1", 20), tomb("n2", 20)}, KindUnknown)
	f("final value of a refused write", []Op{write("a", 0, 5, 400, 0)}, []Record{val("n1", "a", 10), val("n2", "a", 10)}, KindUnknown)
	f("final value with another write's timestamp", []Op{write("a", 0, 5, 200, 10), write("b", 6, 9, 200, 20)},
		[]Record{val("n1", "a", 20), val("n2", "a", 20)}, KindLost, KindUnknown)
	f("read returns a value with another timestamp", []Op{w, read("a", 6, 7, 200, 11)}, []Record{a, b}, KindUnknown)
	f("read returns a value nobody wrote", []Op{w, read("zz", 6, 7, 200, 10)}, []Record{a, b}, KindUnknown)
}

// TestCheckPurged: with tombstone GC, absence can be a purged delete, and nothing more.
func TestCheckPurged(t *testing.T) {
	f := checker(t, CheckOptions{Acks: "quorum", Purged: true})
	absent := []Record{{Node: "n1"}, {Node: "n2"}}
	w, d := write("a", 0, 5, 200, 10), del(6, 8, 200, 20)
	f("a purged delete", []Op{w, d}, absent)
	f("purged, and a 404 without a timestamp after it", []Op{w, d, read("", 9, 10, 404, 0)}, absent)
	f("an acknowledged write after the delete is lost", []Op{w, d, write("b", 9, 10, 200, 30)}, absent, KindLost)
	f("a 404 without a timestamp before any delete is stale", []Op{w, read("", 6, 7, 404, 0), del(8, 9, 200, 20)}, absent, KindStaleRead)
	f("no delete at all: the write is lost", []Op{w}, absent, KindLost)
	f("a delete that timed out explains anything", []Op{w, {Kind: OpDelete, Key: "k", Err: errTimeout}}, absent)
}

// checker returns a closure that checks one key's history against its final records and
// compares the kinds of violation found with want.
func checker(t *testing.T, opts CheckOptions) func(name string, ops []Op, recs []Record, want ...string) {
	return func(name string, ops []Op, recs []Record, want ...string) {
		t.Helper()
		got := Check(ops, map[string][]Record{"k": recs}, opts)
		kinds := map[string]int{}
		for _, v := range got {
			kinds[v.Kind]++
		}
		wantKinds := map[string]int{}
		for _, k := range want {
			wantKinds[k]++
		}
		if len(kinds) != len(wantKinds) {
			t.Errorf("%s: got %v, want kinds %v", name, got, want)
			return
		}
		for k, n := range wantKinds {
			if kinds[k] != n {
				t.Errorf("%s: got %v, want kinds %v", name, got, want)
			}
		}
	}
}

func TestRecordNewer(t *testing.T) {
	f := func(a, b Record, want bool) {
		t.Helper()
		if got := a.newer(b); got != want {
			t.Errorf("%v newer than %v: %v, want %v", a, b, got, want)
		}
	}
	f(val("", "a", 2), val("", "b", 1), true)
	f(tomb("", 1), val("", "b", 1), true)
	f(val("", "b", 1), val("", "a", 1), true)
	f(val("", "a", 1), Record{}, true)
	f(Record{}, val("", "a", 1), false)
}

// BenchmarkCheckHotKey checks a history of 50,000 writes and 50,000 reads of one key
// (a soak's hot key): each read is matched to its write by value, not against every
// operation on the key.
func BenchmarkCheckHotKey(b *testing.B) {
	const n = 50_000
	ops := make([]Op, 0, 2*n)
	for i := range n {
		v := fmt.Sprintf("w%d", i)
		ops = append(ops, write(v, 2*i, 2*i+1, 200, int64(i+1)), read(v, 2*i+1, 2*i+2, 200, int64(i+1)))
	}
	finals := map[string][]Record{"k": {val("n1", fmt.Sprintf("w%d", n-1), n)}}
	b.ReportAllocs()
	for b.Loop() {
		if v := Check(ops, finals, CheckOptions{Acks: "quorum"}); len(v) != 0 {
			b.Fatalf("violations: %v", v[0])
		}
	}
}
