package lm_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

func TestManifestQualityAndPrecision(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want lm.Quality
		pol  model.PrecisionConfig
	}{
		{"defaults", `{}`, lm.Quality{Metric: lm.KL, MaxError: 0.01},
			model.PrecisionConfig{Initial: precision.FP32, Ladder: precision.DefaultLadder}},
		{"kl bound", `{"quality":{"max_error":0.05}}`, lm.Quality{Metric: lm.KL, MaxError: 0.05},
			model.PrecisionConfig{Initial: precision.FP32, Ladder: precision.DefaultLadder}},
		{"rel_l2 default", `{"quality":{"metric":"rel_l2"}}`, lm.Quality{Metric: lm.RelL2, MaxError: model.DefaultMaxError},
			model.PrecisionConfig{Initial: precision.FP32, Ladder: precision.DefaultLadder}},
		{"reference", `{"quality":{"reference":"fp32"}}`, lm.Quality{Metric: lm.KL, MaxError: 0.01, Reference: precision.FP32},
			model.PrecisionConfig{Initial: precision.FP32, Ladder: precision.DefaultLadder}},
		{"ladder", `{"name":"m","version":"2","quality":{"metric":"kl","max_error":0.002},"precision":{"initial":"bf16","ladder":["fp32","bf16","fp8"]}}`,
			lm.Quality{Metric: lm.KL, MaxError: 0.002},
			model.PrecisionConfig{Initial: precision.BF16, Ladder: []precision.Format{precision.FP32, precision.BF16, precision.FP8}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := synth(t, "tiny", lm.SynthConfig{Config: tiny(lm.Qwen2)})
			writeFile(t, dir, model.ManifestFile, []byte(tc.data))
			m, err := lm.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m.Quality != tc.want {
				t.Errorf("quality %+v; want %+v", m.Quality, tc.want)
			}
			if !reflect.DeepEqual(m.Precision, tc.pol) {
				t.Errorf("precision %+v; want %+v", m.Precision, tc.pol)
			}
		})
	}
}

func TestParseManifestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data, msg string
	}{
		{"not json", `{`, "unexpected EOF"},
		{"unknown field", `{"layers":[]}`, `unknown field "layers"`},
		{"trailing", `{} {}`, "data after"},
		{"bad name", `{"name":"a b"}`, `name "a b"`},
		{"long version", `{"version":"` + strings.Repeat("v", 129) + `"}`, "version is 129 bytes"},
		{"metric", `{"quality":{"metric":"ppl"}}`, `quality.metric "ppl" is not kl or rel_l2`},
		{"kl bound", `{"quality":{"max_error":0}}`, "quality.max_error 0 must be in (0, 10] for kl"},
		{"rel_l2 bound", `{"quality":{"metric":"rel_l2","max_error":2}}`, "quality.max_error 2 must be in (0, 1] for rel_l2"},
		{"reference", `{"quality":{"reference":"fp64"}}`, `quality.reference "fp64" is not a precision`},
		{"auto reference", `{"quality":{"reference":"auto"}}`, `quality.reference "auto" is not a precision`},
		{"unknown quality field", `{"quality":{"bound":1}}`, `unknown field "bound"`},
		{"ladder", `{"precision":{"ladder":["bf16","fp32"]}}`, "precision.ladder starts with bf16"},
		{"initial", `{"precision":{"initial":"fp4","ladder":["fp32","bf16"]}}`, "precision.initial fp4 is not on the ladder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lm.ParseManifest([]byte(tc.data))
			if !errors.Is(err, model.ErrInvalidManifest) {
				t.Fatalf("got error %v; want %v", err, model.ErrInvalidManifest)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestParseGeneration(t *testing.T) {
	c := tiny(lm.Llama)
	g, err := lm.ParseGeneration([]byte(`{"bos_token_id": 3, "do_sample": true, "eos_token_id": [2, 4],
		"temperature": 0.6, "top_p": 0.9, "transformers_version": "4.43.0"}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	want := lm.Generation{DoSample: true, Temperature: 0.6, TopK: 50, TopP: 0.9, EOS: []int32{2, 4}, BOS: 3}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("got %+v; want %+v", g, want)
	}
	if g, want := lm.DefaultGeneration(&c), (lm.Generation{Temperature: 1, TopK: 50, TopP: 1, EOS: c.EOS, BOS: c.BOS}); !reflect.DeepEqual(g, want) {
		t.Errorf("defaults %+v; want %+v", g, want)
	}
	for _, tc := range []struct{ data, msg string }{
		{`[]`, "not a JSON object"},
		{`{"temperature": -1}`, "temperature -1"},
		{`{"top_k": -1}`, "top_k -1"},
		{`{"top_p": 0}`, "top_p 0"},
		{`{"top_p": "high"}`, "top_p: JSON string"},
		{`{"eos_token_id": [2, 50]}`, "eos_token_id[1] 50 is not a token id"},
		{`{"bos_token_id": 99}`, "bos_token_id 99"},
	} {
		if _, err := lm.ParseGeneration([]byte(tc.data), &c); !errors.Is(err, lm.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got error %v; want %v saying %q", tc.data, err, lm.ErrInvalidConfig, tc.msg)
		}
	}
}

// TestReference: the reference precision is model.json's, else the
// checkpoint's dtype.
func TestReference(t *testing.T) {
	for _, tc := range []struct {
		dtype, manifest string
		want            precision.Format
	}{
		{model.DTypeF32, "", precision.FP32},
		{model.DTypeBF16, "", precision.BF16},
		{model.DTypeF16, "", precision.FP16},
		{model.DTypeBF16, `{"quality":{"reference":"fp32"}}`, precision.FP32},
	} {
		dir := synth(t, "tiny", lm.SynthConfig{Config: tiny(lm.Llama), DType: tc.dtype})
		if tc.manifest != "" {
			writeFile(t, dir, model.ManifestFile, []byte(tc.manifest))
		}
		m, err := lm.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Reference(); got != tc.want {
			t.Errorf("%s checkpoint, model.json %q: reference %s; want %s", tc.dtype, tc.manifest, got, tc.want)
		}
	}
}
