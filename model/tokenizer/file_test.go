package tokenizer_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

// tinyJSON returns the tiny fixture's tokenizer.json as a map to edit.
func tinyJSON(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/tiny/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseErrors(t *testing.T) {
	obj := func(m map[string]any, path ...string) map[string]any {
		for _, p := range path {
			m = m[p].(map[string]any)
		}
		return m
	}
	split := func(m map[string]any) map[string]any {
		return obj(m, "pre_tokenizer")["pretokenizers"].([]any)[0].(map[string]any)
	}
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		want error
		in   string // the error names this
	}{
		{"model type", func(m map[string]any) { obj(m, "model")["type"] = "WordPiece" }, tokenizer.ErrUnsupported, `model.type "WordPiece"`},
		{"dropout", func(m map[string]any) { obj(m, "model")["dropout"] = 0.1 }, tokenizer.ErrUnsupported, "model.dropout"},
		{"byte fallback", func(m map[string]any) { obj(m, "model")["byte_fallback"] = true }, tokenizer.ErrUnsupported, "model.byte_fallback"},
		{"prefix", func(m map[string]any) { obj(m, "model")["continuing_subword_prefix"] = "##" }, tokenizer.ErrUnsupported, "model.continuing_subword_prefix"},
		{"merge of unknown token", func(m map[string]any) {
			obj(m, "model")["merges"] = append(obj(m, "model")["merges"].([]any), "q zz")
		}, tokenizer.ErrInvalid, "model.merges[32]"},
		{"merge of three", func(m map[string]any) { obj(m, "model")["merges"].([]any)[0] = "a b c" }, tokenizer.ErrInvalid, "model.merges[0]"},
		{"shared id", func(m map[string]any) { obj(m, "model", "vocab")["zzz"] = 5.0 }, tokenizer.ErrInvalid, "share id 5"},
		{"huge id", func(m map[string]any) { obj(m, "model", "vocab")["zzz"] = float64(1 << 62) }, tokenizer.ErrInvalid, `token "zzz" with id`},
		{"negative id", func(m map[string]any) { obj(m, "model", "vocab")["zzz"] = -1.0 }, tokenizer.ErrInvalid, `token "zzz" with id -1`},
		{"normalizer", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} }, tokenizer.ErrUnsupported, `normalizer.type "Lowercase"`},
		{"normalizer in sequence", func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFC"}, map[string]any{"type": "NFKC"}}}
		}, tokenizer.ErrUnsupported, `normalizer.normalizers[1].type "NFKC"`},
		{"regex", func(m map[string]any) { split(m)["pattern"] = map[string]any{"Regex": `\w+`} }, tokenizer.ErrUnsupported, `pre_tokenizer.pretokenizers[0].pattern.Regex "\\w+"`},
		{"string pattern", func(m map[string]any) { split(m)["pattern"] = map[string]any{"String": " "} }, tokenizer.ErrUnsupported, "pre_tokenizer.pretokenizers[0].pattern"},
		{"behavior", func(m map[string]any) { split(m)["behavior"] = "Removed" }, tokenizer.ErrUnsupported, `pre_tokenizer.pretokenizers[0].behavior "Removed"`},
		{"invert", func(m map[string]any) { split(m)["invert"] = true }, tokenizer.ErrUnsupported, "pre_tokenizer.pretokenizers[0].invert"},
		{"other pre-tokenizer", func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }, tokenizer.ErrUnsupported, `pre_tokenizer.type "Whitespace"`},
		{"no ByteLevel", func(m map[string]any) {
			obj(m, "pre_tokenizer")["pretokenizers"] = []any{split(m)}
		}, tokenizer.ErrUnsupported, "no ByteLevel"},
		{"no pre-tokenizer", func(m map[string]any) { m["pre_tokenizer"] = nil }, tokenizer.ErrUnsupported, "no ByteLevel"},
		{"decoder", func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} }, tokenizer.ErrUnsupported, `decoder.type "WordPiece"`},
		{"no decoder", func(m map[string]any) { m["decoder"] = nil }, tokenizer.ErrUnsupported, "decoder is missing"},
		{"post-processor", func(m map[string]any) { m["post_processor"] = map[string]any{"type": "RobertaProcessing"} }, tokenizer.ErrUnsupported, `post_processor.type "RobertaProcessing"`},
		{"template token", func(m map[string]any) {
			tp := obj(m, "post_processor")["processors"].([]any)[1].(map[string]any)
			delete(obj(tp, "special_tokens"), "<|eos|>")
		}, tokenizer.ErrInvalid, "post_processor.processors[1].single[2]"},
		{"truncation", func(m map[string]any) { m["truncation"] = map[string]any{"max_length": 8} }, tokenizer.ErrUnsupported, "truncation"},
		{"padding", func(m map[string]any) { m["padding"] = map[string]any{"strategy": "BatchLongest"} }, tokenizer.ErrUnsupported, "padding"},
		{"version", func(m map[string]any) { m["version"] = "2.0" }, tokenizer.ErrUnsupported, `version "2.0"`},
		{"added token id", func(m map[string]any) { m["added_tokens"].([]any)[1].(map[string]any)["id"] = 7.0 }, tokenizer.ErrInvalid, `added_tokens[1] "<|eos|>" has id 7`},
		{"added token twice", func(m map[string]any) {
			m["added_tokens"] = append(m["added_tokens"].([]any), m["added_tokens"].([]any)[0])
		}, tokenizer.ErrUnsupported, `added_tokens[7] "<|bos|>" is listed twice`},
		{"not an object", func(m map[string]any) { m["model"] = "BPE" }, tokenizer.ErrInvalid, "model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyJSON(t)
			tc.edit(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tokenizer.Parse(b)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("got %v; want %v naming %s", err, tc.want, tc.in)
			}
		})
	}
	if _, err := tokenizer.Parse([]byte("{")); !errors.Is(err, tokenizer.ErrInvalid) {
		t.Errorf("Parse({): got %v; want ErrInvalid", err)
	}
}

