package kerneltest

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// Run runs the conformance suite against b, each part a subtest:
//
//	capabilities  b runs fp32 and names its device; Forward runs every
//	              format Capabilities does not report Unavailable and fails
//	              with kernels.ErrUnsupported at the others and at values
//	              that are not formats
//	numerics      every Case at every precision b runs, against the
//	              float64 reference within Tolerance; the input is left
//	              as it was
//	ops           each op other than linear alone, at every precision,
//	              within OpTolerance of the reference
//	shapes        zero rows; a model without layers
//	errors        malformed models and inputs are errors, not panics; a
//	              cancelled context is ctx.Err()
//	concurrency   goroutines running the same pass get identical results
//	evict         Evict between passes, twice, of a model never run, and
//	              while other models run, changes no result
//	batch         a row's result does not depend on its batchmates, even
//	              rows of 3e38, NaN and −Inf (RunBatch, within
//	              BatchTolerance across batch sizes)
//	reference     for a kernels.Referencer: Reference is the float64
//	              reference
//	lm            for a kernels.LM: RunLM
//
// b is left open.
func Run(t *testing.T, b kernels.Backend) {
	t.Run("capabilities", func(t *testing.T) { testCapabilities(t, b) })
	t.Run("numerics", func(t *testing.T) { testNumerics(t, b) })
	t.Run("ops", func(t *testing.T) { testOps(t, b) })
	t.Run("shapes", func(t *testing.T) { testShapes(t, b) })
	t.Run("errors", func(t *testing.T) { testErrors(t, b) })
	t.Run("concurrency", func(t *testing.T) { testConcurrency(t, b) })
	t.Run("evict", func(t *testing.T) { testEvict(t, b) })
	t.Run("batch", func(t *testing.T) { RunBatch(t, b, false) })
	t.Run("reference", func(t *testing.T) {
		rb, ok := b.(kernels.Referencer)
		if !ok {
			t.Skipf("%s is not a kernels.Referencer", b.Name())
		}
		testReferencer(t, rb)
	})
	t.Run("lm", func(t *testing.T) {
		if _, ok := b.(kernels.LM); !ok {
			t.Skipf("%s is not a kernels.LM", b.Name())
		}
		RunLM(t, b)
	})
}

// supported returns the formats b runs, in the order of precision.All.
func supported(b kernels.Backend) []precision.Format {
	return b.Capabilities().Supported()
}

func testCapabilities(t *testing.T, b kernels.Backend) {
	caps := b.Capabilities()
	if caps.Device == "" {
		t.Errorf("Capabilities().Device is empty, want the device named")
	}
	if caps.Support(precision.FP32) == precision.Unavailable {
		t.Errorf("Capabilities() = %v: fp32 unavailable; every backend runs fp32", caps)
	}
	if caps != b.Capabilities() {
		t.Errorf("Capabilities() changed between calls")
	}
	r := rand.New(rand.NewPCG(3, 3))
	m := Build(r, 32, Lin(16), Act(model.GELU), Lin(16))
	in := RandInput(r, 2*32, 0, 1)
	ctx := context.Background()
	for _, p := range precision.All {
		_, err := b.Forward(ctx, m, p, in, 2)
		switch s := caps.Support(p); {
		case s == precision.Unavailable && !errors.Is(err, kernels.ErrUnsupported):
			t.Errorf("Forward at %s, which Capabilities reports unavailable: %v; want ErrUnsupported", p, err)
		case s != precision.Unavailable && err != nil:
			t.Errorf("Forward at %s, which Capabilities reports %s: %v", p, s, err)
		}
		if got, want := kernels.Supports(b, p), caps.Support(p) != precision.Unavailable; got != want {
			t.Errorf("kernels.Supports(%s) = %v, want %v", p, got, want)
		}
	}
	for _, p := range []precision.Format{precision.Auto, "", "fp64"} {
		if _, err := b.Forward(ctx, m, p, in, 2); !errors.Is(err, kernels.ErrUnsupported) {
			t.Errorf("Forward at %q: %v; want ErrUnsupported", p, err)
		}
	}
}

