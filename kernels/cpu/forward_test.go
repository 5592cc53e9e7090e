package cpu_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

const (
	maxRelL2   = 1e-5 // fp32 against the float64 reference, whole output
	maxRelElem = 1e-5 // per value, relative to |want| + rms(want)
)

func newBackend(t testing.TB, threads int) *cpu.Backend {
	t.Helper()
	b, err := cpu.New(cpu.Config{Threads: threads})
	if err != nil {
		t.Fatalf("New(Threads: %d): %v", threads, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// checkAgainstReference runs m on in at fp32 and compares with Reference.
func checkAgainstReference(t *testing.T, b *cpu.Backend, m *model.Model, in []float32, rows int) []float32 {
	t.Helper()
	got, err := b.Forward(context.Background(), m, precision.FP32, in, rows)
	if err != nil {
		t.Fatalf("Forward: %v", err)
	}
	want, err := cpu.Reference(m, kt.Widen(in), rows)
	if err != nil {
		t.Fatalf("Reference: %v", err)
	}
	if len(got) != rows*m.OutputFeatures || len(want) != len(got) {
		t.Fatalf("len(Forward) = %d, len(Reference) = %d; want %d", len(got), len(want), rows*m.OutputFeatures)
	}
	if e := kt.RelL2(got, want); !(e <= maxRelL2) {
		t.Errorf("relative L2 error %.3g, want <= %g", e, maxRelL2)
	}
	if e, i := kt.MaxRel(got, want); !(e <= maxRelElem) {
		t.Errorf("value %d (row %d): got %g, want %g: relative error %.3g, want <= %g",
			i, i/m.OutputFeatures, got[i], want[i], e, maxRelElem)
	}
	return got
}

func TestForwardMatchesReference(t *testing.T) {
	b := newBackend(t, 0)
	type tc struct {
		name   string
		in     int
		layers []kt.Spec
	}
	var cases []tc
	for _, w := range []int{3, 17, 129} {
		o := map[int]int{3: 17, 17: 129, 129: 3}[w]
		cases = append(cases,
			tc{fmt.Sprintf("linear/%d-%d", w, o), w, []kt.Spec{kt.Lin(o)}},
			tc{fmt.Sprintf("linear-nobias/%d-%d", w, o), w, []kt.Spec{kt.LinNoBias(o)}},
			tc{fmt.Sprintf("relu/%d", w), w, []kt.Spec{kt.Act(model.ReLU)}},
			tc{fmt.Sprintf("gelu/%d", w), w, []kt.Spec{kt.Act(model.GELU)}},
			tc{fmt.Sprintf("silu/%d", w), w, []kt.Spec{kt.Act(model.SiLU)}},
			tc{fmt.Sprintf("tanh/%d", w), w, []kt.Spec{kt.Act(model.Tanh)}},
			tc{fmt.Sprintf("softmax/%d", w), w, []kt.Spec{kt.Act(model.Softmax)}},
			tc{fmt.Sprintf("layernorm/%d", w), w, []kt.Spec{kt.Act(model.LayerNorm)}},
			tc{fmt.Sprintf("layernorm-plain/%d", w), w, []kt.Spec{kt.PlainNorm(model.LayerNorm)}},
			tc{fmt.Sprintf("rmsnorm/%d", w), w, []kt.Spec{kt.Act(model.RMSNorm)}},
			tc{fmt.Sprintf("rmsnorm-plain/%d", w), w, []kt.Spec{kt.PlainNorm(model.RMSNorm)}},
		)
	}
	cases = append(cases,
		tc{"mlp/17-129-3", 17, []kt.Spec{kt.Lin(129), kt.Act(model.GELU), kt.Lin(3)}},
		tc{"mlp/64-257-10", 64, []kt.Spec{kt.Lin(257), kt.Act(model.ReLU), kt.Lin(129), kt.Act(model.SiLU), kt.Lin(10)}},
		tc{"linear-activations/129", 129, []kt.Spec{kt.Lin(130), kt.Act(model.GELU), kt.Lin(65), kt.Act(model.Tanh), kt.LinNoBias(33), kt.Act(model.SiLU)}},
		tc{"norms/129", 129, []kt.Spec{kt.Act(model.LayerNorm), kt.Lin(200), kt.Act(model.ReLU), kt.Act(model.RMSNorm), kt.Lin(17), kt.Act(model.Softmax)}},
		tc{"activations-only/17", 17, []kt.Spec{kt.Act(model.Tanh), kt.Act(model.GELU), kt.Act(model.SiLU), kt.Act(model.ReLU), kt.Act(model.Softmax)}},
		tc{"classifier/129-10", 129, []kt.Spec{kt.Act(model.LayerNorm), kt.Lin(257), kt.Act(model.GELU), kt.Lin(10), kt.Act(model.Softmax)}},
	)
	for _, c := range cases {
		for _, rows := range []int{1, 7, 64, 300} {
			t.Run(fmt.Sprintf("%s/rows=%d", c.name, rows), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(rows), uint64(len(c.name))))
				m := kt.Build(r, c.in, c.layers...)
				in := kt.RandInput(r, rows*c.in, 0.5, 2)
				orig := slices.Clone(in)
				checkAgainstReference(t, b, m, in, rows)
				if !slices.Equal(in, orig) {
					t.Errorf("Forward modified its input")
				}
			})
		}
	}
}

