package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// pattern is one of the pre-tokenizer regexes this package recognises. Each
// is matched by a hand-written scanner that returns what the regex's
// leftmost-first match at the start of the text would be: the package doc
// says why there is no regex engine.
type pattern uint8

const (
	// patLlama3 is Llama 3's (and OpenAI cl100k's) Split pattern: digits
	// in runs of up to three.
	patLlama3 pattern = iota + 1
	// patQwen2 is Qwen2's and Qwen3's Split pattern: Llama 3's with one
	// digit per piece.
	patQwen2
	// patGPT2 is the ByteLevel pre-tokenizer's own pattern (use_regex).
	patGPT2
)

// The patterns exactly as tokenizer.json spells them.
const (
	regexLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// knownPatterns maps a Split regex to its scanner.
var knownPatterns = map[string]pattern{
	regexLlama3: patLlama3,
	regexQwen2:  patQwen2,
	regexGPT2:   patGPT2,
}

// split calls emit with each piece of s, in order: the matches of the
// pattern, which cover s (every character matches some alternative).
func (p pattern) split(s string, emit func(string)) {
	for len(s) > 0 {
		var n int
		if p == patGPT2 {
			n = matchGPT2(s)
		} else {
			n = matchLlama3(s, p == patLlama3)
		}
		emit(s[:n])
		s = s[n:]
	}
}

// Character classes of the patterns: \p{L}, \p{N}, \s split into the line
// breaks [\r\n] and the rest, and everything else.
const (
	clOther uint8 = iota
	clLetter
	clNumber
	clSpace
	clNewline
)

// asciiClass is class for the ASCII range.
var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for r := range rune(utf8.RuneSelf) {
		t[r] = classSlow(r)
	}
	return t
}()

// classSlow classes r with the unicode tables. \s is Unicode White_Space,
// as in Oniguruma (and unicode.IsSpace); \p{L} and \p{N} are the general
// categories.
func classSlow(r rune) uint8 {
	switch {
	case r == '\r' || r == '\n':
		return clNewline
	case unicode.IsLetter(r):
		return clLetter
	case unicode.IsNumber(r):
		return clNumber
	case unicode.IsSpace(r):
		return clSpace
	}
	return clOther
}

// class returns r's character class.
func class(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	return classSlow(r)
}

// runeAt decodes the rune starting at s[i]; s is valid UTF-8.
func runeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// classAt returns the class and byte length of the rune at s[i].
func classAt(s string, i int) (uint8, int) {
	r, n := runeAt(s, i)
	return class(r), n
}

// spanClass returns the end of the run of runes of class c that starts at
// s[i].
func spanClass(s string, i int, c uint8) int {
	for i < len(s) {
		ci, n := classAt(s, i)
		if ci != c {
			break
		}
		i += n
	}
	return i
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at the start of s (which
// starts with an apostrophe) and returns its length, or 0. foldCase makes
// it (?i:...): Oniguruma folds case by Unicode case folding, under which
// ſ (U+017F) is an s.
func contraction(s string, foldCase bool) int {
	if len(s) < 2 {
		return 0
	}
	is := func(i int, lower byte) bool {
		if i >= len(s) {
			return false
		}
		c := s[i]
		if foldCase && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		return c == lower
	}
	switch {
	case is(1, 's') || is(1, 't') || is(1, 'm') || is(1, 'd'):
		return 2
	case is(1, 'r') && is(2, 'e'), is(1, 'v') && is(2, 'e'), is(1, 'l') && is(2, 'l'):
		return 3
	case foldCase && len(s) >= 3 && s[1:3] == "ſ":
		return 3
	}
	return 0
}

// matchLlama3 returns the length of the match of regexLlama3 (llama3) or
// regexQwen2 at the start of s, which is not empty. The cases follow the
// alternatives in order.
func matchLlama3(s string, llama3 bool) int {
	r0, n0 := runeAt(s, 0)
	c0 := class(r0)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r0 == '\'' {
		if n := contraction(s, true); n > 0 {
			return n
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c0 == clLetter {
		return spanClass(s, n0, clLetter)
	}
	if c0 != clNumber && c0 != clNewline && n0 < len(s) {
		if c1, n1 := classAt(s, n0); c1 == clLetter {
			return spanClass(s, n0+n1, clLetter)
		}
	}
	// \p{N}{1,3} or \p{N}
	if c0 == clNumber {
		if !llama3 {
			return n0
		}
		i := n0
		for k := 1; k < 3 && i < len(s); k++ {
			c, n := classAt(s, i)
			if c != clNumber {
				break
			}
			i += n
		}
		return i
	}
	// ' '?[^\s\p{L}\p{N}]+[\r\n]*
	start := -1
	if c0 == clOther {
		start = 0
	} else if r0 == ' ' && n0 < len(s) {
		if c1, _ := classAt(s, n0); c1 == clOther {
			start = n0
		}
	}
	if start >= 0 {
		i := spanClass(s, start, clOther)
		for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
			i++
		}
		return i
	}
	// s starts with white space: find the run, its last line break and the
	// start of its last rune.
	end, lastBreak, lastRune, runes := 0, -1, 0, 0
	for end < len(s) {
		c, n := classAt(s, end)
		if c != clSpace && c != clNewline {
			break
		}
		if c == clNewline {
			lastBreak = end
		}
		lastRune = end
		end += n
		runes++
	}
	// \s*[\r\n]+: \s* backs off to the run's last line break.
	if lastBreak >= 0 {
		return lastBreak + 1
	}
	return whitespaceTail(s, end, lastRune, runes)
}

// whitespaceTail matches \s+(?!\S)|\s+ given the white-space run s[:end]
// of runes runes, the last starting at lastRune: the whole run at the end of
// the text, else all but its last rune, else (a single rune) that rune.
func whitespaceTail(s string, end, lastRune, runes int) int {
	if end == len(s) || runes == 1 {
		return end
	}
	return lastRune
}

// matchGPT2 returns the length of the match of regexGPT2 at the start of s,
// which is not empty.
func matchGPT2(s string) int {
	r0, n0 := runeAt(s, 0)
	c0 := class(r0)
	// 's|'t|'re|'ve|'m|'ll|'d
	if r0 == '\'' {
		if n := contraction(s, false); n > 0 {
			return n
		}
	}
	// ' '?\p{L}+ | ' '?\p{N}+ | ' '?[^\s\p{L}\p{N}]+
	if r0 == ' ' && n0 < len(s) {
		if c1, n1 := classAt(s, n0); c1 == clLetter || c1 == clNumber || c1 == clOther {
			return spanClass(s, n0+n1, c1)
		}
	}
	if c0 == clLetter || c0 == clNumber || c0 == clOther {
		return spanClass(s, n0, c0)
	}
	// \s+(?!\S)|\s+
	end, lastRune, runes := 0, 0, 0
	for end < len(s) {
		c, n := classAt(s, end)
		if c != clSpace && c != clNewline {
			break
		}
		lastRune = end
		end += n
		runes++
	}
	return whitespaceTail(s, end, lastRune, runes)
}
