package chaos

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Record is one replica's copy of a key as read over the peer protocol.
type Record struct {
	Node      string `json:"node"`
	Present   bool   `json:"present"` // false: nothing stored, not even a tombstone
	TS        int64  `json:"ts,omitempty"`
	Tombstone bool   `json:"tombstone,omitempty"`
	Value     string `json:"value,omitempty"`
	Err       string `json:"err,omitempty"` // the replica could not be read
}

// same reports identical records (absent on both counts as identical).
func (r Record) same(o Record) bool {
	return r.Err == "" && o.Err == "" && r.Present == o.Present && r.TS == o.TS && r.Tombstone == o.Tombstone && r.Value == o.Value
}

// newer orders records as the store's last-write-wins does: timestamp, then a tombstone over
// a value, then the greater bytes.
func (r Record) newer(o Record) bool {
	if r.Present != o.Present {
		return r.Present
	}
	if r.TS != o.TS {
		return r.TS > o.TS
	}
	if r.Tombstone != o.Tombstone {
		return r.Tombstone
	}
	return r.Value > o.Value
}

func (r Record) String() string {
	switch {
	case r.Err != "":
		return r.Node + ": unreadable: " + r.Err
	case !r.Present:
		return r.Node + ": absent"
	case r.Tombstone:
		return fmt.Sprintf("%s: tombstone@%d", r.Node, r.TS)
	}
	return fmt.Sprintf("%s: %q@%d", r.Node, r.Value, r.TS)
}

// Violation kinds.
const (
	KindUnreadable = "unreadable"    // a replica could not be read at the end
	KindDivergent  = "divergent"     // replicas hold different records
	KindLost       = "lost"          // an acknowledged write or delete is not in the final state
	KindUnknown    = "unknown-value" // a value or tombstone no operation that may have happened made
	KindStaleRead  = "stale-read"    // a read older than a write acknowledged before it began
	KindAssertion  = "assertion"     // a scenario's own expectation failed
)

// Violation is one thing the checker found wrong.
type Violation struct {
	Kind   string `json:"kind"`
	Key    string `json:"key,omitempty"`
	Detail string `json:"detail"`
	// Write is, for a stale read, the acknowledged write whose timestamp the read is below.
	Write *Op `json:"write,omitempty"`
}

func (v Violation) String() string {
	if v.Key == "" {
		return v.Kind + ": " + v.Detail
	}
	return fmt.Sprintf("%s %q: %s", v.Kind, v.Key, v.Detail)
}

// CheckOptions describe the deployment a history ran on.
type CheckOptions struct {
	// Acks is the deployment's write_acks, for operations sent without X-Write-Acks: only
	// writes acknowledged at quorum or all bind later reads.
	Acks string
	// Purged says that tombstones may have been garbage-collected (a short tombstone_grace):
	// a key absent everywhere, or a 404 without X-Timestamp, may then be a purged delete.
	Purged bool
}

