package lm

import "github.com/gearbox-inference/gearbox/model"

// Model is a loaded, validated causal language model. It is immutable once
// loaded and safe for concurrent use; backends key their per-model caches
// (converted weights) on its pointer.
type Model struct {
	// Name names the model in job subjects: model.json's name, or the
	// checkpoint directory's.
	Name    string
	Version string
	Config  Config
	// Generation holds the sampling defaults of generation_config.json
	// (DefaultGeneration when absent).
	Generation Generation
	Quality    Quality
	Precision  model.PrecisionConfig
	Weights    Weights
	// Tokenizer and TokenizerConfig are the bytes of tokenizer.json and
	// tokenizer_config.json, or nil where the checkpoint has none.
	Tokenizer, TokenizerConfig []byte
	// Digest is the hex SHA-256 of config.json followed by the weight
	// files in name order: it names this exact version of the model.
	Digest string
}

// Tensors returns every weight tensor once, in checkpoint order: the
// embedding, each layer's, the final norm, and the head unless tied.
func (m *Model) Tensors() []*model.RawTensor {
	w := &m.Weights
	ts := []*model.RawTensor{w.Embed}
	for i := range w.Layers {
		l := &w.Layers[i]
		ts = append(ts, l.AttnNorm)
		for _, lin := range l.Linears()[:4] {
			ts = appendLinear(ts, lin)
		}
		if l.QNorm != nil {
			ts = append(ts, l.QNorm, l.KNorm)
		}
		ts = append(ts, l.MLPNorm)
		for _, lin := range l.Linears()[4:] {
			ts = appendLinear(ts, lin)
		}
	}
	ts = append(ts, w.Norm)
	if w.Head != w.Embed {
		ts = append(ts, w.Head)
	}
	return ts
}

func appendLinear(ts []*model.RawTensor, l *Linear) []*model.RawTensor {
	ts = append(ts, l.Weight)
	if l.Bias != nil {
		ts = append(ts, l.Bias)
	}
	return ts
}

// Params is the number of weights (elements of all tensors, a tied head
// counted once).
func (m *Model) Params() int64 {
	var n int64
	for _, t := range m.Tensors() {
		n += int64(t.Len())
	}
	return n
}

// WeightBytes is the size of the weights as stored (and as held in host
// memory): the sum of the tensors' bytes.
func (m *Model) WeightBytes() int64 {
	var n int64
	for _, t := range m.Tensors() {
		n += int64(len(t.Data))
	}
	return n
}
