package model_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
)

func TestSynthSaveLoadRoundTrip(t *testing.T) {
	for _, c := range []model.SynthConfig{
		{Name: "f32", Dims: []int{64, 256, 256, 10}, Seed: 1},
		{Name: "f16", Dims: []int{32, 48, 8}, Seed: 2, DType: model.DTypeF16, Act: model.ReLU, Softmax: true},
		{Name: "bf16", Dims: []int{16, 24, 24, 4}, Seed: 3, DType: model.DTypeBF16, Act: model.SiLU, Norm: true, MaxError: 0.1},
		{Name: "tanh", Dims: []int{5, 3}, Seed: -7, Act: model.Tanh},
	} {
		t.Run(c.Name, func(t *testing.T) {
			m, err := model.Synth(c)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "nested", c.Name)
			if err := model.Save(m, dir); err != nil {
				t.Fatal(err)
			}
			back, err := model.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if d := sameModel(m, back); d != nil {
				t.Errorf("Load(Save(m)) differs from m:\n%s", strings.Join(d, "\n"))
			}
			if back.Digest != m.Digest {
				t.Errorf("digest after reload %s; want %s", back.Digest, m.Digest)
			}
			// Saving the loaded model again writes the same bytes.
			dir2 := filepath.Join(t.TempDir(), "again")
			if err := model.Save(back, dir2); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{model.ManifestFile, model.WeightsFile} {
				a, _ := os.ReadFile(filepath.Join(dir, f))
				b, _ := os.ReadFile(filepath.Join(dir2, f))
				if string(a) != string(b) {
					t.Errorf("%s differs between saves", f)
				}
			}
			// No temporary files are left behind.
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("dir holds %d entries; want 2", len(entries))
			}
		})
	}
}

func TestSynthStructure(t *testing.T) {
	m, err := model.Synth(model.SynthConfig{Name: "s", Dims: []int{300, 20, 20, 3}, Seed: 9, Norm: true, Softmax: true})
	if err != nil {
		t.Fatal(err)
	}
	var ops []model.Op
	for _, l := range m.Layers {
		ops = append(ops, l.Op)
	}
	want := []model.Op{model.Linear, model.GELU, model.LayerNorm, model.Linear, model.GELU, model.LayerNorm, model.Linear, model.Softmax}
	if !slices.Equal(ops, want) {
		t.Errorf("ops %v; want %v", ops, want)
	}
	if m.InputFeatures != 300 || m.OutputFeatures != 3 {
		t.Errorf("features %d→%d; want 300→3", m.InputFeatures, m.OutputFeatures)
	}
	if got, want := m.Quality.MaxError, model.DefaultMaxError; got != want {
		t.Errorf("max error %v; want %v", got, want)
	}
	if got, want := m.Params(), int64(300*20+20+2*20+20*20+20+2*20+20*3+3); got != want {
		t.Errorf("params %d; want %d", got, want)
	}

	// The first layer's weights: about N(0, 1/300), but with 3 outlier
	// input columns (1% of 300) whose entries are 10 to 30 times larger.
	w := m.Layers[0].Weight
	in, out := w.Shape[1], w.Shape[0]
	colRMS := make([]float64, in)
	for r := range out {
		for c := range in {
			v := float64(w.Data[r*in+c])
			colRMS[c] += v * v / float64(out)
		}
	}
	sorted := slices.Clone(colRMS)
	slices.Sort(sorted)
	median := math.Sqrt(sorted[in/2])
	if std := 1 / math.Sqrt(300); median < std/2 || median > 2*std {
		t.Errorf("median column RMS %v; want about %v", median, std)
	}
	var outliers int
	for _, ms := range colRMS {
		if math.Sqrt(ms) > 5*median {
			outliers++
		}
	}
	if outliers != 3 {
		t.Errorf("%d outlier columns; want 3", outliers)
	}
}

func TestSynthDeterminism(t *testing.T) {
	c := model.SynthConfig{Name: "d", Dims: []int{16, 32, 4}, Seed: 42}
	a, err := model.Synth(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := model.Synth(c)
	if a.Digest != b.Digest {
		t.Errorf("same seed: digests %s and %s differ", a.Digest, b.Digest)
	}
	if d := sameModel(a, b); d != nil {
		t.Errorf("same seed: models differ: %v", d)
	}
	c.Seed = 43
	other, _ := model.Synth(c)
	if other.Digest == a.Digest {
		t.Error("different seeds gave the same digest")
	}
	if len(a.Digest) != 64 {
		t.Errorf("digest %q is not 64 hex digits", a.Digest)
	}
}

func TestSynthDTypeExact(t *testing.T) {
	for _, dtype := range []string{model.DTypeF16, model.DTypeBF16} {
		m, err := model.Synth(model.SynthConfig{Name: "x", Dims: []int{8, 8}, DType: dtype})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range m.Tensors() {
			if x.DType != dtype {
				t.Errorf("%s: tensor %q dtype %s", dtype, x.Name, x.DType)
			}
			for i, v := range x.Data {
				if model.RoundToDType(v, dtype) != v {
					t.Fatalf("%s: tensor %q element %d (%v) is not a %s value", dtype, x.Name, i, v, dtype)
				}
			}
		}
		if got, want := m.WeightBytes(), 2*m.Params(); got != want {
			t.Errorf("%s: weight bytes %d; want %d", dtype, got, want)
		}
	}
}

func TestSynthConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    model.SynthConfig
		want string
	}{
		{"no name", model.SynthConfig{Dims: []int{2, 2}}, "name"},
		{"bad name", model.SynthConfig{Name: "a b", Dims: []int{2, 2}}, `"a b"`},
		{"one dim", model.SynthConfig{Name: "a", Dims: []int{2}}, "dims"},
		{"zero dim", model.SynthConfig{Name: "a", Dims: []int{2, 0}}, "dims[1]"},
		{"act", model.SynthConfig{Name: "a", Dims: []int{2, 2}, Act: model.Softmax}, `"softmax"`},
		{"dtype", model.SynthConfig{Name: "a", Dims: []int{2, 2}, DType: "F64"}, `"F64"`},
		{"max error", model.SynthConfig{Name: "a", Dims: []int{2, 2}, MaxError: -1}, "max error"},
		{"too big", model.SynthConfig{Name: "a", Dims: []int{1 << 24, 1 << 24}}, "parameters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.Synth(tc.c)
			if !errors.Is(err, model.ErrInvalidConfig) {
				t.Fatalf("got error %v; want %v", err, model.ErrInvalidConfig)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %s", err, tc.want)
			}
		})
	}
}

func TestSaveRefusesInvalidModel(t *testing.T) {
	m, err := model.Synth(model.SynthConfig{Name: "a", Dims: []int{4, 3}})
	if err != nil {
		t.Fatal(err)
	}
	m.Layers[0].Weight.Shape = []int{3, 5} // no longer matches the 4 inputs
	m.Layers[0].Weight.Data = make([]float32, 15)
	dir := filepath.Join(t.TempDir(), "out")
	err = model.Save(m, dir)
	if !errors.Is(err, model.ErrTensorMismatch) {
		t.Fatalf("got error %v; want %v", err, model.ErrTensorMismatch)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save wrote %s for an invalid model", dir)
	}
}
