package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// maxVocab bounds the ids of the vocabulary (real ones are below 2¹⁹):
// the id tables are that long.
const maxVocab = 1 << 24

// fileJSON is tokenizer.json. Fields this package does not know are
// ignored, as the tokenizers library ignores them.
type fileJSON struct {
	Version       string           `json:"version"`
	Truncation    json.RawMessage  `json:"truncation"`
	Padding       json.RawMessage  `json:"padding"`
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         *modelJSON       `json:"model"`
}

type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// Parse reads a tokenizer.json. The tokenizer knows no BOS, EOS or stop
// tokens: ParseFiles or Load read the files that name them.
func Parse(tokenizerJSON []byte) (*Tokenizer, error) {
	return ParseFiles(Files{Tokenizer: tokenizerJSON})
}

// parse reads tokenizer.json into t.
func (t *Tokenizer) parse(data []byte) error {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if f.Version != "" && f.Version != "1.0" {
		return fmt.Errorf("%w: version %q (want 1.0)", ErrUnsupported, f.Version)
	}
	if !isNull(f.Truncation) {
		return fmt.Errorf("%w: truncation is set", ErrUnsupported)
	}
	if !isNull(f.Padding) {
		return fmt.Errorf("%w: padding is set", ErrUnsupported)
	}
	if err := t.parseModel(f.Model); err != nil {
		return err
	}
	var err error
	if t.nfc, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
		return err
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer, "pre_tokenizer"); err != nil {
		return err
	}
	if err := checkDecoder(f.Decoder, "decoder"); err != nil {
		return err
	}
	if t.template, err = parsePostProcessor(f.PostProcessor, "post_processor"); err != nil {
		return err
	}
	if err := t.addTokens(f.AddedTokens); err != nil {
		return err
	}
	for _, p := range t.template {
		for _, id := range p.ids {
			if _, ok := t.Token(id); !ok {
				return fmt.Errorf("%w: post_processor: special token id %d is not a token", ErrInvalid, id)
			}
		}
	}
	return nil
}

// parseModel reads the BPE model and builds the id tables from its
// vocabulary.
func (t *Tokenizer) parseModel(m *modelJSON) error {
	if m == nil {
		return fmt.Errorf("%w: model is missing", ErrInvalid)
	}
	switch {
	case m.Type != "BPE":
		return fmt.Errorf("%w: model.type %q (want BPE)", ErrUnsupported, m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return fmt.Errorf("%w: model.dropout %v", ErrUnsupported, *m.Dropout)
	case m.ByteFallback:
		return fmt.Errorf("%w: model.byte_fallback", ErrUnsupported)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return fmt.Errorf("%w: model.continuing_subword_prefix %q", ErrUnsupported, *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return fmt.Errorf("%w: model.end_of_word_suffix %q", ErrUnsupported, *m.EndOfWordSuffix)
	case len(m.Vocab) == 0:
		return fmt.Errorf("%w: model.vocab is empty", ErrInvalid)
	}
	size := 0
	for tok, id := range m.Vocab {
		if id < 0 || id >= maxVocab || tok == "" {
			return fmt.Errorf("%w: model.vocab: token %q with id %d (ids are 0 to %d)", ErrInvalid, tok, id, maxVocab-1)
		}
		size = max(size, id+1)
	}
	t.tokens = make([]string, size)
	for tok, id := range m.Vocab {
		if t.tokens[id] != "" {
			return fmt.Errorf("%w: model.vocab: tokens %q and %q share id %d", ErrInvalid, t.tokens[id], tok, id)
		}
		t.tokens[id] = tok
	}
	t.model = bpe{vocab: m.Vocab, ignoreMerges: m.IgnoreMerges, unk: -1, fuseUnk: m.FuseUnk}
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return fmt.Errorf("%w: model.unk_token %q is not in the vocabulary", ErrInvalid, *m.UnkToken)
		}
		t.model.unk = int32(id)
	}
	for b := range 256 {
		t.model.byteID[b] = -1
		if id, ok := m.Vocab[string(byteChar[b])]; ok {
			t.model.byteID[b] = int32(id)
		}
	}
	return t.model.parseMerges(m.Merges)
}

