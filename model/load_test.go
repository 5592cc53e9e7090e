package model_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func TestLoad(t *testing.T) {
	dir := writeModel(t, filepath.Join(t.TempDir(), "other-dir-name"), demoManifest(), demoTensors())
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Name, "demo"; got != want { // the manifest's name wins
		t.Errorf("name %q; want %q", got, want)
	}
	if m.InputFeatures != 8 || m.OutputFeatures != 4 {
		t.Errorf("features %d→%d; want 8→4", m.InputFeatures, m.OutputFeatures)
	}
	wantIO := [][2]int{{8, 6}, {6, 6}, {6, 6}, {6, 4}, {4, 4}, {4, 4}, {4, 4}, {4, 4}, {4, 4}}
	for i, l := range m.Layers {
		if l.In != wantIO[i][0] || l.Out != wantIO[i][1] {
			t.Errorf("layer %d (%s): %d→%d; want %d→%d", i, l.Op, l.In, l.Out, wantIO[i][0], wantIO[i][1])
		}
	}
	if l := m.Layers[0]; l.Weight.Name != "l0.weight" || l.Bias.Name != "l0.bias" {
		t.Errorf("layer 0 tensors %q %q", l.Weight.Name, l.Bias.Name)
	}
	if l := m.Layers[3]; l.Bias != nil {
		t.Errorf("layer 3 bias %v; want none", l.Bias)
	}
	if got, want := m.Layers[4].Eps, model.DefaultRMSNormEps; got != want {
		t.Errorf("rmsnorm eps %v; want %v", got, want)
	}
	if got, want := m.Quality.MaxError, 0.05; got != want {
		t.Errorf("max error %v; want %v", got, want)
	}
	if got, want := m.Precision, (model.PrecisionConfig{Initial: precision.BF16, Ladder: []precision.Format{"fp32", "tf32", "bf16", "fp8"}}); got.Initial != want.Initial || !slices.Equal(got.Ladder, want.Ladder) {
		t.Errorf("precision %+v; want %+v", got, want)
	}

	mb, _ := os.ReadFile(filepath.Join(dir, model.ManifestFile))
	wb, _ := os.ReadFile(filepath.Join(dir, model.WeightsFile))
	sum := sha256.Sum256(append(mb, wb...))
	if got, want := m.Digest, hex.EncodeToString(sum[:]); got != want {
		t.Errorf("digest %s; want %s", got, want)
	}
	if got, want := m.Params(), int64(6*8+6+6+6+4*6+4); got != want {
		t.Errorf("params %d; want %d", got, want)
	}
	if got, want := m.WeightBytes(), 4*m.Params(); got != want {
		t.Errorf("weight bytes %d; want %d", got, want)
	}
}

func TestWeightBytesByDType(t *testing.T) {
	ts := demoTensors()
	ts[0].DType = model.DTypeF16  // l0.weight: 48
	ts[4].DType = model.DTypeBF16 // l1.weight: 24
	m, err := model.Load(writeModel(t, t.TempDir(), demoManifest(), ts))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.WeightBytes(), int64(2*48+2*24+4*(6+6+6+4)); got != want {
		t.Errorf("weight bytes %d; want %d", got, want)
	}
}

func TestLoadFS(t *testing.T) {
	src := writeModel(t, t.TempDir(), demoManifest(), demoTensors())
	mb, _ := os.ReadFile(filepath.Join(src, model.ManifestFile))
	wb, _ := os.ReadFile(filepath.Join(src, model.WeightsFile))
	fsys := fstest.MapFS{
		"models/demo/model.json":        {Data: mb},
		"models/demo/model.safetensors": {Data: wb},
		"models/bad/model.json":         {Data: []byte("{")},
		"models/bad/model.safetensors":  {Data: wb},
	}
	want, err := model.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := model.LoadFS(fsys, "models/demo")
	if err != nil {
		t.Fatal(err)
	}
	if d := sameModel(want, got); d != nil {
		t.Errorf("LoadFS differs from Load: %v", d)
	}
	if got.Digest != want.Digest {
		t.Errorf("digest %s; want %s", got.Digest, want.Digest)
	}
	_, err = model.LoadFS(fsys, "models/bad")
	if !errors.Is(err, model.ErrInvalidManifest) || !strings.Contains(err.Error(), "models/bad/model.json") {
		t.Errorf("got error %v; want %v naming models/bad/model.json", err, model.ErrInvalidManifest)
	}

	all, err := model.LoadAllFS(fsys, "models")
	if !errors.Is(err, model.ErrInvalidManifest) || !strings.Contains(err.Error(), "models/bad/model.json") {
		t.Errorf("LoadAllFS: got error %v; want %v naming models/bad/model.json", err, model.ErrInvalidManifest)
	}
	if len(all) != 1 || all[0].Digest != want.Digest {
		t.Errorf("LoadAllFS loaded %v; want the demo model", all)
	}
}

func TestLoadMissingFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := model.Load(dir)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, model.ManifestFile)) {
		t.Errorf("no files: got error %v; want fs.ErrNotExist naming model.json", err)
	}
	writeModel(t, dir, demoManifest(), demoTensors())
	os.Remove(filepath.Join(dir, model.WeightsFile))
	_, err = model.Load(dir)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, model.WeightsFile)) {
		t.Errorf("no weights: got error %v; want fs.ErrNotExist naming model.safetensors", err)
	}
}

// TestLoadErrors writes a variant of the demo model for each rule and checks
// that loading it fails with the right sentinel and names the file, the
// layer and the tensor.
func TestLoadErrors(t *testing.T) {
	const (
		manifestFile = "model.json"
		weightsFile  = "model.safetensors"
	)
	byName := func(ts []*model.Tensor, name string) *model.Tensor {
		for _, x := range ts {
			if x.Name == name {
				return x
			}
		}
		panic(name)
	}
	for _, tc := range []struct {
		name     string
		manifest func(m *model.Manifest)               // edits the demo manifest
		tensors  func([]*model.Tensor) []*model.Tensor // edits the demo tensors
		raw      []byte                                // replaces the weights file
		wantErr  error
		want     []string // substrings of the error besides the directory
	}{
		{
			name:     "missing tensor",
			manifest: func(m *model.Manifest) { m.Layers[3].Weight = "l9.weight" },
			wantErr:  model.ErrTensorMismatch,
			want:     []string{manifestFile, weightsFile, "layer 3 (linear)", `"l9.weight"`, "not in"},
		},
		{
			name:    "linear in is not the running width",
			tensors: func(ts []*model.Tensor) []*model.Tensor { ts[4] = tensor("l1.weight", 4, 5); return ts },
			wantErr: model.ErrTensorMismatch,
			want:    []string{manifestFile, "layer 3 (linear)", `"l1.weight"`, "[4 5]", "want [out 6]"},
		},
		{
			name:     "first linear in is not input_features",
			manifest: func(m *model.Manifest) { m.InputFeatures = 9 },
			wantErr:  model.ErrTensorMismatch,
			want:     []string{manifestFile, "layer 0 (linear)", `"l0.weight"`, "[6 8]", "want [out 9]"},
		},
		{
			name:    "linear weight is 1-D",
			tensors: func(ts []*model.Tensor) []*model.Tensor { ts[0] = tensor("l0.weight", 48); return ts },
			wantErr: model.ErrTensorMismatch,
			want:    []string{"layer 0 (linear)", `"l0.weight"`, "[48]"},
		},
		{
			name:    "linear out is zero",
			tensors: func(ts []*model.Tensor) []*model.Tensor { ts[0] = tensor("l0.weight", 0, 8); return ts },
			wantErr: model.ErrTensorMismatch,
			want:    []string{"layer 0 (linear)", `"l0.weight"`, "[0 8]"},
		},
		{
			name:    "linear bias",
			tensors: func(ts []*model.Tensor) []*model.Tensor { ts[1] = tensor("l0.bias", 5); return ts },
			wantErr: model.ErrTensorMismatch,
			want:    []string{"layer 0 (linear)", `"l0.bias"`, "[5]", "want [6]"},
		},
		{
			name:    "layernorm weight",
			tensors: func(ts []*model.Tensor) []*model.Tensor { ts[2] = tensor("ln.weight", 8); return ts },
			wantErr: model.ErrTensorMismatch,
			want:    []string{"layer 2 (layernorm)", `"ln.weight"`, "want [6]"},
		},
		{
			name:    "layernorm bias",
			tensors: func(ts []*model.Tensor) []*model.Tensor { ts[3] = tensor("ln.bias", 1, 6); return ts },
			wantErr: model.ErrTensorMismatch,
			want:    []string{"layer 2 (layernorm)", `"ln.bias"`, "[1 6]"},
		},
		{
			name:    "rmsnorm weight",
			tensors: func(ts []*model.Tensor) []*model.Tensor { ts[5] = tensor("rn.weight", 6); return ts },
			wantErr: model.ErrTensorMismatch,
			want:    []string{"layer 4 (rmsnorm)", `"rn.weight"`, "want [4]"},
		},
		{
			name:    "unused tensor",
			tensors: func(ts []*model.Tensor) []*model.Tensor { return append(ts, tensor("stray", 3)) },
			wantErr: model.ErrTensorMismatch,
			want:    []string{weightsFile, `"stray"`, "no layer"},
		},
		{
			name:     "unknown op",
			manifest: func(m *model.Manifest) { m.Layers[5].Op = "conv2d" },
			wantErr:  model.ErrInvalidManifest,
			want:     []string{manifestFile, "layer 5 (conv2d)", "unknown op"},
		},
		{
			name:     "invalid name",
			manifest: func(m *model.Manifest) { m.Name = "demo.v2" },
			wantErr:  model.ErrInvalidManifest,
			want:     []string{manifestFile, `"demo.v2"`},
		},
		{
			name:     "empty name",
			manifest: func(m *model.Manifest) { m.Name = "" },
			wantErr:  model.ErrInvalidManifest,
			want:     []string{manifestFile, `name ""`},
		},
		{
			name:     "no layers",
			manifest: func(m *model.Manifest) { m.Layers = nil },
			wantErr:  model.ErrInvalidManifest,
			want:     []string{manifestFile, "no layers"},
		},
		{
			name:     "non-positive input_features",
			manifest: func(m *model.Manifest) { m.InputFeatures = -8 },
			wantErr:  model.ErrInvalidManifest,
			want:     []string{manifestFile, "input_features -8"},
		},
		{
			name:     "bad ladder",
			manifest: func(m *model.Manifest) { m.Precision.Ladder = []string{"fp32", "fp9"} },
			wantErr:  model.ErrInvalidManifest,
			want:     []string{manifestFile, "ladder[1]", "fp9"},
		},
		{
			name:    "unsupported dtype",
			raw:     rawSafetensors(`{"l0.weight":{"dtype":"F64","shape":[6,8],"data_offsets":[0,384]}}`, make([]byte, 384)),
			wantErr: model.ErrInvalidSafetensors,
			want:    []string{weightsFile, `"l0.weight"`, `"F64"`},
		},
		{
			name: "non-finite weight",
			tensors: func(ts []*model.Tensor) []*model.Tensor {
				byName(ts, "ln.bias").Data[2] = float32(math.Inf(1))
				return ts
			},
			wantErr: model.ErrInvalidSafetensors,
			want:    []string{weightsFile, `"ln.bias"`, "element 2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mf := demoManifest()
			if tc.manifest != nil {
				tc.manifest(mf)
			}
			var weights any = demoTensors()
			if tc.tensors != nil {
				weights = tc.tensors(demoTensors())
			}
			if tc.raw != nil {
				weights = tc.raw
			}
			if ts, ok := weights.([]*model.Tensor); ok && tc.wantErr == model.ErrInvalidSafetensors {
				// WriteSafetensors refuses non-finite values: write F32 by hand.
				weights = rawF32(t, ts)
			}
			dir := writeModel(t, filepath.Join(t.TempDir(), "m"), mf, weights)
			_, err := model.Load(dir)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v; want %v", err, tc.wantErr)
			}
			for _, s := range append(tc.want, dir) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

// rawF32 encodes tensors as an F32 safetensors file without checking that
// their values are finite.
func rawF32(t *testing.T, ts []*model.Tensor) []byte {
	t.Helper()
	clean := make([]*model.Tensor, len(ts))
	var bad []int // indices of non-finite values, with their tensors
	for i, x := range ts {
		c := *x
		c.Data = slices.Clone(x.Data)
		for j, v := range c.Data {
			if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) {
				c.Data[j] = 12345 // a marker to patch after writing
				bad = append(bad, i)
			}
		}
		clean[i] = &c
	}
	if len(bad) == 0 {
		t.Fatal("rawF32: no non-finite values")
	}
	var buf strings.Builder
	if err := model.WriteSafetensors(&buf, clean); err != nil {
		t.Fatal(err)
	}
	marker := string(le32(12345))
	return []byte(strings.ReplaceAll(buf.String(), marker, string(le32(float32(math.Inf(1))))))
}

func le32(v float32) []byte {
	b := math.Float32bits(v)
	return []byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24)}
}

