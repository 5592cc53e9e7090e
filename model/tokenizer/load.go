package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The files of a Hugging Face model directory this package reads.
const (
	TokenizerFile        = "tokenizer.json"
	TokenizerConfigFile  = "tokenizer_config.json"
	GenerationConfigFile = "generation_config.json"
)

// Files holds the contents of the files a tokenizer is read from. Only
// Tokenizer is required.
type Files struct {
	// Tokenizer is tokenizer.json.
	Tokenizer []byte
	// Config is tokenizer_config.json: its bos_token, eos_token and
	// pad_token name the BOS, EOS and padding tokens.
	Config []byte
	// Generation is generation_config.json: its eos_token_id (one id or a
	// list) gives the ids generation stops at; its bos_token_id,
	// pad_token_id and first eos id stand in for tokens Config does not
	// name.
	Generation []byte
}

// Load reads a tokenizer from path: a model directory holding
// tokenizer.json, or a tokenizer.json file. tokenizer_config.json and
// generation_config.json are read too when they are in the same directory.
// Errors name the file.
func Load(path string) (*Tokenizer, error) {
	dir, name := path, TokenizerFile
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.IsDir() {
		dir, name = filepath.Dir(path), filepath.Base(path)
	}
	var f Files
	var err error
	if f.Tokenizer, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
		return nil, err
	}
	for _, opt := range []struct {
		name string
		dst  *[]byte
	}{{TokenizerConfigFile, &f.Config}, {GenerationConfigFile, &f.Generation}} {
		b, err := os.ReadFile(filepath.Join(dir, opt.name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		*opt.dst = b
	}
	t, err := ParseFiles(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return t, nil
}

// ParseFiles reads a tokenizer from the contents of its files. Errors name
// the file and the field.
func ParseFiles(f Files) (*Tokenizer, error) {
	t := &Tokenizer{bos: -1, eos: -1, pad: -1}
	if err := t.parse(f.Tokenizer); err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerFile, err)
	}
	if f.Config != nil {
		if err := t.parseConfig(f.Config); err != nil {
			return nil, fmt.Errorf("%s: %w", TokenizerConfigFile, err)
		}
	}
	if f.Generation != nil {
		if err := t.parseGeneration(f.Generation); err != nil {
			return nil, fmt.Errorf("%s: %w", GenerationConfigFile, err)
		}
	}
	if t.stop == nil && t.eos >= 0 {
		t.stop = []int{t.eos}
	}
	return t, nil
}

// parseConfig reads the special tokens of tokenizer_config.json. Each is
// null, a token, or an object whose content is the token.
func (t *Tokenizer) parseConfig(data []byte) error {
	var c struct {
		BOS json.RawMessage `json:"bos_token"`
		EOS json.RawMessage `json:"eos_token"`
		Pad json.RawMessage `json:"pad_token"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *int
	}{{"bos_token", c.BOS, &t.bos}, {"eos_token", c.EOS, &t.eos}, {"pad_token", c.Pad, &t.pad}} {
		if isNull(f.raw) {
			continue
		}
		var content string
		if err := json.Unmarshal(f.raw, &content); err != nil {
			var obj struct {
				Content string `json:"content"`
			}
			if err := json.Unmarshal(f.raw, &obj); err != nil {
				return fmt.Errorf("%w: %s: neither a token nor an object with its content", ErrInvalid, f.name)
			}
			content = obj.Content
		}
		id, ok := t.ID(content)
		if !ok {
			return fmt.Errorf("%w: %s %q is not a token", ErrInvalid, f.name, content)
		}
		*f.dst = id
	}
	return nil
}

// parseGeneration reads the token ids of generation_config.json.
func (t *Tokenizer) parseGeneration(data []byte) error {
	var g struct {
		BOS *int            `json:"bos_token_id"`
		EOS json.RawMessage `json:"eos_token_id"`
		Pad *int            `json:"pad_token_id"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var eos []int
	if !isNull(g.EOS) {
		var one int
		if err := json.Unmarshal(g.EOS, &one); err == nil {
			eos = []int{one}
		} else if err := json.Unmarshal(g.EOS, &eos); err != nil {
			return fmt.Errorf("%w: eos_token_id: neither an id nor a list of ids", ErrInvalid)
		}
	}
	for _, f := range []struct {
		name string
		ids  []int
		dst  *int
	}{{"bos_token_id", intList(g.BOS), &t.bos}, {"eos_token_id", eos, &t.eos}, {"pad_token_id", intList(g.Pad), &t.pad}} {
		for _, id := range f.ids {
			if _, ok := t.Token(id); !ok {
				return fmt.Errorf("%w: %s %d is not a token", ErrInvalid, f.name, id)
			}
		}
		if len(f.ids) > 0 && *f.dst < 0 {
			*f.dst = f.ids[0]
		}
	}
	if len(eos) > 0 {
		t.stop = eos
	}
	return nil
}

func intList(p *int) []int {
	if p == nil {
		return nil
	}
	return []int{*p}
}
