package tokenizer_test

import (
	"slices"
	"testing"
)

func TestRealSpecialTokens(t *testing.T) {
	// What tokenizer_config.json names in the fetched packages (there is no
	// generation_config.json: the stop ids are the EOS).
	for _, tc := range []struct {
		name           string
		vocab          int
		bos, eos, pad  string
		addsBOS        bool
		special, plain string
	}{
		{"llama3", 128256, "<|begin_of_text|>", "<|end_of_text|>", "", false, "<|eot_id|>", "Ġthe"},
		{"qwen3", 151669, "", "<|im_end|>", "<|endoftext|>", false, "<|im_start|>", "<think>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := load(t, tc.name)
			id := func(tok string) int {
				if tok == "" {
					return -1
				}
				id, ok := tk.ID(tok)
				if !ok {
					t.Fatalf("no token %q", tok)
				}
				return id
			}
			if got := tk.VocabSize(); got != tc.vocab {
				t.Errorf("VocabSize: got %d; want %d", got, tc.vocab)
			}
			if tk.BOS() != id(tc.bos) || tk.EOS() != id(tc.eos) || tk.Pad() != id(tc.pad) {
				t.Errorf("BOS, EOS, Pad: got %d %d %d; want %s %s %s", tk.BOS(), tk.EOS(), tk.Pad(), tc.bos, tc.eos, tc.pad)
			}
			if got, want := tk.StopIDs(), []int{id(tc.eos)}; !slices.Equal(got, want) {
				t.Errorf("StopIDs: got %v; want %v", got, want)
			}
			// Neither file's post-processor adds a BOS (Llama 3.1's does: see
			// TestGolden/llama31).
			if tk.AddsBOS() != tc.addsBOS {
				t.Errorf("AddsBOS: got %v; want %v", tk.AddsBOS(), tc.addsBOS)
			}
			if !tk.IsSpecial(id(tc.special)) || tk.IsSpecial(id(tc.plain)) {
				t.Errorf("IsSpecial(%s) %v, IsSpecial(%s) %v; want true, false",
					tc.special, tk.IsSpecial(id(tc.special)), tc.plain, tk.IsSpecial(id(tc.plain)))
			}
		})
	}
}
