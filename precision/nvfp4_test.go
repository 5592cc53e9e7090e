package precision_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/precision"
)

// refNVFP4 quantizes w by the documented contract, each float32 operation
// done in float64 and rounded to float32 once (exact for these operations),
// the conversions by brute force.
func refNVFP4(w []float32, rows, cols int) (data, scales []byte, st float32) {
	pc := (cols + 15) / 16 * 16
	data = make([]byte, rows*pc/2)
	scales = make([]byte, rows*pc/16)
	var amax float64
	for _, x := range w {
		amax = max(amax, math.Abs(float64(x)))
	}
	st = float32(amax / 2688)
	if st == 0 {
		return data, scales, 0
	}
	for r := range rows {
		for b := 0; b < pc/16; b++ {
			var bamax float64
			for i := b * 16; i < min(b*16+16, cols); i++ {
				bamax = max(bamax, math.Abs(float64(w[r*cols+i])))
			}
			t1 := float32(bamax / 6)
			t2 := float32(float64(t1) / float64(st))
			sb := uint8(gridE4M3.nearest(float64(t2)))
			scales[r*pc/16+b] = sb
			d := float32(float64(precision.DecodeE4M3(sb)) * float64(st))
			if d == 0 {
				continue
			}
			for i := b * 16; i < min(b*16+16, cols); i++ {
				c := e2m1Ref(float32(float64(w[r*cols+i]) / float64(d)))
				data[(r*pc+i)/2] |= c << (4 * (i % 2))
			}
		}
	}
	return data, scales, st
}

func TestNVFP4MatchesContract(t *testing.T) {
	for _, tc := range tensorCases() {
		q, err := precision.QuantizeNVFP4(tc.data, tc.rows, tc.cols)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		data, scales, st := refNVFP4(tc.data, tc.rows, tc.cols)
		if q.TensorScale != st || !slices.Equal(q.Scales, scales) || !slices.Equal(q.Data, data) {
			t.Errorf("%s [%d, %d]: bytes differ from the reference (tensor scale %g, want %g)", tc.name, tc.rows, tc.cols, q.TensorScale, st)
		}
		pc := precision.PaddedCols(tc.cols, precision.NVFP4Block)
		if pc != q.PaddedCols() || len(q.Data) != tc.rows*pc/2 || len(q.Scales) != tc.rows*pc/16 {
			t.Errorf("%s: layout %d data, %d scales; want %d, %d", tc.name, len(q.Data), len(q.Scales), tc.rows*pc/2, tc.rows*pc/16)
		}
		if got, want := int64(len(q.Data)+len(q.Scales)+4), precision.NVFP4Bytes(tc.rows, tc.cols); got != want {
			t.Errorf("%s: %d bytes, NVFP4Bytes says %d", tc.name, got, want)
		}
		// Padding is zero.
		for r := range tc.rows {
			for i := tc.cols; i < pc; i++ {
				if c := nibble(q.Data[r*pc/2:], i); c != 0 {
					t.Errorf("%s: padding element [%d, %d] = %#x", tc.name, r, i, c)
				}
			}
		}
		// Each element dequantizes to its block grid's nearest point.
		deq := q.Dequantize(nil)
		for r := range tc.rows {
			for i := range tc.cols {
				x, v := tc.data[r*tc.cols+i], deq[r*tc.cols+i]
				if math.IsInf(float64(v), 0) || isNaN32(v) {
					t.Fatalf("%s: [%d, %d] dequantized to %g", tc.name, r, i, v)
				}
				d := float64(precision.DecodeE4M3(q.Scales[r*pc/16+i/16])) * float64(q.TensorScale)
				if d == 0 {
					if v != 0 {
						t.Errorf("%s: [%d, %d] in a zero-scale block = %g", tc.name, r, i, v)
					}
					continue
				}
				checkGrid(t, tc.name, x, v, d)
				want := float32(precision.DecodeE2M1(nibble(q.Data[r*pc/2:], i))*precision.DecodeE4M3(q.Scales[r*pc/16+i/16])) * q.TensorScale
				if v != want {
					t.Errorf("%s: Dequantize [%d, %d] = %g; want %g", tc.name, r, i, v, want)
				}
			}
		}
	}
}

