package model_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func TestParseManifestExample(t *testing.T) {
	// The example of docs/models.md.
	const doc = `{"name":"demo","version":"1","input_features":64,
	 "layers":[{"op":"linear","weight":"l0.weight","bias":"l0.bias"},{"op":"gelu"},
	           {"op":"layernorm","weight":"ln.weight","bias":"ln.bias","eps":1e-5},
	           {"op":"linear","weight":"l1.weight"},{"op":"rmsnorm","weight":"rn.weight","eps":1e-6},{"op":"softmax"}],
	 "quality":{"max_error":0.02},
	 "precision":{"initial":"fp32","ladder":["fp32","tf32","bf16","fp8","fp4"]}}`
	m, err := model.ParseManifest([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "demo" || m.InputFeatures != 64 || len(m.Layers) != 6 {
		t.Errorf("got %+v", m)
	}
	if got := *m.Layers[2].Eps; got != 1e-5 {
		t.Errorf("layernorm eps %v; want 1e-5", got)
	}
}

func TestManifestDefaults(t *testing.T) {
	// Load fills the defaults; a model with every optional field absent.
	dir := writeModel(t, t.TempDir(), `{"name":"d","input_features":2,
		"layers":[{"op":"layernorm","weight":"w","bias":"b"},{"op":"rmsnorm","weight":"r"}]}`,
		[]*model.Tensor{tensor("w", 2), tensor("b", 2), tensor("r", 2)})
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Quality.MaxError, model.DefaultMaxError; got != want {
		t.Errorf("max error %v; want %v", got, want)
	}
	if got, want := m.Precision.Initial, precision.FP32; got != want {
		t.Errorf("initial %v; want %v", got, want)
	}
	if got, want := m.Precision.Ladder, precision.DefaultLadder; !slices.Equal(got, want) {
		t.Errorf("ladder %v; want %v", got, want)
	}
	if got, want := m.Layers[0].Eps, model.DefaultLayerNormEps; got != want {
		t.Errorf("layernorm eps %v; want %v", got, want)
	}
	if got, want := m.Layers[1].Eps, model.DefaultRMSNormEps; got != want {
		t.Errorf("rmsnorm eps %v; want %v", got, want)
	}
	if m.Version != "" {
		t.Errorf("version %q; want empty", m.Version)
	}
	// The ladder is the model's own copy.
	m.Precision.Ladder[0] = "x"
	if precision.DefaultLadder[0] != precision.FP32 {
		t.Error("changing a model's ladder changed precision.DefaultLadder")
	}
}

func TestParseManifestErrors(t *testing.T) {
	const layers = `"layers":[{"op":"relu"}]`
	for _, tc := range []struct {
		name string
		json string
		want []string
	}{
		{"not json", `{`, []string{"unexpected EOF"}},
		{"trailing data", `{"name":"a","input_features":1,` + layers + `} {}`, []string{"after"}},
		{"unknown field", `{"name":"a","input_features":1,"extra":1,` + layers + `}`, []string{`"extra"`}},
		{"unknown layer field", `{"name":"a","input_features":1,"layers":[{"op":"relu","bogus":1}]}`, []string{`"bogus"`}},
		{"no name", `{"input_features":1,` + layers + `}`, []string{`name ""`}},
		{"bad name", `{"name":"a.b","input_features":1,` + layers + `}`, []string{`"a.b"`}},
		{"long name", `{"name":"` + strings.Repeat("a", 65) + `","input_features":1,` + layers + `}`, []string{"1 to 64"}},
		{"long version", `{"name":"a","version":"` + strings.Repeat("v", 129) + `","input_features":1,` + layers + `}`, []string{"version"}},
		{"zero features", `{"name":"a","input_features":0,` + layers + `}`, []string{"input_features 0"}},
		{"negative features", `{"name":"a","input_features":-3,` + layers + `}`, []string{"input_features -3"}},
		{"huge features", `{"name":"a","input_features":16777217,` + layers + `}`, []string{"input_features 16777217"}},
		{"no layers", `{"name":"a","input_features":1,"layers":[]}`, []string{"no layers"}},
		{"unknown op", `{"name":"a","input_features":1,"layers":[{"op":"relu"},{"op":"conv"}]}`, []string{"layer 1 (conv)", "unknown op"}},
		{"linear without weight", `{"name":"a","input_features":1,"layers":[{"op":"linear"}]}`, []string{"layer 0 (linear)", "no weight"}},
		{"linear with eps", `{"name":"a","input_features":1,"layers":[{"op":"linear","weight":"w","eps":1}]}`, []string{"layer 0 (linear)", "eps"}},
		{"gelu with weight", `{"name":"a","input_features":1,"layers":[{"op":"gelu","weight":"w"}]}`, []string{"layer 0 (gelu)", `"w"`}},
		{"softmax with bias", `{"name":"a","input_features":1,"layers":[{"op":"softmax","bias":"b"}]}`, []string{"layer 0 (softmax)", `"b"`}},
		{"layernorm without bias", `{"name":"a","input_features":1,"layers":[{"op":"layernorm","weight":"w"}]}`, []string{"layer 0 (layernorm)", "no bias"}},
		{"rmsnorm with bias", `{"name":"a","input_features":1,"layers":[{"op":"rmsnorm","weight":"w","bias":"b"}]}`, []string{"layer 0 (rmsnorm)", `"b"`}},
		{"zero eps", `{"name":"a","input_features":1,"layers":[{"op":"rmsnorm","weight":"w","eps":0}]}`, []string{"layer 0 (rmsnorm)", "eps 0"}},
		{"negative eps", `{"name":"a","input_features":1,"layers":[{"op":"layernorm","weight":"w","bias":"b","eps":-1e-5}]}`, []string{"layer 0 (layernorm)", "eps -1e-05"}},
		{"weight is bias", `{"name":"a","input_features":1,"layers":[{"op":"linear","weight":"w","bias":"w"}]}`, []string{"layer 0 (linear)", `"w"`}},
		{"tensor used twice", `{"name":"a","input_features":1,"layers":[{"op":"linear","weight":"w"},{"op":"linear","weight":"w"}]}`, []string{"layer 1 (linear)", `"w"`, "layer 0"}},
		{"zero max error", `{"name":"a","input_features":1,` + layers + `,"quality":{"max_error":0}}`, []string{"max_error 0"}},
		{"max error above 1", `{"name":"a","input_features":1,` + layers + `,"quality":{"max_error":2}}`, []string{"max_error 2"}},
		{"kl on a tensor model", `{"name":"a","input_features":1,` + layers + `,"quality":{"metric":"kl"}}`, []string{`quality.metric "kl"`, "rel_l2"}},
		{"empty ladder", `{"name":"a","input_features":1,` + layers + `,"precision":{"ladder":[]}}`, []string{"empty"}},
		{"unknown format", `{"name":"a","input_features":1,` + layers + `,"precision":{"ladder":["fp32","int8"]}}`, []string{"ladder[1]", "int8"}},
		{"auto on ladder", `{"name":"a","input_features":1,` + layers + `,"precision":{"ladder":["fp32","auto"]}}`, []string{"ladder[1]", "auto"}},
		{"duplicate format", `{"name":"a","input_features":1,` + layers + `,"precision":{"ladder":["fp32","bf16","bf16"]}}`, []string{"ladder[2]", "ladder[1]"}},
		{"ladder not from fp32", `{"name":"a","input_features":1,` + layers + `,"precision":{"ladder":["bf16","fp32"]}}`, []string{"starts with bf16"}},
		{"initial off ladder", `{"name":"a","input_features":1,` + layers + `,"precision":{"initial":"fp4","ladder":["fp32","bf16"]}}`, []string{"initial fp4"}},
		{"initial unknown", `{"name":"a","input_features":1,` + layers + `,"precision":{"initial":"fp64"}}`, []string{"initial", "fp64"}},
		{"initial auto", `{"name":"a","input_features":1,` + layers + `,"precision":{"initial":"auto"}}`, []string{"initial", "auto"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.ParseManifest([]byte(tc.json))
			if !errors.Is(err, model.ErrInvalidManifest) {
				t.Fatalf("got error %v; want %v", err, model.ErrInvalidManifest)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

func TestParseManifestFP16Ladder(t *testing.T) {
	// A model may put fp16 in place of bf16.
	m, err := model.ParseManifest([]byte(`{"name":"a","input_features":1,"layers":[{"op":"relu"}],
		"precision":{"initial":"fp16","ladder":["fp32","tf32","fp16","fp8"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Precision.Initial; got != "fp16" {
		t.Errorf("initial %q; want fp16", got)
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"demo", true},
		{"A-b_9", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"a.b", false},
		{"a b", false},
		{"a*", false},
		{"a>", false},
		{"a/b", false},
		{"é", false},
	} {
		if got := model.ValidName(tc.name); got != tc.want {
			t.Errorf("ValidName(%q) = %v; want %v", tc.name, got, tc.want)
		}
	}
}