func TestLoadAll(t *testing.T) {
	root := t.TempDir()
	writeModel(t, filepath.Join(root, "b-dir"), demoManifest(), demoTensors())
	other := demoManifest()
	other.Name = "alpha"
	writeModel(t, filepath.Join(root, "z-dir"), other, demoTensors())
	// Not models: a file, a directory without model.json, a hidden directory
	// (as Kubernetes volumes have), even one holding a broken model.
	os.WriteFile(filepath.Join(root, "README"), []byte("hi"), 0o644)
	os.Mkdir(filepath.Join(root, "empty"), 0o755)
	writeModel(t, filepath.Join(root, "..data"), "{", demoTensors())
	// A causal language model, even one whose optional model.json is not a
	// tensor model's manifest, is package lm's to load.
	llm := writeModel(t, filepath.Join(root, "llm"), `{"name":"llm","quality":{"metric":"kl"}}`, demoTensors())
	os.WriteFile(filepath.Join(llm, model.ConfigFile), []byte(`{"model_type":"llama"}`), 0o644)
	if !model.IsCausalLM(llm) || model.IsCausalLM(filepath.Join(root, "b-dir")) {
		t.Errorf("IsCausalLM(llm), IsCausalLM(b-dir) = %v, %v; want true, false", model.IsCausalLM(llm), model.IsCausalLM(filepath.Join(root, "b-dir")))
	}
	// A symbolic link to a model directory is followed.
	third := demoManifest()
	third.Name = "linked"
	target := writeModel(t, filepath.Join(t.TempDir(), "elsewhere"), third, demoTensors())
	if err := os.Symlink(target, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}

	models, err := model.LoadAll(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range models {
		names = append(names, m.Name)
	}
	if want := []string{"alpha", "demo", "linked"}; !slices.Equal(names, want) {
		t.Errorf("loaded %v; want %v", names, want)
	}

	// A bad model is named, and the good ones still load.
	bad := writeModel(t, filepath.Join(root, "broken"), `{"name":"broken","input_features":8,"layers":[{"op":"nope"}]}`, demoTensors())
	models, err = model.LoadAll(root)
	if !errors.Is(err, model.ErrInvalidManifest) || !strings.Contains(err.Error(), bad) {
		t.Errorf("got error %v; want %v naming %s", err, model.ErrInvalidManifest, bad)
	}
	if len(models) != 3 {
		t.Errorf("loaded %d models beside the bad one; want 3", len(models))
	}
	os.RemoveAll(bad)

	// Two directories with one name: an error naming both, and neither loads.
	writeModel(t, filepath.Join(root, "again"), demoManifest(), demoTensors())
	models, err = model.LoadAll(root)
	if !errors.Is(err, model.ErrDuplicateModel) {
		t.Fatalf("got error %v; want %v", err, model.ErrDuplicateModel)
	}
	for _, s := range []string{`"demo"`, filepath.Join(root, "again"), filepath.Join(root, "b-dir")} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	if len(models) != 2 {
		t.Errorf("loaded %d models; want 2 (alpha, linked)", len(models))
	}
}

func TestLoadAllMissingRoot(t *testing.T) {
	_, err := model.LoadAll(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got error %v; want fs.ErrNotExist", err)
	}
}
