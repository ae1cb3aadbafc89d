package kv

import "testing"

// TestTakeGroup: an async group takes what has queued up, stopping before a
// write whose stripe it holds already or that would take its keys and
// payloads past the byte bound (Pebble panics on a 4 GiB batch, and a few
// values of the largest size allowed reach that), and at a closed queue.
func TestTakeGroup(t *testing.T) {
	w := func(stripe uint32, payload int) *write {
		return &write{key: []byte("k"), payload: make([]byte, payload), stripe: stripe}
	}
	for _, tc := range []struct {
		name      string
		first     *write
		queued    []*write
		close     bool
		maxBytes  int
		wantGroup int
		wantCarry bool
	}{
		{"everything queued", w(0, 10), []*write{w(1, 10), w(2, 10)}, false, 1000, 3, false},
		{"stops at a taken stripe", w(0, 10), []*write{w(1, 10), w(0, 10), w(2, 10)}, false, 1000, 2, true},
		{"stops before the byte bound", w(0, 300), []*write{w(1, 300), w(2, 300), w(3, 300)}, false, 1000, 3, true},
		{"fills up to the bound exactly", w(0, 498), []*write{w(1, 498), w(2, 1)}, false, 1000, 2, true},
		{"a first write over the bound goes alone", w(0, 5000), []*write{w(1, 1)}, false, 1000, 1, true},
		{"ends at a closed queue", w(0, 10), []*write{w(1, 10)}, true, 1000, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{async: make(chan *write, len(tc.queued))}
			for _, q := range tc.queued {
				s.async <- q
			}
			if tc.close {
				close(s.async)
			}
			var taken [stripes]bool
			group, carry := s.takeGroup(tc.first, &taken, tc.maxBytes)
			if len(group) != tc.wantGroup || (carry != nil) != tc.wantCarry {
				t.Fatalf("group of %d, carry %v; want %d, carry %v", len(group), carry != nil, tc.wantGroup, tc.wantCarry)
			}
			size := 0
			for _, g := range group {
				size += g.size()
				if !taken[g.stripe] {
					t.Errorf("stripe %d of the group is not marked taken", g.stripe)
				}
			}
			if len(group) > 1 && size > tc.maxBytes {
				t.Errorf("group holds %d bytes, over the bound %d", size, tc.maxBytes)
			}
			if carry != nil && carry != tc.queued[len(group)-1] {
				t.Error("carry is not the write after the group")
			}
		})
	}
}
