package tokenizer_test

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

// FuzzEncode encodes any text with both fixtures: every id is a token, a
// Decoder agrees with Decode, and without a normalizer or added tokens in
// the way decoding gives the text back (after GPT-2's prefix space).
func FuzzEncode(f *testing.F) {
	for _, s := range corpusTexts(f) {
		f.Add(s)
	}
	f.Add("\xF0\x9F\x98 bad \xC0 utf-8 \xED\xA0\x80")
	tiny, gpt2 := load(f, "tiny"), load(f, "tinygpt2")
	f.Fuzz(func(t *testing.T, s string) {
		for _, tk := range []*tokenizer.Tokenizer{tiny, gpt2} {
			for _, special := range []bool{false, true} {
				ids := tk.Encode(s, special)
				want, err := tk.Decode(ids, false)
				if err != nil {
					t.Fatalf("Decode(Encode(%q)): %v", s, err)
				}
				if got, _, err := stream(tk, ids, false); err != nil || got != want {
					t.Fatalf("Decoder(Encode(%q)): got %q, %v; want %q", s, got, err, want)
				}
			}
		}
		if strings.Contains(s, "<|") {
			return
		}
		want := validUTF8(s)
		if !strings.HasPrefix(want, " ") && want != "" {
			want = " " + want
		}
		if got, _ := gpt2.Decode(gpt2.Encode(s, false), false); got != want {
			t.Fatalf("Decode(Encode(%q)): got %q; want %q", s, got, want)
		}
	})
}

// validUTF8 replaces each maximal invalid subsequence of s by U+FFFD,
// decoding rune by rune as the Unicode standard (§3.9) describes.
func validUTF8(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r != utf8.RuneError || n > 1 {
			b.WriteString(s[:n])
			s = s[n:]
			continue
		}
		// The longest prefix of s (at most 3 bytes) that is the start of a
		// valid character is one U+FFFD.
		k := 1
		for k < 4 && k < len(s) && startsValid(s[:k+1]) {
			k++
		}
		b.WriteRune(utf8.RuneError)
		s = s[k:]
	}
	return b.String()
}

// startsValid reports whether p, of two bytes or more, can be completed
// to a valid character: its first two bytes are what decide, and 0x80 may
// always follow.
func startsValid(p string) bool {
	for w := len(p); w <= utf8.UTFMax; w++ {
		if _, n := utf8.DecodeRuneInString(p + strings.Repeat("\x80", w-len(p))); n == w {
			return true
		}
	}
	return false
}

// FuzzDecoder decodes arbitrary ids with a Decoder, one at a time: no piece
// holds half a character and the pieces make what Decode returns.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0xF0, 0x9F, 0x98, 0x80, 'a', 0xE4, 0xBD}, false)
	f.Add([]byte{255, 254, 1, 2, 3}, true)
	tk := load(f, "tiny")
	f.Fuzz(func(t *testing.T, b []byte, skip bool) {
		ids := make([]int, len(b))
		for i, c := range b {
			ids[i] = (int(c) * 7) % tk.VocabSize() // reach the merged and added tokens too
		}
		want, err := tk.Decode(ids, skip)
		if err != nil {
			t.Fatal(err)
		}
		if got, _, err := stream(tk, ids, skip); err != nil || got != want {
			t.Fatalf("Decoder(%v): got %q, %v; want %q", ids, got, err, want)
		}
	})
}

// FuzzParse reads any tokenizer.json without panicking.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/tiny/tokenizer.json", "testdata/tinygpt2/tokenizer.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := tokenizer.Parse(b)
		if err != nil {
			return
		}
		if _, err := tk.Decode(tk.Encode("Hello, wörld 😀 <|bos|>", true), false); err != nil {
			t.Fatal(err)
		}
	})
}
