package precision

import (
	"fmt"

	"github.com/gearbox-inference/gearbox/internal/par"
)

// FP8Tensor is a [Rows, Cols] tensor in fp8 E4M3 with float32 scales:
// Value = DecodeE4M3(Data[r×Cols + c]) × scale(r). Data is row-major, one
// byte per element; Scales holds one scale per row (per output channel, for
// a weight [N, K]) or a single scale for the whole tensor.
type FP8Tensor struct {
	Rows, Cols int
	Data       []byte
	Scales     []float32
}

// QuantizeFP8PerChannel quantizes w, a row-major [rows, cols] tensor, to
// E4M3 with one scale per row: scale_r = FP8Scale(amax_r, margin) and q =
// EncodeE4M3(w / scale_r), an IEEE float32 division. For a weight [N, K]
// the rows are output channels; for activations [M, K] they are tokens
// (dynamic per-row scaling: a row's values do not depend on the other
// rows). A row of zeros gets scale 1; NaNs are left out of the amax (and
// quantize to NaN); a row holding ±Inf gets scale +Inf, so it dequantizes
// to NaN and 0 × Inf = NaN: it spoils no other row. It returns an error wrapping ErrShape when w does
// not hold rows × cols values and ErrInvalidMargin for a margin outside
// 0..MaxMargin.
func QuantizeFP8PerChannel(w []float32, rows, cols, margin int) (*FP8Tensor, error) {
	if err := checkFP8(w, rows, cols, margin); err != nil {
		return nil, err
	}
	q := &FP8Tensor{Rows: rows, Cols: cols, Data: make([]byte, rows*cols), Scales: make([]float32, rows)}
	par.For(rows, grainRows(cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := w[r*cols : (r+1)*cols]
			s := FP8Scale(Amax(row), margin)
			q.Scales[r] = s
			EncodeE4M3Slice(q.Data[r*cols:(r+1)*cols], row, s)
		}
	})
	return q, nil
}

// QuantizeFP8PerTensor quantizes x, a row-major [rows, cols] tensor, to
// E4M3 with one scale: scale = FP8Scale(amax, margin) over the whole tensor
// and q = EncodeE4M3(x / scale): the per-tensor weight variant. It is not
// for activations of a batch of unrelated rows: one row's amax would set
// every row's scale. Errors as QuantizeFP8PerChannel.
func QuantizeFP8PerTensor(x []float32, rows, cols, margin int) (*FP8Tensor, error) {
	if err := checkFP8(x, rows, cols, margin); err != nil {
		return nil, err
	}
	s := FP8Scale(Amax(x), margin)
	q := &FP8Tensor{Rows: rows, Cols: cols, Data: make([]byte, len(x)), Scales: []float32{s}}
	EncodeE4M3Slice(q.Data, x, s)
	return q, nil
}

func checkFP8(x []float32, rows, cols, margin int) error {
	if margin < 0 || margin > MaxMargin {
		return fmt.Errorf("%w: %d (want 0..%d)", ErrInvalidMargin, margin, MaxMargin)
	}
	return checkShape(x, rows, cols)
}

// Scale returns the scale of row r (the only scale of a per-tensor q).
func (q *FP8Tensor) Scale(r int) float32 {
	if len(q.Scales) == 1 {
		return q.Scales[0]
	}
	return q.Scales[r]
}

// Dequantize writes the Rows × Cols values q holds, row-major, into dst
// (reusing its storage when its capacity allows) and returns it: each value
// is DecodeE4M3(q) × scale, one float32 multiplication.
func (q *FP8Tensor) Dequantize(dst []float32) []float32 {
	dst = grow(dst, q.Rows*q.Cols)
	for r := range q.Rows {
		DecodeE4M3Slice(dst[r*q.Cols:(r+1)*q.Cols], q.Data[r*q.Cols:(r+1)*q.Cols], q.Scale(r))
	}
	return dst
}
