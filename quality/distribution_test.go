package quality

import (
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
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

// compareLogitsRef is CompareLogits worked out the plain way, one
// position after another in float64: each position's log-softmaxes, its
// KL from them, and the L2 sums over all logits at once, every sum
// compensated (Neumaier) so that it is good to the last bit or so.
func compareLogitsRef(got, ref []float32, rows, vocab int) gearbox.QualityMetrics {
	sum := func(n int, term func(i int) float64) float64 {
		var s, c float64
		for i := range n {
			x := term(i)
			t := s + x
			if math.Abs(s) >= math.Abs(x) {
				c += (s - t) + x
			} else {
				c += (x - t) + s
			}
			s = t
		}
		return s + c
	}
	logSoftmax := func(v []float32) []float64 {
		hi := float64(v[kernels.Argmax(v)])
		lse := hi + math.Log(sum(len(v), func(i int) float64 { return math.Exp(float64(v[i]) - hi) }))
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x) - lse
		}
		return out
	}
	var m gearbox.QualityMetrics
	var judged []int
	for r := range rows {
		g, f := got[r*vocab:(r+1)*vocab], ref[r*vocab:(r+1)*vocab]
		switch {
		case !allFinite(f):
			m.OutOfRange += vocab
		case !allFinite(g):
			for _, v := range g {
				if !finite32(v) {
					m.NonFinite++
				}
			}
		default:
			judged = append(judged, r)
		}
	}
	n := len(judged)
	at := func(k, i int) (x, y float64) {
		j := judged[k]*vocab + i
		return float64(got[j]), float64(ref[j])
	}
	var kls, coss []float64
	agree := 0
	for k, r := range judged {
		g, f := got[r*vocab:(r+1)*vocab], ref[r*vocab:(r+1)*vocab]
		lp, lq := logSoftmax(f), logSoftmax(g)
		kls = append(kls, sum(vocab, func(i int) float64 { return math.Exp(lp[i]) * (lp[i] - lq[i]) }))
		dot := sum(vocab, func(i int) float64 { x, y := at(k, i); return x * y })
		gg := sum(vocab, func(i int) float64 { x, _ := at(k, i); return x * x })
		ff := sum(vocab, func(i int) float64 { _, y := at(k, i); return y * y })
		coss = append(coss, dot/math.Sqrt(gg*ff))
		if kernels.Argmax(g) == kernels.Argmax(f) {
			agree++
		}
		for i := range vocab {
			x, y := at(k, i)
			m.MaxAbs = max(m.MaxAbs, math.Abs(x-y))
		}
	}
	num := sum(n*vocab, func(i int) float64 { x, y := at(i/vocab, i%vocab); return (x - y) * (x - y) })
	den := sum(n*vocab, func(i int) float64 { _, y := at(i/vocab, i%vocab); return y * y })
	kl := sum(n, func(k int) float64 { return kls[k] }) / float64(n)
	top1 := float64(agree) / float64(n)
	m.KL, m.Top1, m.RelL2, m.Cosine = &kl, &top1, math.Sqrt(num/den), sum(n, func(k int) float64 { return coss[k] })/float64(n)
	return m
}

// TestCompareLogitsAgainstFloat64 compares many positions of a large
// vocabulary, some of them with non-finite logits, with the plain float64
// computation: the counts and largest difference exactly, the rest to
// float64 rounding. However the positions are split between cores, or
// into chunks as a long sequence is, the metrics are the same to the bit.
func TestCompareLogitsAgainstFloat64(t *testing.T) {
	const rows, vocab = 96, 5003
	got, ref := llamaLogits(7, rows, vocab)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	row := func(v []float32, r int) []float32 { return v[r*vocab : (r+1)*vocab] }
	ref[3*vocab+17] = nan                              // out of range
	ref[40*vocab+vocab-1], got[40*vocab+2] = -inf, nan // out of range (got's NaN uncounted)
	got[9*vocab+5], got[9*vocab+800] = inf, nan        // not finite: 2
	got[77*vocab] = -inf                               // not finite: 1
	copy(row(got, 20), row(ref, 20))                   // identical
	for i, v := range row(ref, 21) {                   // shifted by a constant
		row(got, 21)[i] = v + 3
	}
	// A position where the top two reference tokens are close, so that
	// got's noise flips its most likely token.
	f := row(ref, 50)
	f[0], f[1] = 30, 30.001
	row(got, 50)[0], row(got, 50)[1] = 30.01, 30

	want := compareLogitsRef(got, ref, rows, vocab)
	m := CompareLogits(got, ref, rows, vocab)
	if m.OutOfRange != 2*vocab || m.NonFinite != 3 || m.MaxAbs != want.MaxAbs {
		t.Errorf("out of range %d, non-finite %d, max abs %g; want %d, 3, %g", m.OutOfRange, m.NonFinite, m.MaxAbs, 2*vocab, want.MaxAbs)
	}
	if *m.Top1 != *want.Top1 || *want.Top1 == 1 {
		t.Errorf("top1 %g; want %g (below 1)", *m.Top1, *want.Top1)
	}
	// The reference's log-probabilities of logits near 20 round by about
	// 4e-15 each, so its KL (some 1e-4 nats here) is good to about that.
	for _, c := range []struct {
		name           string
		got, want, tol float64
	}{
		{"KL", *m.KL, *want.KL, 1e-14},
		{"rel L2", m.RelL2, want.RelL2, 1e-13 * want.RelL2},
		{"cosine", m.Cosine, want.Cosine, 1e-13},
	} {
		if !(math.Abs(c.got-c.want) <= c.tol) {
			t.Errorf("%s %.17g; want %.17g (± %g, float64)", c.name, c.got, c.want, c.tol)
		}
	}

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 3, 8} {
		runtime.GOMAXPROCS(procs)
		for _, chunk := range []int{rows, 7, 1} {
			var s logitStats
			for lo := 0; lo < rows; lo += chunk {
				hi := min(rows, lo+chunk)
				s.add(got[lo*vocab:hi*vocab], ref[lo*vocab:hi*vocab], hi-lo, vocab)
			}
			if c := s.metrics(); !reflect.DeepEqual(c, m) {
				t.Errorf("GOMAXPROCS %d, chunks of %d positions: %+v; want %+v, as at once", procs, chunk, c, m)
			}
		}
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