// Check judges a history against each key's final records (finals[key] holds one Record per
// replica). Pure.
func Check(ops []Op, finals map[string][]Record, o CheckOptions) []Violation {
	byKey := map[string][]Op{}
	for _, op := range ops {
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Violation
	for _, k := range keys {
		out = append(out, checkKey(k, byKey[k], finals[k], o)...)
	}
	return out
}

func checkKey(key string, ops []Op, recs []Record, o CheckOptions) []Violation {
	var out []Violation
	final, ok := finalRecord(key, recs, &out)
	if ts := purgedTS(ops, time.Time{}); ok && !final.Present && o.Purged && ts > 0 {
		final = Record{Node: "(purged)", Present: true, Tombstone: true, TS: ts}
	}
	if ok {
		out = append(out, checkDurable(key, ops, final)...)
	}
	return append(out, checkReads(key, ops, o)...)
}

// purgedTS is the newest timestamp a purged tombstone can have had: that of the newest delete
// that may have happened (begun before until, if set), 0 if none. A delete whose timestamp is
// unknown may be newer than anything: then any absence is explained.
func purgedTS(ops []Op, until time.Time) int64 {
	var ts int64
	for i := range ops {
		o := &ops[i]
		if o.Kind != OpDelete || !o.MayHaveHappened() || (!until.IsZero() && !o.Start.Before(until)) {
			continue
		}
		own, known := o.ownTS()
		if !known {
			return math.MaxInt64
		}
		ts = max(ts, own)
	}
	return ts
}

// finalRecord returns the newest of the replicas' records, reporting unreadable replicas and
// divergence; ok is false when no replica could be read.
func finalRecord(key string, recs []Record, out *[]Violation) (final Record, ok bool) {
	var read []Record
	for _, r := range recs {
		if r.Err != "" {
			*out = append(*out, Violation{Kind: KindUnreadable, Key: key, Detail: r.String()})
			continue
		}
		read = append(read, r)
	}
	if len(read) == 0 {
		return Record{}, false
	}
	final = read[0]
	for _, r := range read[1:] {
		if r.newer(final) {
			final = r
		}
	}
	for _, r := range read {
		if !r.same(final) {
			*out = append(*out, Violation{Kind: KindDivergent, Key: key, Detail: fmt.Sprintf("%v", recs)})
			break
		}
	}
	return final, true
}

// checkDurable finds acknowledged operations the final record does not account for, and a
// final value that no write sent.
func checkDurable(key string, ops []Op, final Record) []Violation {
	var out []Violation
	T := final.TS
	if !final.Present {
		T = 0
	}
	for i := range ops {
		op := &ops[i]
		if !op.Acked() || op.TS == 0 {
			continue
		}
		switch {
		case op.TS > T:
			out = append(out, Violation{Kind: KindLost, Key: key, Detail: fmt.Sprintf("%s acknowledged at ts %d, final record %v", opString(op), op.TS, final)})
		case op.TS == T && op.Applied != "no" && !op.produced(final) && !tied(ops, op, final):
			out = append(out, Violation{Kind: KindLost, Key: key, Detail: fmt.Sprintf("%s acknowledged at ts %d, final record at that ts is another: %v", opString(op), op.TS, final)})
		}
	}
	if final.Present && !slices.ContainsFunc(ops, func(o Op) bool { return o.made(final) }) {
		out = append(out, Violation{Kind: KindUnknown, Key: key, Detail: "final record " + final.String() + " is no operation's that may have happened"})
	}
	return out
}

// produced reports whether r holds what op would have stored (timestamps aside).
func (o *Op) produced(r Record) bool {
	if !r.Present {
		return false
	}
	if o.Kind == OpDelete {
		return r.Tombstone
	}
	return !r.Tombstone && r.Value == o.Value
}

// ownTS returns the timestamp op's record was stored with, when the reply says so: an
// applied 200 carries its own, a write that lost carries the winner's and others none.
func (o *Op) ownTS() (int64, bool) {
	return o.TS, o.Status == 200 && o.Applied != "no" && o.TS != 0
}

// made reports whether r may be op's record: op may have happened, r holds what it would
// have stored, and r's timestamp is op's own when that is known.
func (o *Op) made(r Record) bool {
	ts, known := o.ownTS()
	return o.MayHaveHappened() && o.produced(r) && (!known || ts == r.TS)
}

// tied reports whether an operation other than op made final: a tie on final's timestamp
// that last-write-wins broke against op.
func tied(ops []Op, op *Op, final Record) bool {
	for i := range ops {
		if o := &ops[i]; o != op && o.made(final) {
			return true
		}
	}
	return false
}

// checkReads finds reads that returned an older timestamp than a write or delete
// acknowledged at quorum or all before the read began. Reads served without a read quorum
// (X-Read-Quorum: no) and writes acknowledged by one replica promise nothing.
func checkReads(key string, ops []Op, opts CheckOptions) []Violation {
	var acked []*Op
	for i := range ops {
		o := &ops[i]
		acks := cmp.Or(o.Acks, opts.Acks)
		if o.Acked() && (acks == "quorum" || acks == "all") {
			acked = append(acked, o)
		}
	}
	slices.SortFunc(acked, func(a, b *Op) int { return a.End.Compare(b.End) })
	best := make([]*Op, len(acked)) // best[i]: highest ts among acked[:i+1]
	for i, o := range acked {
		best[i] = o
		if i > 0 && best[i-1].TS > o.TS {
			best[i] = best[i-1]
		}
	}
	// A read's value can only be a write's of that value (values are unique per write, and
	// a value is no delete's): index the writes by value, so that each read looks at its
	// own write, not at every operation on the key.
	writes := make(map[string][]*Op)
	for i := range ops {
		if o := &ops[i]; o.Kind == OpWrite {
			writes[o.Value] = append(writes[o.Value], o)
		}
	}
	var out []Violation
	for i := range ops {
		r := &ops[i]
		if r.Kind != OpRead {
			continue
		}
		if rec := (Record{Present: true, TS: r.TS, Value: r.Value}); r.Status == 200 && !slices.ContainsFunc(writes[r.Value], func(o *Op) bool { return o.made(rec) }) {
			out = append(out, Violation{Kind: KindUnknown, Key: key, Detail: fmt.Sprintf("%s returned %q at ts %d: no write that may have happened made it", opString(r), r.Value, r.TS)})
		}
		if (r.Status != 200 && r.Status != 404) || r.ReadQuorum == "no" {
			continue
		}
		ts := r.TS
		if r.Status == 404 && ts == 0 && opts.Purged {
			ts = purgedTS(ops, r.End)
		}
		n := sort.Search(len(acked), func(j int) bool { return !acked[j].End.Before(r.Start) })
		if n > 0 && best[n-1].TS > ts {
			w := best[n-1]
			out = append(out, Violation{Kind: KindStaleRead, Key: key, Write: w,
				Detail: fmt.Sprintf("%s returned ts %d after %s ended with ts %d", opString(r), r.TS, opString(w), w.TS)})
		}
	}
	return out
}

func opString(o *Op) string {
	s := fmt.Sprintf("%s by client %d via %s [%s..%s] status %d", o.Kind, o.Client, o.Entry,
		o.Start.Format("15:04:05.000000"), o.End.Format("15:04:05.000000"), o.Status)
	if o.Value != "" {
		s += fmt.Sprintf(" value %q", o.Value)
	}
	if o.Applied != "" {
		s += " applied " + o.Applied
	}
	return s
}
