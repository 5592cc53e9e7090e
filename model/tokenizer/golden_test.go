package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

// goldenFile holds what Hugging Face tokenizers gives for the corpus: see
// testdata/golden.py, which wrote it.
const goldenFile = "testdata/golden.json"

type golden struct {
	TokenizersVersion string   `json:"tokenizers_version"`
	Texts             []string `json:"texts"`
	Tokenizers        map[string]struct {
		Encode        [][]int   `json:"encode"`
		EncodeSpecial [][]int   `json:"encode_special"` // nil: as Encode
		Decode        []*string `json:"decode"`         // nil: the text
		DecodeSkip    []*string `json:"decode_skip"`    // nil: as Decode
	} `json:"tokenizers"`
	DecodeCases map[string][]struct {
		IDs  []int   `json:"ids"`
		Text string  `json:"text"`
		Skip *string `json:"skip"` // nil: as Text
	} `json:"decode_cases"`
}

func readGolden(t *testing.T) *golden {
	t.Helper()
	b, err := os.ReadFile(goldenFile)
	if os.IsNotExist(err) {
		t.Skipf("%s is absent: run testdata/golden.py (see its doc) on a host with Python tokenizers", goldenFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Texts, corpusTexts(t)) {
		t.Fatalf("%s was made from another corpus: run testdata/golden.py again", goldenFile)
	}
	return &g
}

// loadGolden returns the tokenizer golden.py calls name: llama31 is
// llama3's file with Llama 3.1's post-processor, which adds a BOS.
func loadGolden(t *testing.T, name string) *tokenizer.Tokenizer {
	if name != "llama31" {
		return load(t, name)
	}
	load(t, "llama3") // skips if absent
	if tk, ok := loaded.Load(name); ok {
		return tk.(*tokenizer.Tokenizer)
	}
	var file map[string]json.RawMessage
	b, err := os.ReadFile(filepath.Join(dirOf("llama3"), tokenizer.TokenizerFile))
	if err == nil {
		err = json.Unmarshal(b, &file)
	}
	if err == nil {
		file["post_processor"], err = os.ReadFile("testdata/llama31_post_processor.json")
	}
	if err == nil {
		b, err = json.Marshal(file)
	}
	if err != nil {
		t.Fatal(err)
	}
	tk, err := tokenizer.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	loaded.Store(name, tk)
	return tk
}

// TestGolden checks, for every text of the corpus and every tokenizer, the
// ids of Encode with and without special tokens and the text of Decode
// (and of a Decoder fed one id at a time) against Hugging Face tokenizers;
// and decodes random id sequences made to cut characters.
func TestGolden(t *testing.T) {
	g := readGolden(t)
	for name, want := range g.Tokenizers {
		t.Run(name, func(t *testing.T) {
			tk := loadGolden(t, name)
			var mismatches []string
			fail := func(format string, args ...any) {
				mismatches = append(mismatches, fmt.Sprintf(format, args...))
			}
			ids := 0
			for i, text := range g.Texts {
				ids += len(want.Encode[i])
				if got := tk.Encode(text, false); !slices.Equal(got, want.Encode[i]) {
					fail("Encode(%q):\n got  %v\n want %v", text, got, want.Encode[i])
				}
				wantSpecial := want.EncodeSpecial[i]
				if wantSpecial == nil {
					wantSpecial = want.Encode[i]
				}
				if got := tk.Encode(text, true); !slices.Equal(got, wantSpecial) {
					fail("Encode(%q, special):\n got  %v\n want %v", text, got, wantSpecial)
				}
				wantText := or(want.Decode[i], text)
				checkDecode(tk, want.Encode[i], wantText, or(want.DecodeSkip[i], wantText), fail)
			}
			for _, c := range g.DecodeCases[name] {
				checkDecode(tk, c.IDs, c.Text, or(c.Skip, c.Text), fail)
			}
			for _, m := range mismatches[:min(len(mismatches), 10)] {
				t.Error(m)
			}
			if len(mismatches) > 0 {
				t.Fatalf("%d mismatches with tokenizers %s", len(mismatches), g.TokenizersVersion)
			}
			t.Logf("%d texts (%d ids) and %d id sequences: as tokenizers %s", len(g.Texts), ids,
				len(g.DecodeCases[name]), g.TokenizersVersion)
		})
	}
}

// checkDecode decodes ids, at once and with a Decoder, with and without the
// special tokens.
func checkDecode(tk *tokenizer.Tokenizer, ids []int, want, wantSkip string, fail func(string, ...any)) {
	for _, skip := range []bool{false, true} {
		w := want
		if skip {
			w = wantSkip
		}
		if got, err := tk.Decode(ids, skip); err != nil || got != w {
			fail("Decode(%v, %v): got %q, %v; want %q", ids, skip, got, err, w)
		}
		got, _, err := stream(tk, ids, skip)
		if err != nil || got != w {
			fail("Decoder(%v, %v): got %q, %v; want %q", ids, skip, got, err, w)
		}
	}
}

// stream decodes ids one at a time, checking that no piece holds half a
// character, and counts the ids that ended inside one (returned nothing).
func stream(tk *tokenizer.Tokenizer, ids []int, skipSpecial bool) (text string, held int, err error) {
	d := tk.NewDecoder(skipSpecial)
	var out strings.Builder
	for _, id := range ids {
		s, err := d.Add(id)
		if err != nil {
			return "", 0, err
		}
		if !utf8.ValidString(s) {
			return "", 0, fmt.Errorf("Add(%d) returned invalid UTF-8 %q", id, s)
		}
		if s == "" {
			held++
		}
		out.WriteString(s)
	}
	out.WriteString(d.Flush())
	return out.String(), held, nil
}

func or(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}
