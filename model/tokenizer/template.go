package tokenizer

import (
	"encoding/json"
	"fmt"
)

// piece is one part of what the post-processor makes of a single sequence:
// the sequence itself, or special-token ids added when asked for.
type piece struct {
	sequence bool
	ids      []int
}

// parsePostProcessor returns the template of a post_processor: nil when it
// adds nothing (null, ByteLevel). Supported: ByteLevel, TemplateProcessing
// and a Sequence of them.
func parsePostProcessor(raw json.RawMessage, field string) ([]piece, error) {
	typ, err := typeOf(raw, field)
	if err != nil || typ == "" {
		return nil, err
	}
	switch typ {
	case "ByteLevel":
		return nil, nil
	case "TemplateProcessing":
		return parseTemplate(raw, field)
	case "Sequence":
		steps, fields, err := sequenceOf(raw, "processors", field)
		if err != nil {
			return nil, err
		}
		var tmpl []piece
		for i, p := range steps {
			next, err := parsePostProcessor(p, fields[i])
			if err != nil {
				return nil, err
			}
			tmpl = compose(tmpl, next)
		}
		return tmpl, nil
	}
	return nil, fmt.Errorf("%w: %s.type %q", ErrUnsupported, field, typ)
}

// compose returns the template of applying outer to what inner made: each
// sequence of outer becomes the whole of inner. A nil template is the
// sequence alone.
func compose(inner, outer []piece) []piece {
	if outer == nil {
		return inner
	}
	if inner == nil {
		return outer
	}
	var out []piece
	for _, p := range outer {
		if p.sequence {
			out = append(out, inner...)
		} else {
			out = append(out, p)
		}
	}
	return out
}

// parseTemplate reads a TemplateProcessing's single template.
func parseTemplate(raw json.RawMessage, field string) ([]piece, error) {
	var tp struct {
		Single []struct {
			Sequence *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
		} `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &tp); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	tmpl := []piece{}
	for i, p := range tp.Single {
		at := fmt.Sprintf("%s.single[%d]", field, i)
		switch {
		case p.Sequence != nil:
			if p.Sequence.ID != "A" {
				return nil, fmt.Errorf("%w: %s: sequence %q in the single template", ErrInvalid, at, p.Sequence.ID)
			}
			tmpl = append(tmpl, piece{sequence: true})
		case p.SpecialToken != nil:
			st, ok := tp.SpecialTokens[p.SpecialToken.ID]
			if !ok {
				return nil, fmt.Errorf("%w: %s: special token %q not in special_tokens", ErrInvalid, at, p.SpecialToken.ID)
			}
			tmpl = append(tmpl, piece{ids: st.IDs})
		default:
			return nil, fmt.Errorf("%w: %s: neither Sequence nor SpecialToken", ErrUnsupported, at)
		}
	}
	return tmpl, nil
}