// TestActivationsElementwise checks each activation value by value against
// the reference over a range that includes the tails.
func TestActivationsElementwise(t *testing.T) {
	b := newBackend(t, 0)
	var in []float32
	for x := -20.0; x <= 20; x += 0.01 {
		in = append(in, float32(x))
	}
	in = append(in, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-3, -1e-3, 50, -50, 100, -100, 1e30, -1e30)
	for _, op := range []model.Op{model.ReLU, model.GELU, model.SiLU, model.Tanh} {
		t.Run(string(op), func(t *testing.T) {
			m := &model.Model{InputFeatures: 1, OutputFeatures: 1, Layers: []model.Layer{{Op: op, In: 1, Out: 1}}}
			got, err := b.Forward(context.Background(), m, precision.FP32, in, len(in))
			if err != nil {
				t.Fatal(err)
			}
			want, err := cpu.Reference(m, kt.Widen(in), len(in))
			if err != nil {
				t.Fatal(err)
			}
			for i := range in {
				// Within 1e-6 relative, or tiny where the result is
				// subnormal in float32.
				if d := math.Abs(float64(got[i]) - want[i]); !(d <= 1e-6*math.Abs(want[i]) || d <= 1e-44) {
					t.Errorf("%s(%g) = %g, want %g (relative error %.3g)", op, in[i], got[i], want[i], d/math.Abs(want[i]))
				}
			}
		})
	}
}

func TestSoftmaxRowsSumToOne(t *testing.T) {
	b := newBackend(t, 0)
	r := rand.New(rand.NewPCG(1, 1))
	for _, width := range []int{1, 3, 17, 129, 1000} {
		m := kt.Build(r, width, kt.Act(model.Softmax))
		rows := 33
		in := kt.RandInput(r, rows*width, 0, 10)
		in[0] = 80 // exp(80) overflows float32: the max must be subtracted
		got, err := b.Forward(context.Background(), m, precision.FP32, in, rows)
		if err != nil {
			t.Fatal(err)
		}
		for row := range rows {
			var sum float64
			for _, v := range got[row*width : (row+1)*width] {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("width %d row %d: value %g outside [0, 1]", width, row, v)
				}
				sum += float64(v)
			}
			if math.Abs(sum-1) > 1e-6 {
				t.Errorf("width %d row %d: sum %.9f, want 1", width, row, sum)
			}
		}
	}
}

func TestLayerNormStandardises(t *testing.T) {
	b := newBackend(t, 0)
	r := rand.New(rand.NewPCG(2, 2))
	for _, width := range []int{3, 17, 129, 1024} {
		m := kt.Build(r, width, kt.PlainNorm(model.LayerNorm))
		rows := 20
		in := kt.RandInput(r, rows*width, 100, 3) // large mean, as after a residual
		got, err := b.Forward(context.Background(), m, precision.FP32, in, rows)
		if err != nil {
			t.Fatal(err)
		}
		for row := range rows {
			mean, variance := moments(got[row*width : (row+1)*width])
			// Normalising by √(v + eps) leaves variance v/(v + eps).
			_, v := moments(in[row*width : (row+1)*width])
			want := v / (v + m.Layers[0].Eps)
			if math.Abs(mean) > 1e-6 || math.Abs(variance-want) > 1e-5 {
				t.Errorf("width %d row %d: mean %.3g variance %.7f, want 0 and %.7f", width, row, mean, variance, want)
			}
		}
	}
}

// moments returns the mean and biased variance of x.
func moments(x []float32) (mean, variance float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		variance += (float64(v) - mean) * (float64(v) - mean)
	}
	return mean, variance / float64(len(x))
}

func TestThreadsGiveIdenticalResults(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	m := kt.Build(r, 129, kt.Lin(300), kt.Act(model.GELU), kt.Act(model.LayerNorm), kt.Lin(129), kt.Act(model.Softmax))
	rows := 200
	in := kt.RandInput(r, rows*129, 0, 1)
	var first []float32
	for _, threads := range []int{1, 2, 3, 8} {
		got, err := newBackend(t, threads).Forward(context.Background(), m, precision.FP32, in, rows)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = got
		} else if !slices.Equal(got, first) {
			t.Errorf("Threads %d: result differs from Threads 1", threads)
		}
	}
}

