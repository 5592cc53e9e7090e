package quality

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func TestCompare(t *testing.T) {
	ref := []float64{3, 4, 0, 1, 0, 0}
	got := []float32{3, 4, 0, 0, 1, 0} // row 0 exact; row 1 off by (−1, +1)
	m := Compare(got, ref, 2, 3, true)
	if want := math.Sqrt(2.0 / 26); math.Abs(m.RelL2-want) > 1e-15 {
		t.Errorf("rel l2 %g; want %g", m.RelL2, want)
	}
	if m.MaxAbs != 1 || m.NonFinite != 0 {
		t.Errorf("max abs %g, non-finite %d", m.MaxAbs, m.NonFinite)
	}
	if math.Abs(m.Cosine-0.5) > 1e-15 { // (1 + 0) / 2
		t.Errorf("cosine %g; want 0.5", m.Cosine)
	}
	if m.Top1 == nil || *m.Top1 != 0.5 {
		t.Errorf("top1 %v; want 0.5", m.Top1)
	}
	nan := float32(math.NaN())
	m = Compare([]float32{nan, 4, float32(math.Inf(1))}, []float64{3, 4, 5}, 1, 3, false)
	if m.NonFinite != 2 || m.Top1 != nil || m.RelL2 != 0 {
		t.Errorf("non-finite: %+v", m)
	}
}

// TestCompareJudgesOnlyWhatFloat32Carries is the comparison rule: a value
// the reference does not carry as a finite float32, or at which the fp32
// run is not finite, counts against no precision (out of range); a
// non-finite output elsewhere counts against its own (non-finite).
func TestCompareJudgesOnlyWhatFloat32Carries(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		name       string
		got        []float32
		ref        []float64
		fp32       []float32 // nil: not needed
		nonFinite  int
		outOfRange int
		relL2      float64
	}{
		{"all judged", []float32{3, 4}, []float64{3, 4}, nil, 0, 0, 0},
		{"non-finite where the reference is finite", []float32{nan, 4}, []float64{3, 4}, nil, 1, 0, 0},
		{"reference beyond float32", []float32{nan, 4}, []float64{1e39, 4}, nil, 0, 1, 0},
		{"reference rounds to float32's largest", []float32{nan, 4}, []float64{math.MaxFloat32 * (1 + 1e-9), 4}, nil, 1, 0, 0},
		{"reference rounds beyond float32", []float32{inf, 4}, []float64{3.5e38, 4}, nil, 0, 1, 0},
		{"reference not a number", []float32{3, 4}, []float64{math.NaN(), 4}, nil, 0, 1, 0},
		{"fp32 overflows too", []float32{nan, 4}, []float64{3, 4}, []float32{nan, 4}, 0, 1, 0},
		{"fp32 finite", []float32{inf, 4}, []float64{3, 4}, []float32{3, 4}, 1, 0, 0},
		{"out of range values do not dilute the error", []float32{3, 5}, []float64{1e39, 4}, nil, 0, 1, 0.25},
		{"finite output, fp32 not", []float32{3, 5}, []float64{3, 4}, []float32{inf, 4}, 0, 1, 0.25},
	} {
		m := newYardstick(c.ref, c.fp32).compare(c.got, 1, len(c.got), false)
		if m.NonFinite != c.nonFinite || m.OutOfRange != c.outOfRange || m.RelL2 != c.relL2 {
			t.Errorf("%s: non-finite %d, out of range %d, rel l2 %g; want %d, %d, %g",
				c.name, m.NonFinite, m.OutOfRange, m.RelL2, c.nonFinite, c.outOfRange, c.relL2)
		}
	}

	// A row with nothing judged takes no part in the per-row means.
	ref := []float64{1e39, 2e39, 0, 1}
	got := []float32{nan, nan, 0, 1}
	m := Compare(got, ref, 2, 2, true)
	if m.Cosine != 1 || m.Top1 == nil || *m.Top1 != 1 || m.OutOfRange != 2 || m.NonFinite != 0 {
		t.Errorf("a row out of range: %+v (top1 %v); want cosine 1, top1 1 over the other row", m, m.Top1)
	}
	if y := newYardstick([]float64{1e39, math.Inf(-1)}, nil); y.count != 0 {
		t.Errorf("judged %d values of a reference beyond float32", y.count)
	}
}

// fp32Referenced hides the CPU backend's float64 reference, so checks
// compare with its fp32 run, as on a device without one.
type fp32Referenced struct{ kernels.Backend }