func TestNVFP4EdgeCases(t *testing.T) {
	// All zeros: tensor scale 0, every byte 0.
	q, _ := precision.QuantizeNVFP4(make([]float32, 40), 2, 20)
	if q.TensorScale != 0 || slices.ContainsFunc(q.Data, func(b byte) bool { return b != 0 }) ||
		slices.ContainsFunc(q.Scales, func(b byte) bool { return b != 0 }) {
		t.Errorf("zeros: tensor scale %g, data %x, scales %x", q.TensorScale, q.Data, q.Scales)
	}
	if d := q.Dequantize(nil); slices.ContainsFunc(d, func(v float32) bool { return v != 0 }) {
		t.Errorf("zeros dequantized to %v", d)
	}

	// Nibble order and the block of the amax: [6, 3, 0…, -1] → byte 0 holds
	// 6 (7) low and 3 (5) high; byte 7 holds -1 (0xa) high.
	w := make([]float32, 16)
	w[0], w[1], w[15] = 6, 3, -1
	q, _ = precision.QuantizeNVFP4(w, 1, 16)
	if q.Data[0] != 0x57 || q.Data[7] != 0xa0 || q.Scales[0] != 0x7e {
		t.Errorf("nibbles: data %x, scale %#02x; want 57…a0, 0x7e", q.Data, q.Scales[0])
	}

	// One outlier: the small blocks get E4M3 subnormal and zero scales.
	w = make([]float32, 64)
	w[0] = 1e4    // amax: s_t = 1e4/2688
	w[16] = 0.05  // (0.05/6)/s_t ≈ 2.2e-3: E4M3 subnormal (< 2^-6)
	w[32] = 1e-4  // ≈ 4.5e-6: below 2^-10, scale 0
	w[48] = -1e-3 // ≈ 4.5e-5: scale 0
	q, _ = precision.QuantizeNVFP4(w, 1, 64)
	if s := q.Scales[1]; s == 0 || s >= 8 {
		t.Errorf("outlier: block 1 scale %#02x; want an E4M3 subnormal", s)
	}
	if q.Scales[2] != 0 || q.Scales[3] != 0 || q.Data[16] != 0 || q.Data[24] != 0 {
		t.Errorf("outlier: blocks 2, 3 scales %#02x %#02x; want 0 and zero data", q.Scales[2], q.Scales[3])
	}
	d := q.Dequantize(nil)
	if d[0] != 1e4 || d[32] != 0 || d[48] != 0 || math.Abs(float64(d[16])-0.05) > 0.05/2 {
		t.Errorf("outlier dequantized to %g %g %g %g", d[0], d[16], d[32], d[48])
	}

	// Partial last block: amax over the 5 elements present.
	w = []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0.1, 0.2, 0.3, 0.4, -0.5}
	q, _ = precision.QuantizeNVFP4(w, 1, len(w))
	if len(q.Data) != 16 || len(q.Scales) != 2 {
		t.Fatalf("partial: %d data bytes, %d scales; want 16, 2", len(q.Data), len(q.Scales))
	}
	if d := q.Dequantize(nil); len(d) != len(w) || math.Abs(float64(d[20])+0.5) > 0.5/6 {
		t.Errorf("partial: dequantized %v", d)
	}

	// Dequantize reuses dst.
	buf := make([]float32, 0, 64)
	if got := q.Dequantize(buf); &got[0] != &buf[:1][0] {
		t.Error("Dequantize did not reuse dst")
	}
}

func TestNVFP4Shape(t *testing.T) {
	for _, tt := range []struct {
		n, rows, cols int
	}{{5, 2, 3}, {6, -2, -3}, {0, -1, 0}} {
		if _, err := precision.QuantizeNVFP4(make([]float32, tt.n), tt.rows, tt.cols); !errors.Is(err, precision.ErrShape) {
			t.Errorf("QuantizeNVFP4(%d values, %d, %d) error %v; want ErrShape", tt.n, tt.rows, tt.cols, err)
		}
	}
}