// parseMerges reads model.merges, in either form: "a b" strings (where
// neither token has a space) or [a, b] pairs. A pair that appears twice
// keeps its later rank, as in the tokenizers library.
func (m *bpe) parseMerges(raw json.RawMessage) error {
	var pairs [][2]string
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if bytes.HasPrefix(trimmed, []byte("[")) && bytes.HasPrefix(bytes.TrimLeft(trimmed[1:], " \t\r\n"), []byte(`"`)) {
		var lines []string
		if err := json.Unmarshal(raw, &lines); err != nil {
			return fmt.Errorf("%w: model.merges: %v", ErrInvalid, err)
		}
		pairs = make([][2]string, 0, len(lines))
		for i, l := range lines {
			if strings.HasPrefix(l, "#version") {
				continue // as the tokenizers library skips a merges.txt header
			}
			a, b, ok := strings.Cut(l, " ")
			if !ok || strings.Contains(b, " ") {
				return fmt.Errorf("%w: model.merges[%d] %q is not two tokens", ErrInvalid, i, l)
			}
			pairs = append(pairs, [2]string{a, b})
		}
	} else if err := json.Unmarshal(raw, &pairs); err != nil {
		return fmt.Errorf("%w: model.merges: %v", ErrInvalid, err)
	}
	m.merges = make(map[uint64]uint64, len(pairs))
	var buf []byte
	for rank, p := range pairs {
		buf = append(append(buf[:0], p[0]...), p[1]...)
		a, okA := m.vocab[p[0]]
		b, okB := m.vocab[p[1]]
		c, okC := m.vocab[string(buf)]
		if !okA || !okB || !okC {
			return fmt.Errorf("%w: model.merges[%d] %q: a token is not in the vocabulary", ErrInvalid, rank, p)
		}
		m.merges[pairKey(int32(a), int32(b))] = uint64(rank)<<32 | uint64(uint32(c))
	}
	return nil
}

// addTokens reads added_tokens. Each gets the id the tokenizers library
// would give it — its id in the vocabulary, else the next free one after
// the vocabulary — and a file that says otherwise is invalid. (The library
// lets a later entry for the same content change its flags: unsupported.)
func (t *Tokenizer) addTokens(list []addedTokenJSON) error {
	added := map[string]int{}
	next := len(t.model.vocab)
	var raw, normed []*addedToken
	for i, a := range list {
		if a.Content == "" {
			continue
		}
		if _, dup := added[a.Content]; dup {
			return fmt.Errorf("%w: added_tokens[%d] %q is listed twice", ErrUnsupported, i, a.Content)
		}
		id, ok := t.model.vocab[a.Content]
		if !ok {
			id = next
			next++
		}
		if a.ID != id {
			return fmt.Errorf("%w: added_tokens[%d] %q has id %d; the tokenizers library gives it %d",
				ErrInvalid, i, a.Content, a.ID, id)
		}
		added[a.Content] = id
		tok := &addedToken{id: id, content: a.Content, match: a.Content,
			singleWord: a.SingleWord, lstrip: a.LStrip, rstrip: a.RStrip,
			normalized: a.Normalized, special: a.Special}
		if tok.normalized {
			if t.nfc {
				tok.match = norm.NFC.String(a.Content)
			}
			normed = append(normed, tok)
		} else {
			raw = append(raw, tok)
		}
		if id >= len(t.tokens) {
			t.tokens = append(t.tokens, make([]string, id+1-len(t.tokens))...)
		}
		t.tokens[id] = tok.match
	}
	t.addedIDs = added
	t.rawAdded, t.normAdded = newAddedSet(raw), newAddedSet(normed)
	t.special = make([]bool, len(t.tokens))
	for _, a := range append(raw, normed...) {
		t.special[a.id] = a.special
	}
	t.decoded = make([]string, len(t.tokens))
	for id, tok := range t.tokens {
		t.decoded[id] = byteLevelDecode(tok)
	}
	return nil
}

// parseNormalizer reports whether the normalizer is NFC; none is allowed
// too, and a Sequence of those.
func parseNormalizer(raw json.RawMessage, field string) (nfc bool, err error) {
	typ, err := typeOf(raw, field)
	if err != nil || typ == "" {
		return false, err
	}
	switch typ {
	case "NFC":
		return true, nil
	case "Sequence":
		steps, fields, err := sequenceOf(raw, "normalizers", field)
		if err != nil {
			return false, err
		}
		for i, n := range steps {
			one, err := parseNormalizer(n, fields[i])
			if err != nil {
				return false, err
			}
			nfc = nfc || one
		}
		return nfc, nil
	}
	return false, fmt.Errorf("%w: %s.type %q", ErrUnsupported, field, typ)
}

