package quality

import (
	"math"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/par"
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
// softmax(got) = q, Σ p_i (log p_i − log q_i), computed in float64 from
// their log-sum-exps (compareRow). It is 0 exactly for identical logits and
// the same for logits shifted by a constant. The logits must be finite (for
// others it returns 0).
func KL(ref, got []float32) float64 {
	return compareRow(got, ref).kl
}

// logitStats accumulates CompareLogits over chunks of positions.
type logitStats struct {
	positions, agree      int
	kl, cos               float64 // sums over the positions judged
	num, den, maxAbs      float64 // ‖got − ref‖², ‖ref‖², max |got − ref|
	nonFinite, outOfRange int
}

// rowGrain is how many logits a goroutine of add compares at least: a
// part much smaller costs more to start than it saves.
const rowGrain = 1 << 16

// add compares rows positions of got with ref, the rows spread over the
// host's cores.
//
// Each position is compared on its own (compareRow) and the positions are
// then summed one by one in order, so the result is the same whatever the
// number of cores, the split of rows between goroutines, or the chunks of
// positions a sequence is added in. The counts, agreements and maxAbs are
// exact. Against the one-goroutine loop this replaced, kl and cos are
// summed over positions in the same order, but num and den are regrouped
// (per position, then over positions) and each position's KL is worked
// out from its log-sum-exps (compareRow) rather than its log-softmaxes:
// they agree to float64 rounding, not bit for bit.
func (s *logitStats) add(got, ref []float32, rows, vocab int) {
	per := make([]rowStats, rows)
	par.For(rows, max(1, rowGrain/max(vocab, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			per[r] = compareRow(got[r*vocab:(r+1)*vocab], ref[r*vocab:(r+1)*vocab])
		}
	})
	for _, r := range per {
		s.nonFinite += r.nonFinite
		s.outOfRange += r.outOfRange
		if !r.judged {
			continue
		}
		s.positions++
		if r.agree {
			s.agree++
		}
		s.kl += r.kl
		s.cos += r.cos
		s.num += r.num
		s.den += r.den
		s.maxAbs = max(s.maxAbs, r.maxAbs)
	}
}

// rowStats is one position's share of logitStats.
type rowStats struct {
	judged, agree         bool
	kl, cos               float64
	num, den, maxAbs      float64
	nonFinite, outOfRange int
}

// compareRow compares one position's logits g with the reference's f, in
// two passes: their largest logits (and which), then every sum at once.
//
// With fHi = max f, gHi = max g, S = Σ exp(f_i − fHi), T = Σ exp(g_i − gHi),
// log p_i − log q_i = (f_i − fHi) − (g_i − gHi) − log S + log T, so
// KL = Σ exp(f_i − fHi) ((f_i − fHi) − (g_i − gHi)) / S + log T − log S:
// two exponentials a logit where two log-softmaxes take three, and
// identical (or shifted) logits give 0 exactly. f_i − fHi and g_i − gHi
// are exact in float64, so no large logit's rounding enters the sum.
func compareRow(g, f []float32) rowStats {
	var st rowStats
	if len(f) == 0 {
		return rowStats{judged: true, agree: true, cos: 1} // nothing to tell apart
	}
	fm, gm := 0, 0 // argmaxes, the lowest id on ties
	fFinite, gFinite := true, true
	for i := range f {
		x, y := g[i], f[i]
		if !finite32(y) {
			fFinite = false
			break
		}
		if !finite32(x) {
			gFinite = false
		}
		if y > f[fm] {
			fm = i
		}
		if x > g[gm] {
			gm = i
		}
	}
	switch {
	case !fFinite:
		st.outOfRange = len(f)
		return st
	case !gFinite:
		for _, v := range g {
			if !finite32(v) {
				st.nonFinite++
			}
		}
		return st
	}
	st.judged, st.agree = true, fm == gm
	fHi, gHi := float64(f[fm]), float64(g[gm])
	var sf, sg, kl, dot, gg, ff, num, maxAbs float64
	for i := range f {
		x, y := float64(g[i]), float64(f[i])
		a, b := y-fHi, x-gHi
		ef := math.Exp(a)
		sf += ef
		sg += math.Exp(b)
		kl += ef * (a - b)
		d := x - y
		num += d * d
		maxAbs = max(maxAbs, math.Abs(d))
		dot += x * y
		gg += x * x
		ff += y * y
	}
	// Rounding can leave a tiny negative sum where the distributions
	// (nearly) agree; KL itself is never negative.
	st.kl = max(kl/sf+math.Log(sg)-math.Log(sf), 0)
	st.num, st.den, st.maxAbs = num, ff, maxAbs
	switch {
	case gg > 0 && ff > 0:
		st.cos = dot / (math.Sqrt(gg) * math.Sqrt(ff))
	case gg == 0 && ff == 0:
		st.cos = 1 // both zero: identical
	}
	return st
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
