package quality

import (
	"math"

	"github.com/gearbox-inference/gearbox"
)

// Compare measures got (rows × cols, row-major) against ref, the reference
// outputs of the same rows. classes says the outputs are class vectors, so
// top-1 agreement is measured too.
//
// Only values the reference carries as finite float32 are judged: where ref
// is NaN, ±Inf or rounds beyond float32's range, no precision can serve the
// value (outputs are float32), so it is left out of every metric and
// counted in OutOfRange. A judged value of got that is not finite is
// counted in NonFinite (which rules its precision out) and left out of the
// sums, which keeps every field encodable in JSON. RelL2 is ‖got − ref‖ /
// ‖ref‖ over the rest, of all rows (‖got − ref‖ when ref is zero there);
// Cosine and Top1 are means over the rows with a judged value.
func Compare(got []float32, ref []float64, rows, cols int, classes bool) gearbox.QualityMetrics {
	return newYardstick(ref, nil).compare(got, rows, cols, classes)
}

// yardstick is what a check measures outputs with: the reference, and
// which of its values are judged.
type yardstick struct {
	ref    []float64
	judged []bool
	count  int // judged values
}

// newYardstick judges the values of ref that are finite float32 and, where
// fp32 is given (the fp32 run of the same rows), at which fp32 is finite:
// a value that overflows at fp32, the most accurate precision served, is
// the input's doing, and counts against no precision.
func newYardstick(ref []float64, fp32 []float32) yardstick {
	y := yardstick{ref: ref, judged: make([]bool, len(ref))}
	for i, f := range ref {
		y.judged[i] = finite32(float32(f)) && (fp32 == nil || finite32(fp32[i]))
		if y.judged[i] {
			y.count++
		}
	}
	return y
}

// finite32 reports whether v is neither NaN nor infinite (its exponent
// bits are not all set).
func finite32(v float32) bool { return math.Float32bits(v)&0x7f800000 != 0x7f800000 }

// compare measures got as Compare describes, judging only y.judged.
func (y yardstick) compare(got []float32, rows, cols int, classes bool) gearbox.QualityMetrics {
	var m gearbox.QualityMetrics
	var num, den, cos float64
	judgedRows, agree := 0, 0
	for r := range rows {
		var dot, gg, ff float64
		gi, fi, n, fin := -1, -1, 0, 0 // arg-maxes; judged and finite values
		for i := r * cols; i < (r+1)*cols; i++ {
			if !y.judged[i] {
				m.OutOfRange++
				continue
			}
			n++
			f := y.ref[i]
			if fi < 0 || f > y.ref[fi] {
				fi = i
			}
			if !finite32(got[i]) {
				m.NonFinite++
				continue
			}
			fin++
			x := float64(got[i])
			d := x - f
			num += d * d
			den += f * f
			m.MaxAbs = math.Max(m.MaxAbs, math.Abs(d))
			dot += x * f
			gg += x * x
			ff += f * f
			if gi < 0 || got[i] > got[gi] {
				gi = i
			}
		}
		if n == 0 {
			continue // nothing in the row to judge
		}
		judgedRows++
		switch {
		case gg > 0 && ff > 0:
			cos += dot / (math.Sqrt(gg) * math.Sqrt(ff))
		case gg == 0 && ff == 0 && fin > 0:
			cos++ // both zero: identical
		}
		if gi >= 0 && gi == fi {
			agree++
		}
	}
	switch {
	case den > 0:
		m.RelL2 = math.Sqrt(num / den)
	default:
		m.RelL2 = math.Sqrt(num)
	}
	if judgedRows > 0 {
		m.Cosine = cos / float64(judgedRows)
		if classes {
			t := float64(agree) / float64(judgedRows)
			m.Top1 = &t
		}
	}
	return m
}
