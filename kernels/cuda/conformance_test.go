package cuda_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/kernels/cuda"
	kt "github.com/gearbox-inference/gearbox/kernels/internal/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// The conformance suite: every backend present (the CPU always, CUDA when a
// device opens) runs every op and every precision, checked against the
// float64 Reference with per-format tolerances; backends other than the CPU
// are also checked against the CPU backend's emulation of the same
// precision.

// refTolerance is the accepted relative L2 error against Reference, per
// precision, on the test models (about 3× the CPU emulation's measured
// errors on the 512→2048→512 model: fp32 3.3e-7, tf32 and fp16 4.3e-4, bf16
// 3.3e-3, fp8 4.9e-2, fp4 0.14).
var refTolerance = map[precision.Format]float64{
	precision.FP32: 2e-6,
	precision.TF32: 1.5e-3,
	precision.FP16: 1.5e-3,
	precision.BF16: 1e-2,
	precision.FP8:  0.15,
	precision.FP4:  0.4,
}

// emuTolerance is the accepted relative L2 distance between a backend and
// the CPU backend's emulation of the same precision: only accumulation order
// differs, except that fp8 tensor cores do not accumulate exactly like fp32
// (~1.2e-4 per layer) and that any difference moves later layers' rounding
// of their inputs.
var emuTolerance = map[precision.Format]float64{
	precision.FP32: 1e-5,
	precision.TF32: 1e-4,
	precision.FP16: 1e-4,
	precision.BF16: 1e-3,
	precision.FP8:  2e-2, // measured 7.8e-3 through two fp8 layers (mlp), 2.2e-4 on one row
	precision.FP4:  2e-3,
}

// fp8OneLayerTolerance is emuTolerance for fp8 on a model with a single
// linear layer: there only the tensor cores' accumulation differs.
const fp8OneLayerTolerance = 1e-3

// cudaBackend opens cuda:0 once per test binary.
var cudaBackend = sync.OnceValues(func() (kernels.Backend, error) {
	b, _, err := kernels.Open("cuda:0")
	return b, err
})

// backends returns every backend present, by name; the CUDA one is
// missing, with a logged reason, where it cannot open.
func backends(t *testing.T) map[string]kernels.Backend {
	t.Helper()
	cb, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs := map[string]kernels.Backend{"cpu": cb}
	if g, err := cudaBackend(); err == nil {
		bs[g.Name()] = g
	} else {
		t.Logf("cuda backend not tested: %v", err)
	}
	return bs
}

// testModel is a model of the suite and its input.
type testModel struct {
	name string
	m    *model.Model
	rows int
	in   []float32
}

