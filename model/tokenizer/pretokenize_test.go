package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

func pieces(p pattern, s string) []string {
	var out []string
	p.split(s, func(w string) { out = append(out, w) })
	return out
}

func TestSplitPatterns(t *testing.T) {
	// Expected pieces worked out from the regexes' alternatives, in order.
	for _, tc := range []struct {
		pat  pattern
		in   string
		want []string
	}{
		{patLlama3, "Hello world", []string{"Hello", " world"}},
		{patLlama3, "it's IT'S We'Re 'sup", []string{"it", "'s", " IT", "'S", " We", "'Re", " '", "sup"}},
		{patLlama3, "'ſ x", []string{"'ſ", " x"}},
		{patLlama3, "'hello", []string{"'hello"}},
		{patLlama3, "12345 7", []string{"123", "45", " ", "7"}},
		{patQwen2, "12345 7", []string{"1", "2", "3", "4", "5", " ", "7"}},
		{patLlama3, "a  b", []string{"a", " ", " b"}},
		{patLlama3, "a   ", []string{"a", "   "}},
		{patLlama3, "x\t(y", []string{"x", "\t", "(y"}},
		{patLlama3, "x ((y", []string{"x", " ((", "y"}},
		{patLlama3, "x;\n\ny", []string{"x", ";\n\n", "y"}},
		{patLlama3, "x  \n  y", []string{"x", "  \n", " ", " y"}},
		{patLlama3, "x \r\n\r\n y", []string{"x", " \r\n\r\n", " y"}},
		{patLlama3, "\n\nabc", []string{"\n\n", "abc"}},
		{patLlama3, "\tabc", []string{"\tabc"}},
		{patLlama3, "\t 1", []string{"\t", " ", "1"}},
		{patLlama3, "a\u00a0b", []string{"a", "\u00a0b"}},
		{patLlama3, "a\u2028b", []string{"a", "\u2028b"}},
		{patLlama3, "e\u0301t\u0301", []string{"e", "\u0301t", "\u0301"}},
		{patLlama3, "你好，世界！", []string{"你好", "，世界", "！"}},
		{patLlama3, "x².½", []string{"x", "²", ".", "½"}},
		{patGPT2, "Hello world", []string{"Hello", " world"}},
		{patGPT2, "it's IT'S", []string{"it", "'s", " IT", "'", "S"}},
		{patGPT2, "12345 67 ab1", []string{"12345", " 67", " ab", "1"}},
		{patGPT2, "a  b\n\nc ", []string{"a", " ", " b", "\n", "\n", "c", " "}},
		{patGPT2, "x ((y", []string{"x", " ((", "y"}},
		{patGPT2, "x\t(y", []string{"x", "\t", "(", "y"}},
	} {
		if got := pieces(tc.pat, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("pattern %d, %q: got %q; want %q", tc.pat, tc.in, got, tc.want)
		}
	}
}

// oracle returns the pieces regexp2, a backtracking engine with look-ahead,
// cuts s into with the pattern's regex.
func oracle(tb testing.TB, re *regexp2.Regexp, s string) []string {
	var out []string
	m, err := re.FindStringMatch(s)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		out = append(out, m.String())
	}
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

var patternRegex = map[pattern]string{patLlama3: regexLlama3, patQwen2: regexQwen2, patGPT2: regexGPT2}

// FuzzSplitPatterns checks the scanners against regexp2 running the
// patterns themselves. regexp2 folds case as .NET does, which differs from
// Oniguruma on ſ (see the package doc): inputs with it are skipped.
func FuzzSplitPatterns(f *testing.F) {
	for _, s := range []string{"Hello world", "it's 'S 12345", "a \t\n\r\n  b", "x;\n\ny", "\u00a0\u2028\u3000 z",
		"e\u0301 你好 😀", "'ll'LL'd'D'm'M", "  (", "\t1", "a\u0085b"} {
		f.Add(s)
	}
	res := map[pattern]*regexp2.Regexp{}
	for p, src := range patternRegex {
		res[p] = regexp2.MustCompile(src, regexp2.None)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Long inputs are skipped: regexp2 backtracks quadratically.
		if len(s) > 512 || !utf8.ValidString(s) || strings.ContainsRune(s, 'ſ') {
			t.Skip()
		}
		for p, re := range res {
			want := oracle(t, re, s)
			if got := pieces(p, s); !slices.Equal(got, want) {
				t.Fatalf("pattern %d, %q: got %q; regexp2 %q", p, s, got, want)
			}
		}
	})
}

// BenchmarkPreTokenize compares the scanner with regexp2 running the same
// pattern, on a large Go file.
func BenchmarkPreTokenize(b *testing.B) {
	text := strings.Repeat("func (q *Queue[T]) Push(ctx context.Context, v T) error {\n\tif len(q.items) >= 65536 {\n\t\treturn ErrFull // it's full\n\t}\n", 500)
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for range b.N {
			patLlama3.split(text, func(string) {})
		}
	})
	b.Run("regexp2", func(b *testing.B) {
		re := regexp2.MustCompile(regexLlama3, regexp2.None)
		b.SetBytes(int64(len(text)))
		for range b.N {
			oracle(b, re, text)
		}
	})
}
