package cpu_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/internal/lmfixtures"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// Bounds on the CPU's fp32 logits against transformers' fp32 logits. Both
// compute in float32 (the CPU with some float64 statistics), so they differ
// by float32 rounding, compounded over two layers: about 1e-7 relative in
// the tests against the float64 reference.
const (
	goldenRelL2  = 1e-5
	goldenMaxRel = 5e-5
)

// fixture is a model's fixture.json.
type fixture struct {
	Name        string  `json:"name"`
	DType       string  `json:"dtype"`
	InputIDs    []int32 `json:"input_ids"`
	LogitsShape []int   `json:"logits_shape"`
	Greedy      []int32 `json:"greedy"`
	MinMargin   float64 `json:"greedy_min_margin"`
	Torch       string  `json:"torch"`
	Trans       string  `json:"transformers"`
}

// TestGoldenTransformers loads each checkpoint transformers saved, checks
// the CPU's fp32 logits at every position against transformers', and that
// greedy generation gives transformers' tokens.
func TestGoldenTransformers(t *testing.T) {
	root := lmfixtures.Unpack(t) // transformers' checkpoints, fp32 logits and greedy continuations
	b := newBackend(t, 0)
	for _, name := range []string{"llama", "qwen2", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, name)
			var fx fixture
			data, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &fx); err != nil {
				t.Fatal(err)
			}
			m, err := lm.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			want, err := readF32(filepath.Join(dir, "logits.f32"))
			if err != nil {
				t.Fatal(err)
			}
			n, vocab := len(fx.InputIDs), m.Config.Vocab
			if !slices.Equal(fx.LogitsShape, []int{n, vocab}) || len(want) != n*vocab {
				t.Fatalf("logits of shape %v (%d values); want [%d %d]", fx.LogitsShape, len(want), n, vocab)
			}
			t.Logf("transformers %s, torch %s, weights %s; greedy path's smallest top-2 gap %.3g", fx.Trans, fx.Torch, fx.DType, fx.MinMargin)

			ref := make([]float64, len(want))
			for i, v := range want {
				ref[i] = float64(v)
			}
			got := kt.NewSession(t, b, m, precision.FP32, 8).DecodeLogits(fx.InputIDs)
			e := kt.RelL2(got, ref)
			mr, at := kt.MaxRel(got, ref)
			t.Logf("CPU fp32 vs transformers: relative L2 %.3g, largest %.3g", e, mr)
			if e > goldenRelL2 || mr > goldenMaxRel {
				t.Errorf("CPU fp32 logits differ from transformers' by %.3g (relative L2; want ≤ %g), at most %.3g at position %d token %d (want ≤ %g)",
					e, goldenRelL2, mr, at/vocab, at%vocab, goldenMaxRel)
			}
			f64, err := cpu.LMReference(m, fx.InputIDs)
			if err != nil {
				t.Fatal(err)
			}
			if e := kt.RelL2(want, f64); e > goldenRelL2 {
				t.Errorf("transformers' logits differ from the float64 reference by %.3g; want ≤ %g", e, goldenRelL2)
			}

			gen := kt.NewSession(t, b, m, precision.FP32, 8).Generate(fx.InputIDs, len(fx.Greedy))
			if !slices.Equal(gen, fx.Greedy) {
				t.Errorf("greedy continuation\n got %v\nwant %v (transformers' generate)", gen, fx.Greedy)
			}
		})
	}
}

// readF32 reads a file of little-endian float32s.
func readF32(path string) ([]float32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data)%4 != 0 {
		return nil, errors.New(path + ": not a whole number of float32s")
	}
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out, nil
}