// parsePreTokenizer reads a pre_tokenizer: Split steps by a known pattern
// followed by one ByteLevel step, alone or in a Sequence.
func parsePreTokenizer(raw json.RawMessage, field string) ([]stage, error) {
	var steps []json.RawMessage
	var fields []string
	typ, err := typeOf(raw, field)
	if err != nil {
		return nil, err
	}
	if typ == "Sequence" {
		if steps, fields, err = sequenceOf(raw, "pretokenizers", field); err != nil {
			return nil, err
		}
	} else if typ != "" {
		steps, fields = []json.RawMessage{raw}, []string{field}
	}
	var stages []stage
	byteLevel := false
	for i, step := range steps {
		st, isByteLevel, err := parseStage(step, fields[i])
		if err != nil {
			return nil, err
		}
		if byteLevel {
			return nil, fmt.Errorf("%w: %s: a step after ByteLevel", ErrUnsupported, fields[i])
		}
		byteLevel = isByteLevel
		stages = append(stages, st)
	}
	if !byteLevel {
		return nil, fmt.Errorf("%w: %s: no ByteLevel step (only byte-level BPE is supported)", ErrUnsupported, field)
	}
	return stages, nil
}

// parseStage reads one pre-tokenizer step.
func parseStage(raw json.RawMessage, field string) (st stage, isByteLevel bool, err error) {
	typ, err := typeOf(raw, field)
	if err != nil {
		return st, false, err
	}
	switch typ {
	case "ByteLevel":
		bl := struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := json.Unmarshal(raw, &bl); err != nil {
			return st, false, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
		}
		st.prefixSpace = bl.AddPrefixSpace
		if bl.UseRegex == nil || *bl.UseRegex { // use_regex defaults to true
			st.split = patGPT2
		}
		return st, true, nil
	case "Split":
		var sp struct {
			Pattern struct {
				Regex  *string `json:"Regex"`
				String *string `json:"String"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if err := json.Unmarshal(raw, &sp); err != nil {
			return st, false, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
		}
		if sp.Pattern.Regex == nil {
			return st, false, fmt.Errorf("%w: %s.pattern: only Regex patterns are supported", ErrUnsupported, field)
		}
		p, ok := knownPatterns[*sp.Pattern.Regex]
		if !ok {
			return st, false, fmt.Errorf("%w: %s.pattern.Regex %q: not one of the patterns of Llama 3, Qwen2 or GPT-2",
				ErrUnsupported, field, *sp.Pattern.Regex)
		}
		if sp.Behavior != "Isolated" {
			return st, false, fmt.Errorf("%w: %s.behavior %q (want Isolated)", ErrUnsupported, field, sp.Behavior)
		}
		if sp.Invert {
			return st, false, fmt.Errorf("%w: %s.invert", ErrUnsupported, field)
		}
		st.split = p
		return st, false, nil
	}
	return st, false, fmt.Errorf("%w: %s.type %q", ErrUnsupported, field, typ)
}

// checkDecoder accepts a ByteLevel decoder (alone or as the only step of a
// Sequence).
func checkDecoder(raw json.RawMessage, field string) error {
	typ, err := typeOf(raw, field)
	if err != nil {
		return err
	}
	switch typ {
	case "ByteLevel":
		return nil
	case "Sequence":
		steps, fields, err := sequenceOf(raw, "decoders", field)
		if err != nil {
			return err
		}
		if len(steps) == 1 {
			return checkDecoder(steps[0], fields[0])
		}
	case "":
		return fmt.Errorf("%w: %s is missing (want ByteLevel)", ErrUnsupported, field)
	}
	return fmt.Errorf("%w: %s.type %q (want ByteLevel)", ErrUnsupported, field, typ)
}

// sequenceOf returns the steps of a Sequence object, listed under key, and
// the field name of each.
func sequenceOf(raw json.RawMessage, key, field string) ([]json.RawMessage, []string, error) {
	var seq map[string]json.RawMessage
	var steps []json.RawMessage
	err := json.Unmarshal(raw, &seq)
	if err == nil {
		err = json.Unmarshal(seq[key], &steps)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s.%s: %v", ErrInvalid, field, key, err)
	}
	fields := make([]string, len(steps))
	for i := range steps {
		fields[i] = fmt.Sprintf("%s.%s[%d]", field, key, i)
	}
	return steps, fields, nil
}

// typeOf returns the "type" of a JSON object, or "" for null or absent.
func typeOf(raw json.RawMessage, field string) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var v struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	if v.Type == "" {
		return "", fmt.Errorf("%w: %s.type is missing", ErrInvalid, field)
	}
	return v.Type, nil
}

func isNull(raw json.RawMessage) bool {
	s := bytes.TrimSpace(raw)
	return len(s) == 0 || bytes.Equal(s, []byte("null"))
}
