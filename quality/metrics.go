package quality

import (
	"math"

	"github.com/gearbox-inference/gearbox"
)

// Compare measures got (rows × cols, row-major) against ref, the reference
// outputs of the same rows. classes says the outputs are class vectors, so
// top-1 agreement is measured too.
//
// RelL2 is ‖got − ref‖ / ‖ref‖ over all rows, with non-finite values of got
// left out of the sums: they are counted in NonFinite instead, which rules
// the precision out whatever RelL2 says (and keeps every field encodable in
// JSON). A zero ref gives RelL2 = ‖got‖ (absolute).
func Compare(got []float32, ref []float64, rows, cols int, classes bool) gearbox.QualityMetrics {
	var m gearbox.QualityMetrics
	var num, den, cos float64
	agree := 0
	for r := range rows {
		g, f := got[r*cols:(r+1)*cols], ref[r*cols:(r+1)*cols]
		var dot, gg, ff float64
		gi, fi := 0, 0
		for i, v := range g {
			x := float64(v)
			if math.IsNaN(x) || math.IsInf(x, 0) {
				m.NonFinite++
				continue
			}
			d := x - f[i]
			num += d * d
			den += f[i] * f[i]
			m.MaxAbs = math.Max(m.MaxAbs, math.Abs(d))
			dot += x * f[i]
			gg += x * x
			ff += f[i] * f[i]
			if x > float64(g[gi]) || math.IsNaN(float64(g[gi])) {
				gi = i
			}
			if f[i] > f[fi] {
				fi = i
			}
		}
		switch {
		case gg > 0 && ff > 0:
			cos += dot / (math.Sqrt(gg) * math.Sqrt(ff))
		case gg == 0 && ff == 0:
			cos++ // both zero: identical
		}
		if gi == fi {
			agree++
		}
	}
	switch {
	case den > 0:
		m.RelL2 = math.Sqrt(num / den)
	default:
		m.RelL2 = math.Sqrt(num)
	}
	if rows > 0 {
		m.Cosine = cos / float64(rows)
		if classes {
			t := float64(agree) / float64(rows)
			m.Top1 = &t
		}
	}
	return m
}
