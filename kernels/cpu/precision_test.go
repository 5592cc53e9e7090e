package cpu_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// synthMLP returns the 512→2048→512 gelu model the precision tests and
// benchmarks use, and rows rows of input: N(0, 1) with a few outlier
// columns scaled by 10, as real activations have.
func synthMLP(t testing.TB, rows int) (*model.Model, []float32) {
	t.Helper()
	m, err := synthModel()
	if err != nil {
		t.Fatalf("Synth: %v", err)
	}
	r := rand.New(rand.NewPCG(8, 8))
	in := kt.RandInput(r, rows*m.InputFeatures, 0, 1)
	for row := range rows {
		for _, c := range []int{3, 77, 200, 411} {
			in[row*m.InputFeatures+c] *= 10
		}
	}
	return m, in
}

// synthModel synthesises the model once per test binary: it is immutable.
var synthModel = sync.OnceValues(func() (*model.Model, error) {
	return model.Synth(model.SynthConfig{Name: "mlp", Dims: []int{512, 2048, 512}, Seed: 1})
})

// parallelReference is Reference computed on chunks of rows concurrently,
// to keep the float64 loops quick under -race.
func parallelReference(t testing.TB, m *model.Model, in []float32, rows int) []float64 {
	t.Helper()
	const chunk = 8
	out := make([]float64, rows*m.OutputFeatures)
	errs := make([]error, (rows+chunk-1)/chunk)
	var wg sync.WaitGroup
	for c := range errs {
		wg.Go(func() {
			lo, hi := c*chunk, min((c+1)*chunk, rows)
			y, err := cpu.Reference(m, kt.Widen(in[lo*m.InputFeatures:hi*m.InputFeatures]), hi-lo)
			errs[c] = err
			copy(out[lo*m.OutputFeatures:], y)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Reference: %v", err)
	}
	return out
}

// errorBands are the accepted relative L2 errors against Reference of the
// 512→2048→512 model at each precision, about 3× either side of what was
// measured (in the comment; amd64, Go 1.26).
var errorBands = map[precision.Format][2]float64{
	precision.FP32: {0, 1e-5},        // measured 3.3e-7
	precision.TF32: {1.4e-4, 1.3e-3}, // measured 4.28e-4
	precision.FP16: {1.4e-4, 1.3e-3}, // measured 4.28e-4 (same mantissa as tf32)
	precision.BF16: {1.1e-3, 1e-2},   // measured 3.33e-3
	precision.FP8:  {1.6e-2, 1.5e-1}, // measured 4.87e-2
	precision.FP4:  {4.7e-2, 4e-1},   // measured 0.141
}

func TestPrecisionErrors(t *testing.T) {
	const rows = 64
	b := newBackend(t, 0)
	m, in := synthMLP(t, rows)
	want := parallelReference(t, m, in, rows)
	errs := map[precision.Format]float64{}
	for _, p := range precision.All {
		got, err := b.Forward(context.Background(), m, p, in, rows)
		if err != nil {
			t.Fatalf("Forward(%s): %v", p, err)
		}
		e := kt.RelL2(got, want)
		errs[p] = e
		band := errorBands[p]
		t.Logf("%-4s relative L2 error %.4g (band %g to %g)", p, e, band[0], band[1])
		if !(e >= band[0] && e <= band[1]) {
			t.Errorf("%s: relative L2 error %.3g, want in [%g, %g]", p, e, band[0], band[1])
		}
	}
	order := []precision.Format{precision.FP32, precision.TF32, precision.BF16, precision.FP8, precision.FP4}
	for i := 1; i < len(order); i++ {
		if lo, hi := order[i-1], order[i]; !(errs[lo] < errs[hi]) {
			t.Errorf("error at %s (%.3g) not below error at %s (%.3g)", lo, errs[lo], hi, errs[hi])
		}
	}
	if !(errs[precision.FP16] < errs[precision.BF16]) {
		t.Errorf("error at fp16 (%.3g) not below error at bf16 (%.3g)", errs[precision.FP16], errs[precision.BF16])
	}
}

// TestFP32Unchanged checks that fp32 converts no weights and gives the same
// bits whether or not other precisions have run on the model.
func TestFP32Unchanged(t *testing.T) {
	b := newBackend(t, 0)
	r := rand.New(rand.NewPCG(9, 9))
	m := kt.Build(r, 64, kt.Lin(100), kt.Act(model.GELU), kt.Lin(10))
	in := kt.RandInput(r, 7*64, 0, 1)
	orig := slices.Clone(in)
	before := checkAgainstReference(t, b, m, in, 7)
	if n := cpu.Quantizations(b); n != 0 {
		t.Errorf("fp32 Forward built %d weight sets, want 0", n)
	}
	for _, p := range precision.All {
		if _, err := b.Forward(context.Background(), m, p, in, 7); err != nil {
			t.Fatalf("Forward(%s): %v", p, err)
		}
		if !slices.Equal(in, orig) {
			t.Fatalf("Forward(%s) modified its input", p)
		}
	}
	after, err := b.Forward(context.Background(), m, precision.FP32, in, 7)
	if err != nil || !slices.Equal(after, before) {
		t.Errorf("fp32 result changed after other precisions ran (err %v)", err)
	}
}

func TestWeightCacheReused(t *testing.T) {
	b := newBackend(t, 0)
	r := rand.New(rand.NewPCG(10, 10))
	m := kt.Build(r, 40, kt.Lin(33), kt.Act(model.ReLU), kt.Lin(5)) // 40, 33: not multiples of 16
	in := kt.RandInput(r, 3*40, 0, 1)
	for i, p := range precision.All[1:] {
		first, err := b.Forward(context.Background(), m, p, in, 3)
		if err != nil {
			t.Fatalf("Forward(%s): %v", p, err)
		}
		if got, want := cpu.Quantizations(b), int64(i+1); got != want {
			t.Errorf("after first Forward(%s): %d weight sets built, want %d", p, got, want)
		}
		second, err := b.Forward(context.Background(), m, p, in, 3)
		if err != nil || !slices.Equal(first, second) {
			t.Errorf("second Forward(%s) = _, %v; want the first result again", p, err)
		}
		if got, want := cpu.Quantizations(b), int64(i+1); got != want {
			t.Errorf("after second Forward(%s): %d weight sets built, want %d (no re-quantization)", p, got, want)
		}
	}
	b.Evict(m)
	if _, err := b.Forward(context.Background(), m, precision.FP8, in, 3); err != nil {
		t.Fatal(err)
	}
	if got, want := cpu.Quantizations(b), int64(len(precision.All)); got != want {
		t.Errorf("after Evict and Forward(fp8): %d weight sets built, want %d", got, want)
	}
}

// TestEmulationByHand checks the emulation against operands rounded here:
// one linear layer without bias, so the fp32 product of the rounded
// operands is what Forward must return.
func TestEmulationByHand(t *testing.T) {
	b := newBackend(t, 1)
	r := rand.New(rand.NewPCG(11, 11))
	const rows, in, out = 4, 24, 3
	m := kt.Build(r, in, kt.LinNoBias(out))
	x := kt.RandInput(r, rows*in, 0, 3)
	w := m.Layers[0].Weight.Data
	fp8 := func(v []float32) []float32 { // activations: one scale per row
		q, err := precision.QuantizeFP8PerChannel(v, rows, in, 0)
		if err != nil {
			t.Fatal(err)
		}
		return q.Dequantize(nil)
	}
	fp8w := func(v []float32) []float32 {
		q, err := precision.QuantizeFP8PerChannel(v, out, in, 0)
		if err != nil {
			t.Fatal(err)
		}
		return q.Dequantize(nil)
	}
	fp4w := func(v []float32) []float32 {
		q, err := precision.QuantizeNVFP4(v, out, in)
		if err != nil {
			t.Fatal(err)
		}
		return q.Dequantize(nil)
	}
	slice := func(f func(dst, src []float32)) func([]float32) []float32 {
		return func(v []float32) []float32 { d := make([]float32, len(v)); f(d, v); return d }
	}
	cases := []struct {
		p      precision.Format
		wq, xq func([]float32) []float32
	}{
		{precision.TF32, slice(precision.RoundTF32Slice), slice(precision.RoundTF32Slice)},
		{precision.BF16, slice(precision.RoundBF16Slice), slice(precision.RoundBF16Slice)},
		{precision.FP16, slice(precision.RoundFP16Slice), slice(precision.RoundFP16Slice)},
		{precision.FP8, fp8w, fp8},
		{precision.FP4, fp4w, slice(precision.RoundBF16Slice)},
	}
	for _, c := range cases {
		got, err := b.Forward(context.Background(), m, c.p, x, rows)
		if err != nil {
			t.Fatalf("Forward(%s): %v", c.p, err)
		}
		wq, xq := c.wq(w), c.xq(x)
		for i := range rows {
			for o := range out {
				var want float64
				for k := range in {
					want += float64(xq[i*in+k]) * float64(wq[o*in+k])
				}
				if d := float64(got[i*out+o]) - want; d*d > 1e-10*(1+want*want) {
					t.Errorf("%s: y[%d,%d] = %g, want %g from the rounded operands", c.p, i, o, got[i*out+o], want)
				}
			}
		}
	}
}

func TestConcurrentMixedPrecisions(t *testing.T) {
	b := newBackend(t, 2)
	r := rand.New(rand.NewPCG(12, 12))
	m := kt.Build(r, 64, kt.Lin(96), kt.Act(model.GELU), kt.Act(model.LayerNorm), kt.Lin(48), kt.Act(model.SiLU), kt.Lin(10))
	const rows = 9
	in := kt.RandInput(r, rows*64, 0, 1)
	// Sequential results from a separate backend, so that the concurrent
	// goroutines race for the first conversion of each precision.
	seq := newBackend(t, 1)
	want := map[precision.Format][]float32{}
	for _, p := range precision.All {
		y, err := seq.Forward(context.Background(), m, p, in, rows)
		if err != nil {
			t.Fatal(err)
		}
		want[p] = y
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for g := range 12 {
		wg.Go(func() {
			for j := range 6 {
				p := precision.All[(g+j)%len(precision.All)]
				got, err := b.Forward(context.Background(), m, p, in, rows)
				if err != nil {
					errs <- err
					return
				}
				if !slices.Equal(got, want[p]) {
					errs <- fmt.Errorf("goroutine %d: %s result differs from the sequential one", g, p)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := cpu.Quantizations(b), int64(len(precision.All)-1); got != want {
		t.Errorf("%d weight sets built, want %d (one per precision below fp32)", got, want)
	}
}

func TestCapabilitiesAndConfig(t *testing.T) {
	b := newBackend(t, 0)
	if got, want := b.Capabilities(), precision.CPUCapabilities(); got != want {
		t.Errorf("Capabilities() = %v, want %v", got, want)
	}
	var _ kernels.Backend = b
	if b.FP8Margin() != 0 {
		t.Errorf("FP8Margin() = %d, want default 0", b.FP8Margin())
	}
	for _, mg := range []int{-1, precision.MaxMargin + 1} {
		if _, err := cpu.New(cpu.Config{FP8Margin: mg}); !errors.Is(err, cpu.ErrInvalidConfig) {
			t.Errorf("New(FP8Margin: %d) error = %v, want ErrInvalidConfig", mg, err)
		}
	}
	// A margin leaves headroom above each row's amax: the values lose
	// range at the bottom (more of them become E4M3 subnormals), so the
	// result changes, a little (the weights' error dominates).
	m, in := synthMLP(t, 8)
	want := parallelReference(t, m, in, 8)
	var prev []float32
	for _, mg := range []int{0, precision.MaxMargin} {
		bm, err := cpu.New(cpu.Config{FP8Margin: mg})
		if err != nil || bm.FP8Margin() != mg {
			t.Fatalf("New(FP8Margin: %d) = %v, %v", mg, bm, err)
		}
		got, err := bm.Forward(context.Background(), m, precision.FP8, in, 8)
		if err != nil {
			t.Fatal(err)
		}
		e, band := kt.RelL2(got, want), errorBands[precision.FP8]
		t.Logf("fp8 margin %d: relative L2 error %.3g", mg, e)
		if !(e >= band[0] && e <= band[1]) {
			t.Errorf("fp8 margin %d: relative L2 error %.3g, want in [%g, %g]", mg, e, band[0], band[1])
		}
		if prev != nil && slices.Equal(got, prev) {
			t.Errorf("fp8 margin %d gives the same result as margin 0", mg)
		}
		prev = got
	}
}

func TestWeightBytes(t *testing.T) {
	m, _ := synthMLP(t, 1)
	const w = 512 * 2048 * 2 // weights of the two linear layers
	const bias = 4 * (2048 + 512)
	want := map[precision.Format]int64{
		precision.FP32: 4*w + bias,
		precision.TF32: 4*w + bias,
		precision.BF16: 2*w + bias,
		precision.FP16: 2*w + bias,
		precision.FP8:  w + 4*(2048+512) + bias,
		precision.FP4:  w/2 + w/16 + 2*4 + bias,
	}
	for _, p := range precision.All {
		if got := m.WeightBytesAt(p); got != want[p] {
			t.Errorf("WeightBytes(%s) = %d, want %d", p, got, want[p])
		}
	}
	if got := m.WeightBytesAt(precision.Auto); got != 0 {
		t.Errorf("WeightBytes(auto) = %d, want 0", got)
	}
	ln := kt.Build(rand.New(rand.NewPCG(13, 13)), 8, kt.Act(model.LayerNorm), kt.Act(model.RMSNorm))
	if got, want := ln.WeightBytesAt(precision.FP8), int64(4*(8+8+8)); got != want {
		t.Errorf("WeightBytes(norms) = %d, want %d", got, want)
	}
}
