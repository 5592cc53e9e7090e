package kerneltest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// BatchTolerance is the largest relative L2 difference RunBatch accepts
// between a row computed alone and the same row computed in a larger batch,
// on a backend that is not exact across batch sizes: a GPU's GEMM library
// picks other kernels for other row counts, which sum in another order, and
// at the reduced precisions a sum one ulp off can round the next layer's
// operand the other way. It is a quarter of Tolerance(p), at least 1e-5:
// far below the error of a row whose operand another row spoiled (1 or
// NaN).
func BatchTolerance(p precision.Format) float64 {
	return max(Tolerance(p)/4, 1e-5)
}

// The rows RunBatch plants among ordinary ones: each would spoil its
// batchmates' results if the batch shared a statistic of its activations.
var poisons = []struct {
	name string
	row  func(width int) []float32
}{
	{"3e38", func(w int) []float32 { return filled(w, 3e38) }},                  // overflows float32 in the first layer
	{"nan", func(w int) []float32 { return withAt(w, 1, float32(math.NaN())) }}, // one NaN among ordinary values
	{"inf", func(w int) []float32 { return withAt(w, 0, float32(math.Inf(-1))) }},
}

func filled(n int, v float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = v
	}
	return x
}

func withAt(n, i int, v float32) []float32 {
	x := filled(n, 0.5)
	x[i] = v
	return x
}

// RunBatch checks that a row's result does not depend on the rows it
// shares a Forward with: a job's result must not depend on which other
// jobs the worker batched it with. For each test model, at each batch size
// (a few rows, and more than 128 rows and 16,384 values, where GPU
// backends switch to other GEMM scaling and quantization kernels) and at
// every precision b runs:
//
//	clean     a batch of ordinary rows
//	poisoned  the same batch with some rows replaced by a row of 3e38s
//	          (which overflows float32 in the first layer), a row holding
//	          a NaN and a row holding −Inf
//	alone     some of the ordinary rows, one per Forward
//
// The ordinary rows of the poisoned batch must equal the clean batch's bit
// for bit (same row count: the same kernels, so nothing but a shared
// statistic could move them), and together be within Tolerance(p) of the
// float64 reference. A row alone must equal the batch's row
// bit for bit when exact is set (the CPU backend: every output is one dot
// product in a fixed order), and otherwise be within BatchTolerance(p).
// At fp8 a single linear layer's outputs are also checked element by
// element against the bound that per-row activation scaling guarantees
// (fp8Bound).
func RunBatch(t *testing.T, b kernels.Backend, exact bool) {
	r := rand.New(rand.NewPCG(21, 7))
	models := []struct {
		name string
		m    *model.Model
	}{
		// widths multiples of 16: the fp8 tensor-core path; relu fused
		// into a GEMM's epilogue
		{"mlp", Build(r, 128, Lin(128), Act(model.ReLU), Lin(128), Act(model.GELU), Lin(32))},
		// widths no fp8 tensor-core kernel takes
		{"odd", Build(r, 40, Lin(24), Act(model.Tanh), Lin(7))},
		{"linear", Build(r, 128, Lin(48))},
	}
	for _, tm := range models {
		for _, rows := range []int{6, 136} {
			t.Run(fmt.Sprintf("%s/%d-rows", tm.name, rows), func(t *testing.T) {
				testBatchOf(t, b, tm.m, rows, exact, r)
			})
		}
	}
}

// testBatchOf runs RunBatch's checks on one model and batch size.
func testBatchOf(t *testing.T, b kernels.Backend, m *model.Model, rows int, exact bool, r *rand.Rand) {
	ctx := context.Background()
	nin, nout := m.InputFeatures, m.OutputFeatures
	clean := RandInput(r, rows*nin, 0, 1)
	for i := 0; i < len(clean); i += 13 {
		clean[i] *= 8 // outliers, as activations have
	}
	// Poisoned rows: spread over the batch, the first row among them.
	bad := map[int]int{} // row → index in poisons
	for i := range poisons {
		bad[i*(rows-1)/len(poisons)] = i
	}
	poisoned := slices.Clone(clean)
	for row, i := range bad {
		copy(poisoned[row*nin:(row+1)*nin], poisons[i].row(nin))
	}
	ref, err := cpu.Reference(m, Widen(clean), rows)
	if err != nil {
		t.Fatal(err)
	}
	// Rows checked alone: ordinary ones at both ends and in the middle.
	var alone []int
	for _, row := range []int{1, 2, rows / 2, rows - 2} {
		if _, ok := bad[row]; !ok && !slices.Contains(alone, row) {
			alone = append(alone, row)
		}
	}
	for _, p := range supported(b) {
		want, err := b.Forward(ctx, m, p, clean, rows)
		if err != nil {
			t.Fatalf("%s: Forward of the clean batch: %v", p, err)
		}
		got, err := b.Forward(ctx, m, p, poisoned, rows)
		if err != nil {
			t.Fatalf("%s: Forward of the poisoned batch: %v", p, err)
		}
		var changed []int   // ordinary rows the poison moved
		var gotOK []float32 // the ordinary rows' outputs
		var refOK []float64 // and their float64 reference
		for row := range rows {
			if _, ok := bad[row]; ok {
				continue
			}
			g, w := got[row*nout:(row+1)*nout], want[row*nout:(row+1)*nout]
			if !slices.Equal(g, w) {
				changed = append(changed, row)
			}
			gotOK = append(gotOK, g...)
			refOK = append(refOK, ref[row*nout:(row+1)*nout]...)
		}
		if len(changed) > 0 {
			row := changed[0]
			t.Errorf("%s: %d of %d ordinary rows changed when other rows of the batch were %s; row %d is %.3g from the clean batch's (rel L2)",
				p, len(changed), rows-len(bad), poisonNames(bad), row, RelL2(got[row*nout:(row+1)*nout], Widen(want[row*nout:(row+1)*nout])))
		}
		e := RelL2(gotOK, refOK)
		t.Logf("%s: %d ordinary rows changed; rel L2 vs reference %.3g", p, len(changed), e)
		if !(e <= Tolerance(p)) {
			t.Errorf("%s: the ordinary rows of the poisoned batch: rel L2 vs reference %.3g, want <= %.3g", p, e, Tolerance(p))
		}
		for _, row := range alone {
			one, err := b.Forward(ctx, m, p, clean[row*nin:(row+1)*nin], 1)
			if err != nil {
				t.Fatalf("%s: Forward of row %d alone: %v", p, row, err)
			}
			g := got[row*nout : (row+1)*nout]
			switch e := RelL2(g, Widen(one)); {
			case slices.Equal(g, one):
			case exact:
				t.Errorf("%s: row %d in the batch differs from the row alone (rel L2 %.3g); want bit-identical", p, row, e)
			case !(e <= BatchTolerance(p)):
				t.Errorf("%s: row %d in the batch is %.3g from the row alone (rel L2), want <= %.3g", p, row, e, BatchTolerance(p))
			default:
				t.Logf("%s: row %d in the batch is %.3g from the row alone (rel L2)", p, row, e)
			}
		}
		if p == precision.FP8 && len(m.Layers) == 1 && m.Layers[0].Op == model.Linear {
			checkFP8Bound(t, b, &m.Layers[0], poisoned, got, rows, bad)
		}
	}
}

