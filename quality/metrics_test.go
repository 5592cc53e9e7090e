package quality

import (
	"context"
	"math"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
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
