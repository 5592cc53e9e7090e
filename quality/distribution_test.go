package quality

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestKL checks KL against values worked out by hand in float64.
func TestKL(t *testing.T) {
	ln3 := float32(math.Log(3))
	e, e2, e3 := math.E, math.E*math.E, math.E*math.E*math.E
	for _, c := range []struct {
		name     string
		ref, got []float32
		want     float64
		tol      float64
	}{
		// p uniform over 2, q = (3/4, 1/4).
		{"two tokens", []float32{0, 0}, []float32{ln3, 0}, 0.5*math.Log(0.5/0.75) + 0.5*math.Log(0.5/0.25), 1e-7},
		// p uniform over 3, q = (3/5, 1/5, 1/5).
		{"three tokens", []float32{0, 0, 0}, []float32{ln3, 0, 0}, math.Log(5.0/9)/3 + 2*math.Log(5.0/3)/3, 1e-7},
		// q is p reversed: both share one normaliser, so KL = Σ p_i (x_i − y_i) = 2 (p₃ − p₁).
		{"reversed", []float32{1, 2, 3}, []float32{3, 2, 1}, 2 * (e3 - e) / (e + e2 + e3), 1e-12},
		{"identical", []float32{0.5, -2, 7.25}, []float32{0.5, -2, 7.25}, 0, 0},
		{"shifted by a constant", []float32{1, 2, 3}, []float32{8, 9, 10}, 0, 1e-15},
		{"one certain token", []float32{0, -200}, []float32{0, -200}, 0, 0},
	} {
		got := KL(c.ref, c.got)
		if !(math.Abs(got-c.want) <= c.tol) || got < 0 {
			t.Errorf("%s: KL %.17g; want %.17g (± %g)", c.name, got, c.want, c.tol)
		}
	}
}

// TestCompareLogits checks every metric of two positions against values
// worked out by hand: one agreeing on the most likely token (a tie in the
// reference goes to the lowest id), one not.
func TestCompareLogits(t *testing.T) {
	ln3 := float32(math.Log(3))
	e, e2, e3 := math.E, math.E*math.E, math.E*math.E*math.E
	ref := []float32{0, 0, 0, 1, 2, 3}
	got := []float32{ln3, 0, 0, 3, 2, 1}
	m := CompareLogits(got, ref, 2, 3)
	kl0 := math.Log(5.0/9)/3 + 2*math.Log(5.0/3)/3
	kl1 := 2 * (e3 - e) / (e + e2 + e3)
	if m.KL == nil || math.Abs(*m.KL-(kl0+kl1)/2) > 1e-7 {
		t.Errorf("mean KL %v; want %.10g", m.KL, (kl0+kl1)/2)
	}
	if m.Top1 == nil || *m.Top1 != 0.5 {
		t.Errorf("top1 %v; want 0.5", m.Top1)
	}
	l := float64(ln3)
	if want := math.Sqrt((l*l + 8) / 14); math.Abs(m.RelL2-want) > 1e-12 {
		t.Errorf("rel L2 %.17g; want %.17g", m.RelL2, want)
	}
	// Row 0: the reference is all zeros (cosine of a zero vector: not
	// counted as agreement); row 1: (1·3 + 2·2 + 3·1) / 14.
	if want := (0 + 10.0/14) / 2; math.Abs(m.Cosine-want) > 1e-12 {
		t.Errorf("cosine %g; want %g", m.Cosine, want)
	}
	if m.MaxAbs != 2 || m.NonFinite != 0 || m.OutOfRange != 0 {
		t.Errorf("max abs %g, non-finite %d, out of range %d; want 2, 0, 0", m.MaxAbs, m.NonFinite, m.OutOfRange)
	}

	same := CompareLogits(ref, ref, 2, 3)
	if *same.KL != 0 || *same.Top1 != 1 || same.RelL2 != 0 {
		t.Errorf("identical logits: KL %g, top1 %g, rel L2 %g; want 0, 1, 0", *same.KL, *same.Top1, same.RelL2)
	}
}

// TestCompareLogitsNonFinite: a position whose reference is not finite is
// out of range; one where only the served logits are not is counted
// against them and left out of the means.
func TestCompareLogitsNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	ref := []float32{1, 2, inf, 0, 1, 2, 1, 2}
	got := []float32{1, 2, 1, 2, nan, inf, 2, 1}
	m := CompareLogits(got, ref, 4, 2)
	if m.OutOfRange != 2 || m.NonFinite != 2 {
		t.Errorf("out of range %d, non-finite %d; want 2, 2", m.OutOfRange, m.NonFinite)
	}
	// Judged: position 0 (identical) and 3 (reversed).
	want := (0 + KL([]float32{1, 2}, []float32{2, 1})) / 2
	if math.Abs(*m.KL-want) > 1e-15 || *m.Top1 != 0.5 {
		t.Errorf("KL %g, top1 %g; want %g, 0.5 over the two judged positions", *m.KL, *m.Top1, want)
	}
}

// llamaLogits returns rows positions of logits over vocab ids shaped like
// a language model's (a spread of a few nats with one clear favourite per
// row) as ref, and got = ref plus a lower precision's small error.
func llamaLogits(seed uint64, rows, vocab int) (got, ref []float32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	ref, got = make([]float32, rows*vocab), make([]float32, rows*vocab)
	for r := range rows {
		for i := range vocab {
			ref[r*vocab+i] = float32(2.5 * rng.NormFloat64())
		}
		ref[r*vocab+rng.IntN(vocab)] += 15
	}
	for i, v := range ref {
		got[i] = v + float32(0.05*rng.NormFloat64())
	}
	return got, ref
}

// BenchmarkLogitStats compares 128 positions of a 128,256-id vocabulary
// (Llama 3's), one teacher-forced step of the language-model checker.
func BenchmarkLogitStats(b *testing.B) {
	const rows, vocab = 128, 128256
	got, ref := llamaLogits(1, rows, vocab)
	b.SetBytes(int64(2 * 4 * rows * vocab))
	for b.Loop() {
		var s logitStats
		s.add(got, ref, rows, vocab)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}
