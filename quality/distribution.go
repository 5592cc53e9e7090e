package quality

import (
	"math"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
)

// CompareLogits measures a language model's next-token logits got (rows
// positions × vocab, row-major) against ref, the reference precision's
// logits of the same positions: the mean per-position KL divergence
// KL(ref ‖ got) in nats (KL), the fraction of positions whose most likely
// token is the reference's (Top1), the relative L2 error of the logits
// over all positions (RelL2), their largest absolute difference (MaxAbs)
// and the mean per-position cosine similarity (Cosine).
//
// A position where ref holds a non-finite logit is left out of every
// metric, its values counted in OutOfRange; one where got holds
// non-finite logits (and ref does not) is left out of the sums, those
// values counted in NonFinite, which rules got's precision out.
func CompareLogits(got, ref []float32, rows, vocab int) gearbox.QualityMetrics {
	var s logitStats
	s.add(got, ref, rows, vocab)
	return s.metrics()
}

// KL is KL(p ‖ q) in nats of the distributions softmax(ref) = p and
// softmax(got) = q, computed in float64 from their log-softmax:
// Σ p_i (log p_i − log q_i). It is 0 exactly for identical logits and the
// same for logits shifted by a constant. The logits must be finite.
func KL(ref, got []float32) float64 {
	lr, lg := kernels.LogSumExp(ref), kernels.LogSumExp(got)
	var kl float64
	for i := range ref {
		a := float64(ref[i]) - lr
		kl += math.Exp(a) * (a - (float64(got[i]) - lg))
	}
	// Rounding can leave a tiny negative sum where the distributions
	// (nearly) agree; KL itself is never negative.
	return max(kl, 0)
}

// logitStats accumulates CompareLogits over chunks of positions.
type logitStats struct {
	positions, agree      int
	kl, cos               float64 // sums over the positions judged
	num, den, maxAbs      float64 // ‖got − ref‖², ‖ref‖², max |got − ref|
	nonFinite, outOfRange int
}

// add compares rows positions of got with ref.
func (s *logitStats) add(got, ref []float32, rows, vocab int) {
	for r := range rows {
		g, f := got[r*vocab:(r+1)*vocab], ref[r*vocab:(r+1)*vocab]
		if !allFinite(f) {
			s.outOfRange += vocab
			continue
		}
		if !allFinite(g) {
			for _, v := range g {
				if !finite32(v) {
					s.nonFinite++
				}
			}
			continue
		}
		s.positions++
		s.kl += KL(f, g)
		if kernels.Argmax(g) == kernels.Argmax(f) {
			s.agree++
		}
		var dot, gg, ff float64
		for i := range f {
			x, y := float64(g[i]), float64(f[i])
			d := x - y
			s.num += d * d
			s.maxAbs = math.Max(s.maxAbs, math.Abs(d))
			dot += x * y
			gg += x * x
			ff += y * y
		}
		s.den += ff
		switch {
		case gg > 0 && ff > 0:
			s.cos += dot / (math.Sqrt(gg) * math.Sqrt(ff))
		case gg == 0 && ff == 0:
			s.cos++ // both zero: identical
		}
	}
}

// metrics is what the positions added so far measure.
func (s *logitStats) metrics() gearbox.QualityMetrics {
	m := gearbox.QualityMetrics{MaxAbs: s.maxAbs, NonFinite: s.nonFinite, OutOfRange: s.outOfRange}
	if s.den > 0 {
		m.RelL2 = math.Sqrt(s.num / s.den)
	} else {
		m.RelL2 = math.Sqrt(s.num)
	}
	kl, top1 := 0.0, 0.0
	if s.positions > 0 {
		n := float64(s.positions)
		kl, top1, m.Cosine = s.kl/n, float64(s.agree)/n, s.cos/n
	}
	m.KL, m.Top1 = &kl, &top1
	return m
}