func testModels(t *testing.T) []testModel {
	t.Helper()
	r := rand.New(rand.NewPCG(4, 2))
	mlp, err := model.Synth(model.SynthConfig{Name: "mlp", Dims: []int{512, 2048, 512}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	const rows = 48
	in := kt.RandInput(r, rows*512, 0, 1)
	for row := range rows {
		for _, c := range []int{3, 77, 200, 411} {
			in[row*512+c] *= 10
		}
	}
	ms := []testModel{{"mlp-512-2048-512", mlp, rows, in}}
	// Every op, aligned widths (fp8 tensor-core path).
	ops := kt.Build(r, 64, kt.Lin(128), kt.Act(model.ReLU), kt.LinNoBias(128), kt.Act(model.SiLU), kt.Act(model.LayerNorm),
		kt.Lin(64), kt.Act(model.Tanh), kt.Act(model.RMSNorm), kt.Lin(96), kt.Act(model.GELU), kt.Lin(32), kt.Act(model.Softmax))
	ms = append(ms, testModel{"every-op", ops, 33, kt.RandInput(r, 33*64, 0.1, 1)})
	// Widths no tensor-core fp8 kernel takes, norms without parameters.
	odd := kt.Build(r, 40, kt.Lin(24), kt.PlainNorm(model.RMSNorm), kt.Act(model.ReLU), kt.Lin(10), kt.PlainNorm(model.LayerNorm), kt.Lin(7))
	ms = append(ms, testModel{"odd-widths", odd, 5, kt.RandInput(r, 5*40, 0, 2)})
	// One row (GEMV shapes).
	one := kt.Build(r, 256, kt.Lin(256), kt.Act(model.GELU), kt.Lin(128))
	ms = append(ms, testModel{"one-row", one, 1, kt.RandInput(r, 256, 0, 1)})
	// One linear layer: fp8 differs from the emulation by accumulation only.
	single := kt.Build(r, 1024, kt.Lin(512))
	ms = append(ms, testModel{"single-linear", single, 64, kt.RandInput(r, 64*1024, 0, 1)})
	return ms
}

func TestConformance(t *testing.T) {
	bs := backends(t)
	ctx := context.Background()
	for _, tm := range testModels(t) {
		ref, err := cpu.Reference(tm.m, kt.Widen(tm.in), tm.rows)
		if err != nil {
			t.Fatal(err)
		}
		emu := map[precision.Format][]float32{}
		for _, p := range precision.All {
			got, err := bs["cpu"].Forward(ctx, tm.m, p, tm.in, tm.rows)
			if err != nil {
				t.Fatalf("cpu %s %s: %v", tm.name, p, err)
			}
			emu[p] = got
		}
		for name, b := range bs {
			for _, p := range precision.All {
				t.Run(fmt.Sprintf("%s/%s/%s", name, tm.name, p), func(t *testing.T) {
					if !b.Supports(p) {
						t.Skipf("%s does not run %s", name, p)
					}
					in := append([]float32(nil), tm.in...)
					got, err := b.Forward(ctx, tm.m, p, in, tm.rows)
					if err != nil {
						t.Fatalf("Forward: %v", err)
					}
					if len(got) != tm.rows*tm.m.OutputFeatures {
						t.Fatalf("got %d outputs, want %d", len(got), tm.rows*tm.m.OutputFeatures)
					}
					for i, v := range in {
						if v != tm.in[i] {
							t.Fatalf("Forward modified its input at %d", i)
						}
					}
					e := kt.RelL2(got, ref)
					t.Logf("rel L2 vs reference %.3g (tolerance %.3g)", e, refTolerance[p])
					if !(e <= refTolerance[p]) {
						t.Errorf("rel L2 vs reference = %.3g, want <= %.3g", e, refTolerance[p])
					}
					if name == "cpu" {
						return
					}
					tol := emuTolerance[p]
					if p == precision.FP8 && len(tm.m.Layers) == 1 {
						tol = fp8OneLayerTolerance
					}
					d := kt.RelL2(got, kt.Widen(emu[p]))
					t.Logf("rel L2 vs cpu emulation %.3g (tolerance %.3g)", d, tol)
					if !(d <= tol) {
						t.Errorf("rel L2 vs cpu emulation of %s = %.3g, want <= %.3g", p, d, tol)
					}
				})
			}
		}
	}
}

// TestOpsExact checks each op other than linear alone against the CPU
// backend: both evaluate in double and round once, so they agree to within
// an ulp or so.
func TestOpsExact(t *testing.T) {
	bs := backends(t)
	r := rand.New(rand.NewPCG(9, 9))
	const rows, width = 7, 300
	for _, spec := range []kt.Spec{kt.Act(model.ReLU), kt.Act(model.GELU), kt.Act(model.SiLU), kt.Act(model.Tanh),
		kt.Act(model.Softmax), kt.Act(model.LayerNorm), kt.Act(model.RMSNorm), kt.PlainNorm(model.LayerNorm), kt.PlainNorm(model.RMSNorm)} {
		m := kt.Build(r, width, spec)
		in := kt.RandInput(r, rows*width, 0.3, 3)
		in[5] = float32(math.Copysign(0, -1))
		want, err := bs["cpu"].Forward(context.Background(), m, precision.FP32, in, rows)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range bs {
			if name == "cpu" {
				continue
			}
			got, err := b.Forward(context.Background(), m, precision.FP32, in, rows)
			if err != nil {
				t.Fatalf("%s %s: %v", name, m.Layers[0].Op, err)
			}
			worst := 0.0
			for i := range want {
				d := math.Abs(float64(got[i]) - float64(want[i]))
				worst = max(worst, d/(math.Abs(float64(want[i]))+1e-30))
			}
			if worst > 4e-7 {
				t.Errorf("%s %s (w=%v): worst relative difference to cpu %.3g, want <= 4e-7", name, m.Layers[0].Op, m.Layers[0].Weight != nil, worst)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	// cuda:N past the devices fails fast, with ErrNoDevice or (no driver)
	// ErrUnavailable.
	_, _, err := kernels.Open("cuda:99")
	if err == nil || !(errors.Is(err, cuda.ErrNoDevice) || errors.Is(err, cuda.ErrUnavailable)) {
		t.Errorf("Open(cuda:99) = %v, want ErrNoDevice or ErrUnavailable", err)
	}
	if _, _, err := kernels.Open("cuda:x"); err == nil {
		t.Error("Open(cuda:x) succeeded")
	}
	// auto falls back to the CPU, with the reason, exactly when cuda:0 does
	// not open.
	b, fallback, err := kernels.Open("auto")
	if err != nil {
		t.Fatal(err)
	}
	if _, cerr := cudaBackend(); cerr != nil {
		if b.Name() != "cpu" || fallback == nil {
			t.Errorf("auto without a usable GPU: %s, fallback %v; want cpu with a reason", b.Name(), fallback)
		}
		if !errors.Is(fallback, cuda.ErrUnavailable) {
			t.Errorf("fallback = %v, want it to wrap ErrUnavailable", fallback)
		}
		t.Logf("no GPU here: %v", fallback)
	} else {
		if b.Name() != "cuda:0" || fallback != nil {
			t.Errorf("auto with a GPU: %s, fallback %v; want cuda:0", b.Name(), fallback)
		}
		b.Close()
	}
}

func TestUnsupportedPrecision(t *testing.T) {
	g, err := cudaBackend()
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	m := kt.Build(rand.New(rand.NewPCG(1, 1)), 16, kt.Lin(16))
	_, err = g.Forward(context.Background(), m, precision.Auto, make([]float32, 16), 1)
	if !errors.Is(err, kernels.ErrUnsupported) {
		t.Errorf("Forward(auto) = %v, want ErrUnsupported", err)
	}
}

// TestConcurrentForward runs several goroutines through one device.
func TestConcurrentForward(t *testing.T) {
	g, err := cudaBackend()
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	r := rand.New(rand.NewPCG(5, 5))
	m := kt.Build(r, 128, kt.Lin(256), kt.Act(model.GELU), kt.Lin(64))
	in := kt.RandInput(r, 20*128, 0, 1)
	want, err := g.Forward(context.Background(), m, precision.BF16, in, 20)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				got, err := g.Forward(context.Background(), m, precision.BF16, in, 20)
				if err != nil {
					t.Error(err)
					return
				}
				if d := kt.RelL2(got, kt.Widen(want)); d != 0 {
					t.Errorf("same input, different output: rel L2 %g", d)
					return
				}
			}
		})
	}
	wg.Wait()
}