// poisonNames lists the planted rows, for messages.
func poisonNames(bad map[int]int) string {
	var s []string
	for row, i := range bad {
		s = append(s, fmt.Sprintf("%s (row %d)", poisons[i].name, row))
	}
	slices.Sort(s)
	return fmt.Sprint(s)
}

// fp8Margin is b's fp8 activation margin, when b says it; otherwise the
// largest there is, which loosens fp8Bound.
func fp8Margin(b kernels.Backend) int {
	if mb, ok := b.(interface{ FP8Margin() int }); ok {
		return mb.FP8Margin()
	}
	return precision.MaxMargin
}

// checkFP8Bound checks each ordinary row's outputs of the fp8 linear layer
// l (got, from the batch in) against fp8Bound.
func checkFP8Bound(t *testing.T, b kernels.Backend, l *model.Layer, in, got []float32, rows int, bad map[int]int) {
	margin := fp8Margin(b)
	wAmax := make([]float32, l.Out)
	for n := range l.Out {
		wAmax[n] = precision.Amax(l.Weight.Data[n*l.In : (n+1)*l.In])
	}
	for row := range rows {
		if _, ok := bad[row]; ok {
			continue
		}
		x := in[row*l.In : (row+1)*l.In]
		sx := float64(precision.FP8Scale(precision.Amax(x), margin))
		for n := range l.Out {
			w := l.Weight.Data[n*l.In : (n+1)*l.In]
			want, bound := fp8Bound(x, w, sx, float64(precision.FP8Scale(wAmax[n], 0)))
			if l.Bias != nil {
				want += float64(l.Bias.Data[n])
			}
			bound += math.Abs(want) * 0x1p-20 // the scale products and the bias add
			if g := float64(got[row*l.Out+n]); !(math.Abs(g-want) <= bound) {
				t.Fatalf("fp8: row %d output %d = %g; float64 %g, error %.3g over the per-row bound %.3g", row, n, g, want, math.Abs(g-want), bound)
			}
		}
	}
}

// fp8Bound returns Σ x[k]·w[k] in float64 and how far an fp8 GEMM may be
// from it, when x is quantized to E4M3 with scale sx and w with scale sw:
// an E4M3 value is within half an ulp of the scaled value, at most 2^-4 of
// it (3 mantissa bits) or 2^-10 (half the subnormal step), so |Δx| ≤
// max(|x|·2^-4, sx·2^-10), and likewise w; the products' errors are
// |Δx||w| + |x||Δw| + |Δx||Δw|. Accumulation adds at most 2^-10 of Σ |x̂·ŵ|
// (fp32 on the CPU; fp8 tensor cores sum in less than fp32, about 1e-4 of
// it per layer), and the float32 rounding of x / sx before quantizing is
// within the slack of 2^-20.
func fp8Bound(x, w []float32, sx, sw float64) (dot, bound float64) {
	for k := range x {
		xv, wv := float64(x[k]), float64(w[k])
		dx := max(math.Abs(xv)*0x1p-4, sx*0x1p-10) * (1 + 0x1p-20)
		dw := max(math.Abs(wv)*0x1p-4, sw*0x1p-10) * (1 + 0x1p-20)
		dot += xv * wv
		bound += dx*math.Abs(wv) + math.Abs(xv)*dw + dx*dw
		bound += (math.Abs(xv) + dx) * (math.Abs(wv) + dw) * 0x1p-10
	}
	return dot, bound
}
