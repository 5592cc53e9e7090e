package precision

import "github.com/gearbox-inference/gearbox/internal/par"

// NVFP4Block is the number of consecutive elements along K (a row) that
// share one NVFP4 block scale.
const NVFP4Block = 16

// nvfp4ScaleDiv is the tensor scale's divisor, E4M3Max × E2M1Max = 448 × 6.
const nvfp4ScaleDiv = 2688

// NVFP4 is a [Rows, Cols] tensor in NVFP4, Gearbox's fp4 weight format:
// E2M1 elements in blocks of 16 along each row, each block scaled by an E4M3
// block scale, the whole tensor by a float32 tensor scale.
// Value = (E2M1 × block scale) × TensorScale, multiplied in that order in
// float32.
//
// Rows are padded with zeros to PaddedCols(Cols, NVFP4Block) elements. Data
// holds each padded row in PaddedCols/2 bytes, element 2i in the low nibble
// of byte i and element 2i+1 in the high nibble; Scales holds PaddedCols/16
// E4M3 bytes per row. Both are row-major, ready to upload as they are.
// TensorScale 0 means the tensor is all zeros.
type NVFP4 struct {
	Rows, Cols  int
	Data        []byte
	Scales      []byte
	TensorScale float32
}

// QuantizeNVFP4 quantizes w, a row-major [rows, cols] tensor (a weight
// [N, K]), to NVFP4 with blocks along cols (K). The arithmetic is the
// bit-exactness contract with the GPU kernels; every operation is one IEEE
// float32 operation, rounding to nearest even, subnormals kept, in this
// order:
//
//	s_t = amax / 2688                      amax over the tensor; 2688 = 448 × 6
//	s_b = EncodeE4M3((bamax / 6) / s_t)    bamax over the block's elements present
//	d   = DecodeE4M3(s_b) * s_t            the block's denominator
//	q   = EncodeE2M1(x / d)                one division, never a reciprocal
//
// EncodeE4M3 and EncodeE2M1 saturate. When s_t is 0 (an all-zero tensor, or
// amax below about 3.8e-42) every element is 0 and TensorScale is 0. When
// s_b decodes to 0 (the block is tiny next to the tensor's amax) the block's
// elements are 0. A short last block is padded with zeros. It returns an
// error wrapping ErrShape when w does not hold rows × cols values.
func QuantizeNVFP4(w []float32, rows, cols int) (*NVFP4, error) {
	if err := checkShape(w, rows, cols); err != nil {
		return nil, err
	}
	pc := PaddedCols(cols, NVFP4Block)
	q := &NVFP4{
		Rows:   rows,
		Cols:   cols,
		Data:   make([]byte, rows*pc/2),
		Scales: make([]byte, rows*pc/NVFP4Block),
	}
	st := parAmax(w) / nvfp4ScaleDiv
	if st == 0 {
		return q, nil
	}
	q.TensorScale = st
	par.For(rows, grainRows(cols), func(lo, hi int) {
		var blk [NVFP4Block]float32
		for r := lo; r < hi; r++ {
			row := w[r*cols : (r+1)*cols]
			data := q.Data[r*pc/2 : (r+1)*pc/2]
			scales := q.Scales[r*pc/NVFP4Block : (r+1)*pc/NVFP4Block]
			for b := range scales {
				x := blockAt(row, b, blk[:])
				sb := EncodeE4M3(Amax(x) / E2M1Max / st)
				scales[b] = sb
				d := float32(e4m3Values[sb] * st)
				if d == 0 {
					continue // data is already zero
				}
				out := data[b*NVFP4Block/2 : (b+1)*NVFP4Block/2]
				for i := range out {
					out[i] = EncodeE2M1(x[2*i]/d) | EncodeE2M1(x[2*i+1]/d)<<4
				}
			}
		}
	})
	return q, nil
}

// PaddedCols returns the stored row length, PaddedCols(q.Cols, NVFP4Block).
func (q *NVFP4) PaddedCols() int { return PaddedCols(q.Cols, NVFP4Block) }

// Dequantize writes the Rows × Cols values q holds, row-major, into dst
// (reusing its storage when its capacity allows) and returns it. Each value
// is (DecodeE2M1(element) * DecodeE4M3(block scale)) * TensorScale in
// float32, in that order (the first product is exact).
func (q *NVFP4) Dequantize(dst []float32) []float32 {
	dst = grow(dst, q.Rows*q.Cols)
	pc := q.PaddedCols()
	st := q.TensorScale
	for r := range q.Rows {
		out := dst[r*q.Cols : (r+1)*q.Cols]
		data := q.Data[r*pc/2 : (r+1)*pc/2]
		scales := q.Scales[r*pc/NVFP4Block : (r+1)*pc/NVFP4Block]
		for b, sc := range scales {
			s := e4m3Values[sc]
			lo := b * NVFP4Block
			n := min(NVFP4Block, q.Cols-lo)
			o := out[lo : lo+n]
			d := data[lo/2 : lo/2+(n+1)/2]
			for i := 0; i+1 < n; i += 2 {
				c := d[i/2]
				o[i] = float32(e2m1Values[c&0xf]*s) * st
				o[i+1] = float32(e2m1Values[c>>4]*s) * st
			}
			if n%2 == 1 {
				o[n-1] = float32(e2m1Values[d[n/2]&0xf]*s) * st
			}
		}
	}
	return dst
}
