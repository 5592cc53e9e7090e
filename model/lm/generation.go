package lm

import (
	"encoding/json"
	"math"
)

// GenerationFile is the optional file of sampling defaults beside a
// checkpoint.
const GenerationFile = "generation_config.json"

// Generation holds a model's sampling defaults, from
// generation_config.json; a request's own settings win over them.
type Generation struct {
	// DoSample: sample (with Temperature, TopK, TopP) rather than decode
	// greedily. Default false.
	DoSample bool
	// Temperature (default 1) is ≥ 0.
	Temperature float64
	// TopK (default 50; 0 is off) keeps the TopK most likely tokens.
	TopK int
	// TopP (default 1, off) keeps the smallest set of most likely tokens
	// whose probabilities sum to at least TopP; in (0, 1].
	TopP float64
	// EOS are the tokens that end a generation (default: config.json's);
	// BOS the token that starts one (default: config.json's, or NoToken).
	EOS []int32
	BOS int32
}

// DefaultGeneration is the Generation of a model without
// generation_config.json: transformers' defaults, with c's token ids.
func DefaultGeneration(c *Config) Generation {
	return Generation{Temperature: 1, TopK: 50, TopP: 1, EOS: c.EOS, BOS: c.BOS}
}

// rawGeneration is the part of generation_config.json Gearbox reads.
type rawGeneration struct {
	DoSample    *bool           `json:"do_sample"`
	Temperature *float64        `json:"temperature"`
	TopK        *int            `json:"top_k"`
	TopP        *float64        `json:"top_p"`
	EOS         json.RawMessage `json:"eos_token_id"`
	BOS         json.RawMessage `json:"bos_token_id"`
}

// ParseGeneration decodes generation_config.json for the model c
// describes: absent fields take DefaultGeneration's values and unknown
// fields are ignored. Errors wrap ErrInvalidConfig and name the field.
func ParseGeneration(data []byte, c *Config) (Generation, error) {
	g := DefaultGeneration(c)
	var r rawGeneration
	if err := decodeObject(data, &r); err != nil {
		return g, err
	}
	g.DoSample = deref(r.DoSample, g.DoSample)
	g.Temperature = deref(r.Temperature, g.Temperature)
	g.TopK = deref(r.TopK, g.TopK)
	g.TopP = deref(r.TopP, g.TopP)
	switch {
	case !(g.Temperature >= 0 && g.Temperature < math.Inf(1)):
		return g, invalidf("temperature %v must be a finite number >= 0", g.Temperature)
	case g.TopK < 0:
		return g, invalidf("top_k %d must be >= 0", g.TopK)
	case !(g.TopP > 0 && g.TopP <= 1):
		return g, invalidf("top_p %v must be in (0, 1]", g.TopP)
	}
	var err error
	if present(r.EOS) {
		if g.EOS, err = parseIDs("eos_token_id", r.EOS); err != nil {
			return g, err
		}
	}
	if present(r.BOS) {
		if g.BOS, err = parseID("bos_token_id", r.BOS); err != nil {
			return g, err
		}
	}
	for i, id := range g.EOS {
		if int(id) >= c.Vocab {
			return g, invalidf("eos_token_id[%d] %d is not a token id (vocab_size %d)", i, id, c.Vocab)
		}
	}
	if int(g.BOS) >= c.Vocab {
		return g, invalidf("bos_token_id %d is not a token id (vocab_size %d)", g.BOS, c.Vocab)
	}
	return g, nil
}