func testNumerics(t *testing.T, b kernels.Backend) {
	ctx := context.Background()
	for _, c := range Cases(t) {
		ref, err := cpu.Reference(c.Model, Widen(c.In), c.Rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range supported(b) {
			t.Run(c.Name+"/"+string(p), func(t *testing.T) {
				in := slices.Clone(c.In)
				got, err := b.Forward(ctx, c.Model, p, in, c.Rows)
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				if len(got) != c.Rows*c.Model.OutputFeatures {
					t.Fatalf("got %d outputs, want %d", len(got), c.Rows*c.Model.OutputFeatures)
				}
				if !slices.Equal(in, c.In) {
					t.Fatal("Forward modified its input")
				}
				e := RelL2(got, ref)
				t.Logf("rel L2 vs reference %.3g (tolerance %.3g)", e, Tolerance(p))
				if !(e <= Tolerance(p)) {
					t.Errorf("rel L2 vs reference = %.3g, want <= %.3g", e, Tolerance(p))
				}
			})
		}
	}
}

// testOps runs each op other than linear alone: no precision changes it,
// so every precision must be within OpTolerance, and negative zero, large
// and small values go through.
func testOps(t *testing.T, b kernels.Backend) {
	r := rand.New(rand.NewPCG(9, 9))
	const rows, width = 7, 300
	for _, spec := range []Spec{Act(model.ReLU), Act(model.GELU), Act(model.SiLU), Act(model.Tanh), Act(model.Softmax),
		Act(model.LayerNorm), Act(model.RMSNorm), PlainNorm(model.LayerNorm), PlainNorm(model.RMSNorm)} {
		m := Build(r, width, spec)
		in := RandInput(r, rows*width, 0.3, 3)
		in[5] = float32(math.Copysign(0, -1))
		in[6], in[7] = 40, -40
		ref, err := cpu.Reference(m, Widen(in), rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range supported(b) {
			got, err := b.Forward(context.Background(), m, p, in, rows)
			if err != nil {
				t.Fatalf("%s at %s: %v", m.Layers[0].Op, p, err)
			}
			if e, at := MaxRel(got, ref); !(e <= OpTolerance) {
				t.Errorf("%s (weight %v) at %s: error %.3g at %d (got %v, want %v); want <= %.3g",
					m.Layers[0].Op, m.Layers[0].Weight != nil, p, e, at, got[at], ref[at], OpTolerance)
			}
		}
	}
}

func testShapes(t *testing.T, b kernels.Backend) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 1))
	m := Build(r, 16, Lin(8), Act(model.ReLU))
	for _, p := range supported(b) {
		got, err := b.Forward(ctx, m, p, nil, 0)
		if err != nil || len(got) != 0 {
			t.Errorf("Forward of 0 rows at %s = %v, %v; want no values, no error", p, got, err)
		}
	}
	id := &model.Model{Name: "identity", InputFeatures: 3, OutputFeatures: 3}
	in := []float32{1, -2, 3, 4, 5, -6}
	got, err := b.Forward(ctx, id, precision.FP32, in, 2)
	if err != nil || !slices.Equal(got, in) {
		t.Errorf("Forward of a model without layers = %v, %v; want its input %v", got, err, in)
	}
}