// TestCheckLeavesOutWhatOverflowsAtFP32 checks a batch with a row of 3e38s,
// whose outputs overflow float32 at every precision, among ordinary rows:
// the report judges the ordinary rows exactly as without it, served at fp32
// or (with the fp32 run made for the judgement) tf32, with either
// reference; a batch of only that row has nothing to judge. The fp8
// candidate too: its activations are scaled per row, so the 3e38 row
// cannot spoil the others.
func TestCheckLeavesOutWhatOverflowsAtFP32(t *testing.T) {
	m, err := model.Synth(model.SynthConfig{Name: "c", Dims: []int{64, 128, 32}, Act: model.GELU, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	cpuB, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const rows = 4
	huge := make([]float32, m.InputFeatures)
	for i := range huge {
		huge[i] = 3e38
	}
	normal := make([]float32, rows*m.InputFeatures)
	for i := range normal {
		normal[i] = float32(math.Sin(float64(i)))
	}
	ctx := context.Background()
	for _, b := range []kernels.Backend{cpuB, fp32Referenced{cpuB}} {
		c, err := NewChecker(Config{Sample: 1}, b, "w1", nil, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		for _, served := range []precision.Format{precision.FP32, precision.TF32, precision.BF16} {
			check := func(in []float32) (*gearbox.QualityReport, error) {
				n := len(in) / m.InputFeatures
				out, err := b.Forward(ctx, m, served, in, n)
				if err != nil {
					t.Fatal(err)
				}
				return c.Check(ctx, m, served, in, out, n)
			}
			want, err := check(normal)
			if err != nil {
				t.Fatal(err)
			}
			got, err := check(append(slices.Clone(huge), normal...))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []struct {
				role      string
				got, want *gearbox.QualityMetrics
			}{{"served", &got.ServedMetrics, &want.ServedMetrics}, {"candidate", got.CandidateMetrics, want.CandidateMetrics}} {
				w := *p.want
				w.OutOfRange = m.OutputFeatures
				if *p.got != w {
					t.Errorf("%s reference, served %s, %s: %+v; want %+v", got.Reference, served, p.role, *p.got, w)
				}
			}
			if _, err := check(huge); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("%s reference, served %s: a batch of only the 3e38 row: error %v; want ErrOutOfRange", want.Reference, served, err)
			}
		}
	}
}

// TestCheckMeasuresEmulatedPrecisions runs real checks on the CPU backend:
// the served fp32 against float64 and the tf32 candidate in shadow.
func TestCheckMeasuresEmulatedPrecisions(t *testing.T) {
	m, err := model.Synth(model.SynthConfig{Name: "c", Dims: []int{64, 128, 32}, Act: model.GELU, Seed: 3, Softmax: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var reports []*gearbox.QualityReport
	c, err := NewChecker(Config{Sample: 1}, b, "w1", func(_ context.Context, r *gearbox.QualityReport) error {
		reports = append(reports, r)
		return nil
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	const rows = 16
	in := make([]float32, rows*m.InputFeatures)
	for i := range in {
		in[i] = float32(math.Sin(float64(i)))
	}
	for _, served := range []precision.Format{precision.FP32, precision.BF16, precision.FP4} {
		out, err := b.Forward(context.Background(), m, served, in, rows)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Check(context.Background(), m, served, in, out, rows)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		if r.Reference != "fp64" || r.Rows != rows || r.Served != served || r.ServedMetrics.Top1 == nil {
			t.Fatalf("report %+v", r)
		}
		hi := map[precision.Format]float64{precision.FP32: 1e-6, precision.BF16: 2e-2, precision.FP4: 0.5}[served]
		if e := r.ServedMetrics.RelL2; !(e > 0 && e < hi) {
			t.Errorf("%s served error %g; want in (0, %g)", served, e, hi)
		}
		cand, ok := precision.Next(m.Precision.Ladder, served)
		if !ok {
			if r.Candidate != "" {
				t.Errorf("candidate %s after the last rung", r.Candidate)
			}
			continue
		}
		if r.Candidate != cand || r.CandidateMetrics.RelL2 <= r.ServedMetrics.RelL2 {
			t.Errorf("%s: candidate %s error %g not above served %g", served, r.Candidate, r.CandidateMetrics.RelL2, r.ServedMetrics.RelL2)
		}
	}
}
