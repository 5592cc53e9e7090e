package precision

import "math"

// MXFP4Block is the number of consecutive elements along K (a row) that
// share one MXFP4 scale.
const MXFP4Block = 32

// MXScale returns the E8M0 scale for an MX fp4 block whose largest
// magnitude is amax: 2^k with k the smallest integer such that
// amax ≤ 6 × 2^k, that is 2^ceil(log2(amax / 6)) computed exactly (NVIDIA's
// round-up convention; OCP's reference rounds the exponent down and clips).
// Rounding up means no element of the block ever clips. k is clamped to
// -127..127, so an all-zero block gets 0x00 (2^-127). A NaN amax gives 0xff.
//
// From amax's bits: with amax = M × 2^E, 1 ≤ M < 2, k = E - 2 when M ≤ 1.5
// and E - 1 otherwise.
func MXScale(amax float32) uint8 {
	a := math.Float32bits(amax) & 0x7fffffff
	switch {
	case a > 0x7f800000:
		return e8m0NaN
	case a < 0x00800000: // zero or subnormal: far below 6 × 2^-127
		return 0
	}
	k := int(a>>23) - 127 - 1
	if a&0x7fffff <= 0x400000 {
		k--
	}
	return uint8(min(max(k, -127), 127) + 127)
}

// MXFP4 is a [Rows, Cols] tensor in MXFP4 (OCP Microscaling): E2M1 elements
// in blocks of 32 along each row, each block scaled by a power of two
// (E8M0), with no tensor scale. Value = E2M1 × 2^(scale - 127).
//
// Rows are padded with zeros to PaddedCols(Cols, MXFP4Block) elements. Data
// holds each padded row in PaddedCols/2 bytes, element 2i in the low nibble
// of byte i and element 2i+1 in the high nibble; Scales holds PaddedCols/32
// bytes per row. Both are row-major, ready to upload as they are.
type MXFP4 struct {
	Rows, Cols int
	Data       []byte
	Scales     []byte
}

// QuantizeMXFP4 quantizes w, a row-major [rows, cols] tensor, to MXFP4 with
// blocks along cols (K). Each block's scale is MXScale(block amax), taken
// over the elements present (a short last block is padded with zeros), and
// each element is EncodeE2M1(x / scale). Dividing by a power of two is
// exact, so it is computed as the product with the exact reciprocal. It
// returns an error wrapping ErrShape when w does not hold rows × cols
// values.
func QuantizeMXFP4(w []float32, rows, cols int) (*MXFP4, error) {
	if err := checkShape(w, rows, cols); err != nil {
		return nil, err
	}
	pc := PaddedCols(cols, MXFP4Block)
	q := &MXFP4{
		Rows:   rows,
		Cols:   cols,
		Data:   make([]byte, rows*pc/2),
		Scales: make([]byte, rows*pc/MXFP4Block),
	}
	var blk [MXFP4Block]float32
	for r := range rows {
		row := w[r*cols : (r+1)*cols]
		data := q.Data[r*pc/2 : (r+1)*pc/2]
		scales := q.Scales[r*pc/MXFP4Block : (r+1)*pc/MXFP4Block]
		for b := range scales {
			x := blockAt(row, b, blk[:])
			s := MXScale(Amax(x))
			scales[b] = s
			inv := mxInverse(s)
			out := data[b*MXFP4Block/2 : (b+1)*MXFP4Block/2]
			for i := range out {
				out[i] = EncodeE2M1(x[2*i]*inv) | EncodeE2M1(x[2*i+1]*inv)<<4
			}
		}
	}
	return q, nil
}

// PaddedCols returns the stored row length, PaddedCols(q.Cols, MXFP4Block).
func (q *MXFP4) PaddedCols() int { return PaddedCols(q.Cols, MXFP4Block) }

// Dequantize writes the Rows × Cols values q holds, row-major, into dst
// (reusing its storage when its capacity allows) and returns it. Each value
// is DecodeE2M1(element) × DecodeE8M0(scale), exact.
func (q *MXFP4) Dequantize(dst []float32) []float32 {
	dst = grow(dst, q.Rows*q.Cols)
	pc := q.PaddedCols()
	for r := range q.Rows {
		out := dst[r*q.Cols : (r+1)*q.Cols]
		data := q.Data[r*pc/2 : (r+1)*pc/2]
		scales := q.Scales[r*pc/MXFP4Block : (r+1)*pc/MXFP4Block]
		for b, sc := range scales {
			s := DecodeE8M0(sc)
			lo := b * MXFP4Block
			n := min(MXFP4Block, q.Cols-lo)
			o := out[lo : lo+n]
			d := data[lo/2 : lo/2+(n+1)/2]
			for i := 0; i+1 < n; i += 2 {
				c := d[i/2]
				o[i] = e2m1Values[c&0xf] * s
				o[i+1] = e2m1Values[c>>4] * s
			}
			if n%2 == 1 {
				o[n-1] = e2m1Values[d[n/2]&0xf] * s
			}
		}
	}
	return dst
}

// mxInverse returns 1 / DecodeE8M0(s), exact, for s in 0..254 (s is never
// 0xff here: Amax skips NaNs).
func mxInverse(s uint8) float32 {
	if s >= 254 {
		return math.Float32frombits(0x00400000) // 2^-127
	}
	return math.Float32frombits(uint32(254-s) << 23)
}
