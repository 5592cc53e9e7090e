package tokenizer

import (
	"fmt"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer encodes text to token ids and decodes ids to text. It is
// immutable once loaded and safe for concurrent use.
type Tokenizer struct {
	model bpe
	// tokens is each id's token as the vocabulary spells it (in the
	// byte-level alphabet; "" for an id that is not a token), decoded its
	// bytes, special whether decoding may skip it.
	tokens  []string
	decoded []string
	special []bool
	// addedIDs maps an added token's content to its id.
	addedIDs map[string]int

	// rawAdded are the added tokens found in the text before normalizing,
	// normAdded those found after.
	rawAdded, normAdded *addedSet
	nfc                 bool
	pre                 []stage
	// template is what the post-processor makes of a sequence; nil when
	// it adds nothing.
	template []piece

	bos, eos, pad int
	stop          []int
}

// stage is one step of the pre-tokenizer: a Split by a pattern, or the
// ByteLevel step, which may prefix a space and split by GPT-2's pattern.
type stage struct {
	split       pattern // 0 for ByteLevel without use_regex
	prefixSpace bool    // ByteLevel add_prefix_space
}

// Encode returns the ids of text. With addSpecial, the post-processor's
// special tokens are added (for a Llama 3.1 file, a BOS first), as the
// tokenizers library's encode(text, add_special_tokens) does. Invalid
// UTF-8 is replaced first: see the package doc.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	text = validString(text)
	ids := make([]int, 0, len(text)/3+4)
	for _, p := range t.template {
		switch {
		case p.sequence:
			ids = t.appendText(ids, text)
		case addSpecial:
			ids = append(ids, p.ids...)
		}
	}
	if t.template == nil {
		ids = t.appendText(ids, text)
	}
	return ids
}

// appendText appends the ids of text, without the post-processor's tokens.
func (t *Tokenizer) appendText(ids []int, text string) []int {
	addToken := func(a *addedToken) { ids = append(ids, a.id) }
	t.rawAdded.split(text, func(s string) {
		if t.nfc {
			s = norm.NFC.String(s)
		}
		t.normAdded.split(s, func(s string) {
			t.preTokenize(0, s, func(word string) { ids = t.model.appendWord(ids, word) })
		}, addToken)
	}, addToken)
	return ids
}

// preTokenize runs the pre-tokenizer's stages from k on s, calling word
// with each word.
func (t *Tokenizer) preTokenize(k int, s string, word func(string)) {
	if k == len(t.pre) {
		word(s)
		return
	}
	st := t.pre[k]
	if st.prefixSpace && s[0] != ' ' {
		s = " " + s
	}
	if st.split == 0 {
		t.preTokenize(k+1, s, word)
		return
	}
	st.split.split(s, func(p string) { t.preTokenize(k+1, p, word) })
}

// Decode returns the text of ids. With skipSpecial, special tokens (those
// the file marks "special") are left out, as in the tokenizers library's
// decode(ids, skip_special_tokens). An id that is not a token is an
// ErrUnknownID.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	var raw []byte
	for _, id := range ids {
		s, err := t.tokenBytes(id, skipSpecial)
		if err != nil {
			return "", err
		}
		raw = append(raw, s...)
	}
	out, _ := appendValid(make([]byte, 0, len(raw)), raw, false)
	return string(out), nil
}

// tokenBytes returns the bytes id decodes to ("" for a skipped special).
func (t *Tokenizer) tokenBytes(id int, skipSpecial bool) (string, error) {
	if id < 0 || id >= len(t.tokens) || t.tokens[id] == "" {
		return "", fmt.Errorf("%w: %d (vocabulary size %d)", ErrUnknownID, id, len(t.tokens))
	}
	if skipSpecial && t.special[id] {
		return "", nil
	}
	return t.decoded[id], nil
}

// VocabSize returns one more than the largest token id: every id below it
// that is a token decodes. (Models' embedding tables are often larger.)
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Token returns the token of id as the vocabulary spells it (in the
// byte-level alphabet: a space is "Ġ"), and whether id is a token.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// ID returns the id of a token spelt as in the vocabulary (or an added
// token's content), and whether there is one.
func (t *Tokenizer) ID(token string) (int, bool) {
	if id, ok := t.addedIDs[token]; ok {
		return id, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// IsSpecial reports whether id is a special token (skipped by Decode with
// skipSpecial).
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// BOS returns the id of the beginning-of-sequence token named by
// tokenizer_config.json (or generation_config.json), or -1.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the id of the end-of-sequence token named by
// tokenizer_config.json (or generation_config.json), or -1.
func (t *Tokenizer) EOS() int { return t.eos }

// Pad returns the id of the padding token named by tokenizer_config.json
// (or generation_config.json), or -1.
func (t *Tokenizer) Pad() int { return t.pad }

// StopIDs returns the ids generation stops at: generation_config.json's
// eos_token_id (one or a list) when it is there, else the EOS; empty when
// neither is known. The slice is the caller's.
func (t *Tokenizer) StopIDs() []int { return append([]int(nil), t.stop...) }

// AddsBOS reports whether Encode(text, true) starts with the BOS token.
// It is false for files whose post-processor adds nothing (Qwen, and the
// first Llama 3 releases): callers that want a BOS there must add it.
func (t *Tokenizer) AddsBOS() bool {
	ids := t.Encode("", true)
	return t.bos >= 0 && len(ids) > 0 && ids[0] == t.bos
}
