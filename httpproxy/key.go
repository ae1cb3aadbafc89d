package httpproxy

import "errors"

var errBadEscape = errors.New("bad percent-encoding in key")

// decodeKey appends the percent-decoding of the raw path segment s to dst.
// '+' is kept as is: this is a path, not a form.
func decodeKey(dst, s []byte) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(s) {
			return dst, errBadEscape
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return dst, errBadEscape
		}
		dst = append(dst, hi<<4|lo)
		i += 2
	}
	return dst, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// AppendEscapedKey appends key percent-encoded for use as a path segment
// after /values/ — what a client (tako-bench, tests) puts in a URL.
func AppendEscapedKey(dst, key []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range key {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}
