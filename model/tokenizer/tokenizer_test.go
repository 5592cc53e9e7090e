package tokenizer_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

// tokens spells ids as the vocabulary does.
func tokens(tb testing.TB, tk *tokenizer.Tokenizer, ids []int) []string {
	tb.Helper()
	out := make([]string, len(ids))
	for i, id := range ids {
		s, ok := tk.Token(id)
		if !ok {
			tb.Fatalf("id %d is not a token", id)
		}
		out[i] = s
	}
	return out
}

func TestEncodeTiny(t *testing.T) {
	// The expected tokens follow from the fixture's merges (by rank:
	// Ġ t, h e, Ġt he, i n, in g, Ġ a, a n, an d, Ġ and, Ġ Ġ, ĠĠ ĠĠ, b c,
	// a bc, a b, c a, ...) and its added tokens; see testdata/tiny.
	tk := load(t, "tiny")
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"the", []string{"t", "he"}}, // "Ġt he" needs the space
		{" the", []string{"Ġthe"}},   // Ġ t (0), h e (1), then Ġt he (2)
		{"abc", []string{"abc"}},     // b c (11) before a b (13), then a bc (12)
		{"ab", []string{"ab"}},       //
		{"aaa", []string{"aa", "a"}}, // equal ranks: leftmost first
		{"sing ", []string{"s", "ing", "Ġ"}},
		{"     x", []string{"ĠĠĠĠ", "Ġ", "x"}}, // the pre-tokenizer keeps the last space with x
		{" xyz", []string{"Ġ", "x", "y", "z"}}, // in the vocabulary, but no merges lead there
		{"café", []string{"caf" + "Ã©"}},
		{"cafe\u0301", []string{"caf" + "Ã©"}}, // NFC first
		{"你", []string{"ä½ł"}},                 // one CJK character, three bytes
		{"\t x", []string{"ĉ", "Ġ", "x"}},      // the merge "ĉ Ġ" never applies: "\t" is split from " x"
		{"band", []string{"b", "and"}},         // "and" is an added token, found inside words
		{"<|bos|>x<|eos|>", []string{"<|bos|>", "x", "<|eos|>"}},
		{"<|bos|><|user|>", []string{"<|bos|><|user|>"}}, // leftmost-longest
		{"<|<|bos|>|>", []string{"<", "|", "<|bos|>", "|", ">"}},
		{"a <|user|>  b", []string{"a", "<|user|>", "b"}}, // lstrip and rstrip eat the spaces
		// single_word: the middle <sep> touches letters and is not one.
		{"<sep> x<sep>y <sep>", []string{"<sep>", "Ġ", "x", "<", "s", "e", "p", ">", "y", "Ġ", "<sep>"}},
		{"e\u0301x éx", []string{"éx", "Ġ", "éx"}}, // normalized added token, matched after NFC
	} {
		if got := tokens(t, tk, tk.Encode(tc.in, false)); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q): got %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestEncodeTinyGPT2(t *testing.T) {
	// ByteLevel alone: a space is put before the text, GPT-2's pattern
	// splits it, and ignore_merges takes a word in the vocabulary whole.
	tk := load(t, "tinygpt2")
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"the", []string{"Ġthe"}},
		{" the", []string{"Ġthe"}}, // a space already: none added
		{"xyz", []string{"Ġxyz"}},  // in the vocabulary, no merges lead there
		{"<|bos|>the<|eos|>the", []string{"<|bos|>", "Ġthe", "<|eos|>", "Ġthe"}},
		{"it's 12", []string{"Ġ", "i", "t", "'s", "Ġ", "12"}},
	} {
		if got := tokens(t, tk, tk.Encode(tc.in, true)); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q): got %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestSpecialTokens(t *testing.T) {
	tk := load(t, "tiny")
	bos, _ := tk.ID("<|bos|>")
	eos, _ := tk.ID("<|eos|>")
	user, _ := tk.ID("<|user|>")
	t1, _ := tk.ID("t")
	he, _ := tk.ID("he")
	if got, want := tk.Encode("the", true), []int{bos, t1, he, eos}; !slices.Equal(got, want) {
		t.Errorf("Encode(the, true): got %v; want %v", got, want)
	}
	if got, want := tk.Encode("", true), []int{bos, eos}; !slices.Equal(got, want) {
		t.Errorf("Encode(\"\", true): got %v; want %v", got, want)
	}
	if got := tk.Encode("", false); len(got) != 0 {
		t.Errorf("Encode(\"\", false): got %v; want none", got)
	}
	// From tokenizer_config.json and generation_config.json.
	if tk.BOS() != bos || tk.EOS() != eos || tk.Pad() != -1 {
		t.Errorf("BOS, EOS, Pad: got %d %d %d; want %d %d -1", tk.BOS(), tk.EOS(), tk.Pad(), bos, eos)
	}
	if got, want := tk.StopIDs(), []int{eos, user}; !slices.Equal(got, want) {
		t.Errorf("StopIDs: got %v; want %v", got, want)
	}
	if !tk.AddsBOS() || !tk.IsSpecial(bos) || tk.IsSpecial(he) {
		t.Errorf("AddsBOS %v, IsSpecial(bos) %v, IsSpecial(he) %v; want true, true, false",
			tk.AddsBOS(), tk.IsSpecial(bos), tk.IsSpecial(he))
	}
	if got, want := tk.VocabSize(), 295; got != want {
		t.Errorf("VocabSize: got %d; want %d", got, want)
	}
	// Parse alone knows no special tokens; the post-processor still adds them.
	g := load(t, "tinygpt2")
	if g.BOS() != -1 || g.EOS() != -1 || len(g.StopIDs()) != 0 || g.AddsBOS() {
		t.Errorf("tinygpt2: BOS %d EOS %d StopIDs %v AddsBOS %v; want -1 -1 [] false", g.BOS(), g.EOS(), g.StopIDs(), g.AddsBOS())
	}
}