func TestParseMergePairs(t *testing.T) {
	// The same merges as [a, b] pairs give the same ids.
	m := tinyJSON(t)
	model := m["model"].(map[string]any)
	var pairs []any
	for _, l := range model["merges"].([]any) {
		a, b, _ := strings.Cut(l.(string), " ")
		pairs = append(pairs, []any{a, b})
	}
	model["merges"] = pairs
	b, _ := json.Marshal(m)
	tk, err := tokenizer.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	ref := load(t, "tiny")
	for _, text := range corpusTexts(t) {
		if got, want := tk.Encode(text, true), ref.Encode(text, true); !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) with pair merges: got %v; want %v", text, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tok, err := os.ReadFile("testdata/tiny/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		files tokenizer.Files
		in    string
	}{
		{tokenizer.Files{Config: []byte(`{"bos_token": "<nope>"}`)}, `tokenizer_config.json: invalid tokenizer: bos_token "<nope>"`},
		{tokenizer.Files{Config: []byte(`{"eos_token": 3}`)}, "tokenizer_config.json: invalid tokenizer: eos_token"},
		{tokenizer.Files{Generation: []byte(`{"eos_token_id": [290, 99999]}`)}, "generation_config.json: invalid tokenizer: eos_token_id 99999"},
		{tokenizer.Files{Generation: []byte(`{"eos_token_id": "x"}`)}, "generation_config.json: invalid tokenizer: eos_token_id"},
	} {
		tc.files.Tokenizer = tok
		_, err := tokenizer.ParseFiles(tc.files)
		if !errors.Is(err, tokenizer.ErrInvalid) || !strings.Contains(err.Error(), tc.in) {
			t.Errorf("got %v; want ErrInvalid naming %s", err, tc.in)
		}
	}
}

func TestLoad(t *testing.T) {
	// A directory or its tokenizer.json: the configs beside are read both
	// ways; an absent directory is the os error.
	for _, path := range []string{"testdata/tiny", "testdata/tiny/tokenizer.json"} {
		tk, err := tokenizer.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if bos, _ := tk.ID("<|bos|>"); tk.BOS() != bos {
			t.Errorf("Load(%s): BOS %d; want %d", path, tk.BOS(), bos)
		}
	}
	if _, err := tokenizer.Load(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(absent): got %v; want ErrNotExist", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, tokenizer.TokenizerFile), []byte(`{"model": {"type": "Unigram"}}`), 0o644)
	if _, err := tokenizer.Load(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("Load(Unigram): got %v; want an error naming the directory and the file", err)
	}
}
