package codec

import (
	"encoding/binary"
	"fmt"
)

// body walks a frame body field by field. The first field that does not fit sets bad and
// records its name; later reads return zero values, so decoders check once at the end.
// All methods are small enough to inline: decoding does not allocate unless it fails.
type body struct {
	b   []byte
	bad string // name of the first bad field
	why string // what is wrong with it
	op  Op
}

const (
	whyShort = "does not fit the body"
	whyRange = "length is outside 1..MaxKeyLen"
)

func (r *body) fail(field, why string) {
	if r.bad == "" {
		r.bad, r.why = field, why
	}
	r.b = nil
}

func (r *body) u8(field string) uint8 {
	if len(r.b) < 1 {
		r.fail(field, whyShort)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *body) u16(field string) uint16 {
	if len(r.b) < 2 {
		r.fail(field, whyShort)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *body) u32(field string) uint32 {
	if len(r.b) < 4 {
		r.fail(field, whyShort)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *body) u64(field string) uint64 {
	if len(r.b) < 8 {
		r.fail(field, whyShort)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// flags reads a flags byte in which only the known bits may be set.
func (r *body) flags(field string, known uint8) uint8 {
	v := r.u8(field)
	if v&^known != 0 {
		r.fail(field, "has unknown bits set")
		return 0
	}
	return v
}

// bytes returns the next n bytes with capacity clipped, so that appending to a decoded
// key can never overwrite the value that follows it in the read buffer.
func (r *body) bytes(n uint64, field string) []byte {
	if uint64(len(r.b)) < n {
		r.fail(field, whyShort)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *body) bytes16(field string) []byte { return r.bytes(uint64(r.u16(field)), field) }
func (r *body) bytes32(field string) []byte { return r.bytes(uint64(r.u32(field)), field) }

// key reads a u32-prefixed key of 1..MaxKeyLen bytes.
func (r *body) key(field string) []byte {
	n := r.u32(field)
	if n == 0 || n > MaxKeyLen {
		r.fail(field, whyRange)
		return nil
	}
	return r.bytes(uint64(n), field)
}

// rest returns everything left in the body.
func (r *body) rest() []byte {
	v := r.b[:len(r.b):len(r.b)]
	r.b = r.b[len(r.b):]
	return v
}

// done reports the first failure, or trailing bytes, as ErrCorrupt.
func (r *body) done() error {
	if r.bad != "" {
		return fmt.Errorf("%w: %s: %s %s", ErrCorrupt, r.op, r.bad, r.why)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %s: %d unexpected bytes after the last field", ErrCorrupt, r.op, len(r.b))
	}
	return nil
}