func TestDecode(t *testing.T) {
	tk := load(t, "tiny")
	id := func(tok string) int {
		id, ok := tk.ID(tok)
		if !ok {
			t.Fatalf("no token %q", tok)
		}
		return id
	}
	emoji := tk.Encode("😀", false) // four byte tokens
	if len(emoji) != 4 {
		t.Fatalf("😀: got %d tokens; want 4", len(emoji))
	}
	for _, tc := range []struct {
		ids       []int
		want      string
		wantSkip  string
		describes string
	}{
		{[]int{id("<|bos|>"), id("Ġthe"), id("<|eos|>")}, "<|bos|> the<|eos|>", " the", "specials skipped"},
		{[]int{id("e\u0301x")}, "\uFFFDx", "\uFFFDx", "a normalized added token decodes through ByteLevel: é is the byte 0xE9"},
		{emoji, "😀", "😀", "bytes of one character"},
		{emoji[:2], "\uFFFD", "\uFFFD", "an incomplete character is one U+FFFD"},
		{append(emoji[:2:2], id("x")), "\uFFFDx", "\uFFFDx", "then a valid byte"},
		{[]int{emoji[1], emoji[2]}, "\uFFFD\uFFFD", "\uFFFD\uFFFD", "lone continuation bytes: one U+FFFD each"},
		{nil, "", "", "nothing"},
	} {
		got, err := tk.Decode(tc.ids, false)
		if err != nil || got != tc.want {
			t.Errorf("%s: Decode(%v): got %q, %v; want %q", tc.describes, tc.ids, got, err, tc.want)
		}
		got, err = tk.Decode(tc.ids, true)
		if err != nil || got != tc.wantSkip {
			t.Errorf("%s: Decode(%v, skip): got %q, %v; want %q", tc.describes, tc.ids, got, err, tc.wantSkip)
		}
	}
	for _, bad := range []int{-1, tk.VocabSize(), 1 << 40} {
		_, err := tk.Decode([]int{id("x"), bad}, false)
		if !errors.Is(err, tokenizer.ErrUnknownID) || !strings.Contains(err.Error(), strconv.Itoa(bad)) {
			t.Errorf("Decode(%d): got %v; want ErrUnknownID naming the id", bad, err)
		}
	}
}

func TestEncodeInvalidUTF8(t *testing.T) {
	// Each maximal invalid subsequence becomes one U+FFFD (the example of
	// the Unicode standard, §3.9), then the text is encoded.
	tk := load(t, "tinygpt2")
	in := "a\xF1\x80\x80\xE1\x80\xC2b\x80c\x80\xBFd\xF0\x9F"
	want := "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd\uFFFD"
	if got, w := tk.Encode(in, false), tk.Encode(want, false); !slices.Equal(got, w) {
		t.Errorf("Encode(%q): got %v; want %v, the ids of %q", in, got, w, want)
	}
}

func TestRoundTrip(t *testing.T) {
	// Without a normalizer or text-like added tokens, decoding gives the
	// text back.
	tk := load(t, "tinygpt2")
	for _, text := range corpusTexts(t) {
		text = strings.ReplaceAll(strings.ReplaceAll(text, "<|bos|>", ""), "<|eos|>", "")
		ids := tk.Encode(text, false)
		got, err := tk.Decode(ids, false)
		if err != nil {
			t.Fatal(err)
		}
		// The prefix space is the tokenizer's own.
		if want := " " + text; !strings.HasPrefix(text, " ") && got != want || strings.HasPrefix(text, " ") && got != text {
			t.Errorf("Decode(Encode(%q)): got %q", text, got)
		}
	}
}
