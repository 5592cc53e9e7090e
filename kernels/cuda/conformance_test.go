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
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// cudaBackend opens cuda:0 once per test binary.
var cudaBackend = sync.OnceValues(func() (kernels.Backend, error) {
	b, _, err := kernels.Open("cuda:0")
	return b, err
})

// cudaInvariant opens cuda:0 batch-invariant (Config.BatchInvariant) once
// per test binary.
var cudaInvariant = sync.OnceValues(func() (*cuda.Backend, error) {
	return cuda.New(cuda.Config{BatchInvariant: true})
})

// gpuInvariant returns the shared batch-invariant cuda:0 backend, or skips
// the test with the loader's error.
func gpuInvariant(t testing.TB) *cuda.Backend {
	t.Helper()
	g, err := cudaInvariant()
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	return g
}

// gpu returns the shared cuda:0 backend, or skips the test with the
// loader's error.
func gpu(t testing.TB) kernels.Backend {
	t.Helper()
	g, err := cudaBackend()
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	return g
}

// TestConformance runs the kernels contract's suite (kerneltest.Run) on
// cuda:0: every op and precision against the float64 reference, the
// precisions refused, the errors, concurrency, Evict.
func TestConformance(t *testing.T) {
	kt.Run(t, gpu(t))
}

// TestRegistry: "cuda" is registered, and "auto" opens cuda:0 exactly
// when it opens, else the CPU with the reason.
func TestRegistry(t *testing.T) {
	kt.RunRegistry(t, "cuda")
}

// emuTolerance is the accepted relative L2 distance between CUDA and the
// CPU backend's emulation of the same precision: only accumulation order
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

// TestMatchesCPUEmulation compares CUDA with the CPU backend's emulation
// of each precision on the suite's models.
func TestMatchesCPUEmulation(t *testing.T) {
	g := gpu(t)
	c, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range kt.Cases(t) {
		for _, p := range g.Capabilities().Supported() {
			t.Run(fmt.Sprintf("%s/%s", tc.Name, p), func(t *testing.T) {
				emu, err := c.Forward(ctx, tc.Model, p, tc.In, tc.Rows)
				if err != nil {
					t.Fatal(err)
				}
				got, err := g.Forward(ctx, tc.Model, p, tc.In, tc.Rows)
				if err != nil {
					t.Fatal(err)
				}
				tol := emuTolerance[p]
				if p == precision.FP8 && len(tc.Model.Layers) == 1 {
					tol = fp8OneLayerTolerance
				}
				d := kt.RelL2(got, kt.Widen(emu))
				t.Logf("rel L2 vs cpu emulation %.3g (tolerance %.3g)", d, tol)
				if !(d <= tol) {
					t.Errorf("rel L2 vs cpu emulation of %s = %.3g, want <= %.3g", p, d, tol)
				}
			})
		}
	}
}

// TestOpsExact checks each op other than linear alone against the CPU
// backend: both evaluate in double and round once, so they agree to within
// an ulp or so.
func TestOpsExact(t *testing.T) {
	g := gpu(t)
	c, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	const rows, width = 7, 300
	for _, spec := range []kt.Spec{kt.Act(model.ReLU), kt.Act(model.GELU), kt.Act(model.SiLU), kt.Act(model.Tanh),
		kt.Act(model.Softmax), kt.Act(model.LayerNorm), kt.Act(model.RMSNorm), kt.PlainNorm(model.LayerNorm), kt.PlainNorm(model.RMSNorm)} {
		m := kt.Build(r, width, spec)
		in := kt.RandInput(r, rows*width, 0.3, 3)
		in[5] = float32(math.Copysign(0, -1))
		want, err := c.Forward(context.Background(), m, precision.FP32, in, rows)
		if err != nil {
			t.Fatal(err)
		}
		got, err := g.Forward(context.Background(), m, precision.FP32, in, rows)
		if err != nil {
			t.Fatalf("%s: %v", m.Layers[0].Op, err)
		}
		worst := 0.0
		for i := range want {
			d := math.Abs(float64(got[i]) - float64(want[i]))
			worst = max(worst, d/(math.Abs(float64(want[i]))+1e-30))
		}
		if worst > 4e-7 {
			t.Errorf("%s (w=%v): worst relative difference to cpu %.3g, want <= 4e-7", m.Layers[0].Op, m.Layers[0].Weight != nil, worst)
		}
	}
}

// TestOpenErrors: a device index past the devices fails fast, and "auto"
// without a usable GPU says why in an error wrapping ErrUnavailable.
func TestOpenErrors(t *testing.T) {
	_, _, err := kernels.Open("cuda:99")
	if err == nil || !(errors.Is(err, cuda.ErrNoDevice) || errors.Is(err, cuda.ErrUnavailable)) {
		t.Errorf("Open(cuda:99) = %v, want ErrNoDevice or ErrUnavailable", err)
	}
	if _, _, err := kernels.Open("cuda:x"); err == nil {
		t.Error("Open(cuda:x) succeeded")
	}
	if _, cerr := cudaBackend(); cerr == nil {
		return // RunRegistry checks auto with a GPU
	}
	b, fallback, err := kernels.Open("auto")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !errors.Is(fallback, cuda.ErrUnavailable) {
		t.Errorf("auto without a usable GPU: fallback %v, want it to wrap ErrUnavailable", fallback)
	}
}
