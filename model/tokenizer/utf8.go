package tokenizer

import "unicode/utf8"

// replacement is U+FFFD in UTF-8.
const replacement = "\uFFFD"

// invalidPrefix looks at the start of b, which does not start with a valid
// UTF-8 character, and returns the length of its maximal subpart (the
// longest prefix that could start a valid character: at least one byte),
// and whether that subpart ran into the end of b — so that more bytes might
// still complete it. This is Unicode's "maximal subpart" practice, which
// Rust's String::from_utf8_lossy and Python's "replace" error handler follow.
func invalidPrefix(b []byte) (n int, atEnd bool) {
	c := b[0]
	var width int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		width = 2
	case c == 0xE0:
		width, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		width = 3
	case c == 0xED:
		width, hi = 3, 0x9F
	case c == 0xF0:
		width, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		width = 4
	case c == 0xF4:
		width, hi = 4, 0x8F
	default:
		return 1, false
	}
	for i := 1; i < width; i++ {
		if i >= len(b) {
			return i, true
		}
		if b[i] < lo || b[i] > hi {
			return i, false
		}
		lo, hi = 0x80, 0xBF
	}
	// A complete valid character: not called for those.
	return width, false
}

// appendValid appends b to dst as valid UTF-8, each maximal invalid
// subpart replaced by one U+FFFD. With hold, an incomplete character at the
// end of b is not appended; appendValid returns how many bytes of b it
// consumed.
func appendValid(dst, b []byte, hold bool) ([]byte, int) {
	i := 0
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			dst = append(dst, b[i])
			i++
			continue
		}
		if r, n := utf8.DecodeRune(b[i:]); r != utf8.RuneError || n > 1 {
			dst = append(dst, b[i:i+n]...)
			i += n
			continue
		}
		n, atEnd := invalidPrefix(b[i:])
		if hold && atEnd {
			break
		}
		dst = append(dst, replacement...)
		i += n
	}
	return dst, i
}

// validString returns s with each maximal invalid UTF-8 subpart replaced by
// U+FFFD; s itself when it is valid.
func validString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out, _ := appendValid(make([]byte, 0, len(s)+8), []byte(s), false)
	return string(out)
}
