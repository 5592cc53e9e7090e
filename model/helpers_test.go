package model_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
)

// tensor returns an F32 tensor of the given shape filled with small
// values, exact in F32, F16 and BF16.
func tensor(name string, shape ...int) *model.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	t := &model.Tensor{Name: name, DType: model.DTypeF32, Shape: shape, Data: make([]float32, n)}
	for i := range t.Data {
		t.Data[i] = float32(i%7-3) / 8
	}
	return t
}

// demoManifest is a valid manifest using every op, for input width 8:
// linear 8→6 (bias), gelu, layernorm, linear 6→4 (no bias), rmsnorm,
// relu, silu, tanh, softmax.
func demoManifest() *model.Manifest {
	eps := 1e-5
	maxErr := 0.05
	return &model.Manifest{
		Name:          "demo",
		Version:       "1",
		InputFeatures: 8,
		Layers: []model.ManifestLayer{
			{Op: model.Linear, Weight: "l0.weight", Bias: "l0.bias"},
			{Op: model.GELU},
			{Op: model.LayerNorm, Weight: "ln.weight", Bias: "ln.bias", Eps: &eps},
			{Op: model.Linear, Weight: "l1.weight"},
			{Op: model.RMSNorm, Weight: "rn.weight"},
			{Op: model.ReLU},
			{Op: model.SiLU},
			{Op: model.Tanh},
			{Op: model.Softmax},
		},
		Quality:   &model.ManifestQuality{MaxError: &maxErr},
		Precision: &model.ManifestPrecision{Initial: "bf16", Ladder: []string{"fp32", "tf32", "bf16", "fp8"}},
	}
}

// demoTensors are the tensors demoManifest names.
func demoTensors() []*model.Tensor {
	return []*model.Tensor{
		tensor("l0.weight", 6, 8), tensor("l0.bias", 6),
		tensor("ln.weight", 6), tensor("ln.bias", 6),
		tensor("l1.weight", 4, 6),
		tensor("rn.weight", 4),
	}
}

// writeModel writes a model directory dir holding manifest (a
// *model.Manifest, or raw JSON as a string or []byte) and weights (tensors,
// or raw safetensors bytes), and returns dir.
func writeModel(t *testing.T, dir string, manifest, weights any) string {
	t.Helper()
	var mb []byte
	switch m := manifest.(type) {
	case string:
		mb = []byte(m)
	case []byte:
		mb = m
	default:
		var err error
		if mb, err = json.MarshalIndent(m, "", "  "); err != nil {
			t.Fatal(err)
		}
	}
	var wb []byte
	switch w := weights.(type) {
	case []byte:
		wb = w
	case []*model.Tensor:
		var buf bytes.Buffer
		if err := model.WriteSafetensors(&buf, w); err != nil {
			t.Fatal(err)
		}
		wb = buf.Bytes()
	default:
		t.Fatalf("writeModel: weights of type %T", weights)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, model.ManifestFile), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, model.WeightsFile), wb, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rawSafetensors builds a safetensors file from a header (JSON text, used
// as is) and a buffer, so that tests can write files WriteSafetensors
// refuses to.
func rawSafetensors(header string, buf []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, buf...)
}

// sameTensor reports whether a and b have the same name, dtype, shape and
// bit-identical data.
func sameTensor(a, b *model.Tensor) bool {
	if a.Name != b.Name || a.DType != b.DType || len(a.Shape) != len(b.Shape) || len(a.Data) != len(b.Data) {
		return false
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	for i := range a.Data {
		if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
			return false
		}
	}
	return true
}

// sameModel reports, as a list of differences, whether a and b are equal:
// every field, layer and weight bit.
func sameModel(a, b *model.Model) []string {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	if a.Name != b.Name || a.Version != b.Version || a.InputFeatures != b.InputFeatures || a.OutputFeatures != b.OutputFeatures {
		add("header: got %q %q %d→%d; want %q %q %d→%d", b.Name, b.Version, b.InputFeatures, b.OutputFeatures, a.Name, a.Version, a.InputFeatures, a.OutputFeatures)
	}
	if a.Quality != b.Quality {
		add("quality: got %+v; want %+v", b.Quality, a.Quality)
	}
	if a.Precision.Initial != b.Precision.Initial || !slices.Equal(a.Precision.Ladder, b.Precision.Ladder) {
		add("precision: got %+v; want %+v", b.Precision, a.Precision)
	}
	if len(a.Layers) != len(b.Layers) {
		add("got %d layers; want %d", len(b.Layers), len(a.Layers))
		return diffs
	}
	for i := range a.Layers {
		la, lb := a.Layers[i], b.Layers[i]
		if la.Op != lb.Op || la.In != lb.In || la.Out != lb.Out || la.Eps != lb.Eps {
			add("layer %d: got %s %d→%d eps %v; want %s %d→%d eps %v", i, lb.Op, lb.In, lb.Out, lb.Eps, la.Op, la.In, la.Out, la.Eps)
		}
		for _, p := range [][2]*model.Tensor{{la.Weight, lb.Weight}, {la.Bias, lb.Bias}} {
			switch {
			case (p[0] == nil) != (p[1] == nil):
				add("layer %d: got tensor %v; want %v", i, p[1], p[0])
			case p[0] != nil && !sameTensor(p[0], p[1]):
				add("layer %d: tensor %q differs", i, p[0].Name)
			}
		}
	}
	return diffs
}