func testErrors(t *testing.T, b kernels.Backend) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(6, 1))
	good := Build(r, 8, Lin(4), Act(model.Tanh))
	chain := Build(r, 8, Lin(4), Act(model.Tanh))
	chain.Layers[1].In, chain.Layers[1].Out = 5, 5
	noWeight := Build(r, 8, Lin(4))
	noWeight.Layers[0].Weight = nil
	short := Build(r, 8, Lin(4))
	short.Layers[0].Weight.Data = short.Layers[0].Weight.Data[:31]
	unknown := Build(r, 8, Act(model.ReLU))
	unknown.Layers[0].Op = "swish"
	in := RandInput(r, 2*8, 0, 1)
	for _, tc := range []struct {
		name string
		m    *model.Model
		in   []float32
		rows int
	}{
		{"nil model", nil, in, 2},
		{"input too short", good, in[:15], 2},
		{"input too long", good, append(slices.Clone(in), 1), 2},
		{"negative rows", good, in, -2},
		{"input for no rows", good, in, 0},
		{"widths do not chain", chain, in, 2},
		{"linear without weight", noWeight, in, 2},
		{"weight too short", short, in, 2},
		{"unknown op", unknown, in, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := b.Forward(ctx, tc.m, precision.FP32, tc.in, tc.rows); err == nil {
				t.Errorf("Forward = %d values, nil; want an error", len(got))
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for _, p := range supported(b) {
		if _, err := b.Forward(cctx, good, p, in, 2); !errors.Is(err, context.Canceled) {
			t.Errorf("Forward at %s with a cancelled context: %v; want context.Canceled", p, err)
		}
	}
}

// pick returns the format concurrency and eviction run at: the cheapest
// b runs.
func pick(b kernels.Backend) precision.Format {
	f := supported(b)
	return f[len(f)-1]
}

func testConcurrency(t *testing.T, b kernels.Backend) {
	c := Cases(t)[1] // every-op
	p := pick(b)
	want, err := b.Forward(context.Background(), c.Model, p, c.In, c.Rows)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				got, err := b.Forward(context.Background(), c.Model, p, c.In, c.Rows)
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.Equal(got, want) {
					t.Errorf("same input at %s, different output: rel L2 %g", p, RelL2(got, Widen(want)))
					return
				}
			}
		})
	}
	wg.Wait()
}

func testEvict(t *testing.T, b kernels.Backend) {
	ctx := context.Background()
	cs := Cases(t)
	c := cs[1] // every-op
	for _, p := range supported(b) {
		before, err := b.Forward(ctx, c.Model, p, c.In, c.Rows)
		if err != nil {
			t.Fatal(err)
		}
		b.Evict(c.Model)
		after, err := b.Forward(ctx, c.Model, p, c.In, c.Rows)
		if err != nil {
			t.Fatalf("Forward at %s after Evict: %v", p, err)
		}
		if !slices.Equal(before, after) {
			t.Errorf("Forward at %s changed after Evict: rel L2 %g", p, RelL2(after, Widen(before)))
		}
	}
	b.Evict(c.Model)
	b.Evict(c.Model)
	b.Evict(cs[2].Model) // never run by this test
	b.Evict(&model.Model{Name: "never-run"})

	// One goroutine runs a model while another runs and evicts a second
	// one again and again: the first model's results do not move.
	p := pick(b)
	run, evicted := cs[3], cs[2]
	want, err := b.Forward(ctx, run.Model, p, run.In, run.Rows)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.Forward(ctx, evicted.Model, p, evicted.In, evicted.Rows); err != nil {
				t.Error(err)
				return
			}
			b.Evict(evicted.Model)
		}
	})
	for range 20 {
		got, err := b.Forward(ctx, run.Model, p, run.In, run.Rows)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Forward at %s changed while another model was evicted: rel L2 %g", p, RelL2(got, Widen(want)))
		}
	}
	close(stop)
	wg.Wait()
}

func testReferencer(t *testing.T, rb kernels.Referencer) {
	ctx := context.Background()
	for _, c := range Cases(t)[1:4] { // the small models: the large ones' references cost most and add nothing
		want, err := cpu.Reference(c.Model, Widen(c.In), c.Rows)
		if err != nil {
			t.Fatal(err)
		}
		in := slices.Clone(c.In)
		got, err := rb.Reference(ctx, c.Model, in, c.Rows)
		if err != nil {
			t.Fatalf("%s: Reference: %v", c.Name, err)
		}
		if !slices.Equal(in, c.In) {
			t.Fatalf("%s: Reference modified its input", c.Name)
		}
		if e := relL2f64(got, want); !(e <= 1e-12) {
			t.Errorf("%s: Reference is %.3g from the float64 reference (relative L2), want <= 1e-12", c.Name, e)
		}
	}
	c := Cases(t)[2]
	if _, err := rb.Reference(ctx, c.Model, c.In[1:], c.Rows); err == nil {
		t.Error("Reference of an input of the wrong length succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rb.Reference(cctx, c.Model, c.In, c.Rows); !errors.Is(err, context.Canceled) {
		t.Errorf("Reference with a cancelled context: %v; want context.Canceled", err)
	}
}

// relL2f64 is RelL2 for float64 results; lengths that differ are +Inf.
func relL2f64(got, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i, w := range want {
		num += (got[i] - w) * (got[i] - w)
		den += w * w
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}