func TestForwardZeroRowsAndNoLayers(t *testing.T) {
	b := newBackend(t, 0)
	m := kt.Build(rand.New(rand.NewPCG(5, 5)), 4, kt.Lin(300), kt.Act(model.GELU), kt.Act(model.LayerNorm), kt.Lin(3))
	got, err := b.Forward(context.Background(), m, precision.FP32, nil, 0)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("Forward(0 rows) = %v, %v; want an empty slice, nil", got, err)
	}

	id := &model.Model{InputFeatures: 3, OutputFeatures: 3}
	in := []float32{1, 2, 3, 4, 5, 6}
	got, err = b.Forward(context.Background(), id, precision.FP32, in, 2)
	if err != nil || !slices.Equal(got, in) || &got[0] == &in[0] {
		t.Errorf("Forward(no layers) = %v, %v; want a copy of %v", got, err, in)
	}
}

func TestForwardErrors(t *testing.T) {
	b := newBackend(t, 0)
	r := rand.New(rand.NewPCG(6, 6))
	good := kt.Build(r, 4, kt.Lin(3), kt.Act(model.ReLU))
	badWeight := kt.Build(r, 4, kt.Lin(3))
	badWeight.Layers[0].Weight.Data = badWeight.Layers[0].Weight.Data[:5]
	badChain := kt.Build(r, 4, kt.Lin(3), kt.Act(model.ReLU))
	badChain.Layers[1].In = 4
	badOp := kt.Build(r, 4, kt.Act("swish"))
	badOut := kt.Build(r, 4, kt.Lin(3))
	badOut.OutputFeatures = 4

	tests := []struct {
		name string
		m    *model.Model
		in   []float32
		rows int
		want string
	}{
		{"short input", good, make([]float32, 7), 2, "input has 7 values, want rows × InputFeatures = 2 × 4 = 8"},
		{"long input", good, make([]float32, 9), 2, "input has 9 values"},
		{"negative rows", good, nil, -1, "rows = -1"},
		{"nil model", nil, nil, 0, "nil model"},
		{"weight length", badWeight, make([]float32, 4), 1, "weight has 5 values, want 12"},
		{"width chain", badChain, make([]float32, 4), 1, "In = 4, previous width 3"},
		{"unknown op", badOp, make([]float32, 4), 1, `unknown op "swish"`},
		{"output width", badOut, make([]float32, 4), 1, "OutputFeatures 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Forward(context.Background(), tt.m, precision.FP32, tt.in, tt.rows)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Forward error = %v; want one containing %q", err, tt.want)
			}
			if errors.Is(err, kernels.ErrUnsupported) {
				t.Errorf("Forward error %v wraps ErrUnsupported", err)
			}
			if _, err := cpu.Reference(tt.m, kt.Widen(tt.in), tt.rows); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Reference error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestUnsupportedPrecision(t *testing.T) {
	b := newBackend(t, 0)
	m := kt.Build(rand.New(rand.NewPCG(7, 7)), 4, kt.Lin(3))
	in := make([]float32, 4)
	for _, p := range []precision.Format{precision.Auto, "", "fp64", "FP32"} {
		if b.Supports(p) {
			t.Errorf("Supports(%q) = true, want false", p)
		}
		_, err := b.Forward(context.Background(), m, p, in, 1)
		if !errors.Is(err, kernels.ErrUnsupported) {
			t.Errorf("Forward(%q) error = %v; want one wrapping ErrUnsupported", p, err)
		} else if !strings.Contains(err.Error(), `"`+string(p)+`"`) {
			t.Errorf("Forward(%q) error = %q; want it to name the precision", p, err)
		}
	}
	for _, p := range precision.All {
		if !b.Supports(p) {
			t.Errorf("Supports(%s) = false, want true", p)
		}
	}
}

// countdownCtx is a context whose Err turns to context.Canceled on its n-th
// call: a way to cancel at an exact point of a forward pass.
type countdownCtx struct {
	context.Context
	n atomic.Int32
}

func (c *countdownCtx) Err() error {
	if c.n.Add(-1) <= 0 {
		return context.Canceled
	}
	return nil
}

func TestForwardHonoursContext(t *testing.T) {
	b := newBackend(t, 0)
	r := rand.New(rand.NewPCG(8, 8))
	m := kt.Build(r, 16, kt.Lin(32), kt.Act(model.ReLU), kt.Lin(32), kt.Act(model.ReLU), kt.Lin(4))
	in := kt.RandInput(r, 3*16, 0, 1)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Forward(ctx, m, precision.FP32, in, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("Forward(cancelled ctx) error = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 0)
	defer cancel()
	if _, err := b.Forward(ctx, m, precision.FP32, in, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Forward(expired ctx) error = %v, want context.DeadlineExceeded", err)
	}
	// Cancelled after the first check (at entry) and the layers before
	// layer 3: the pass must stop between layers.
	for n := int32(1); n <= 5; n++ {
		ctx := &countdownCtx{Context: context.Background()}
		ctx.n.Store(n)
		if got, err := b.Forward(ctx, m, precision.FP32, in, 3); !errors.Is(err, context.Canceled) || got != nil {
			t.Errorf("Forward(ctx cancelled at check %d) = %d values, %v; want nil, context.Canceled", n, len(got), err)
		}
	}
}
