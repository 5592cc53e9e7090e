package precision_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/precision"
)

// refMXScale returns the smallest k in -127..127 with amax ≤ 6 × 2^k.
func refMXScale(amax float64) int {
	_, e := math.Frexp(amax) // amax < 2^e
	k := min(max(e-3, -127), 127)
	for k > -127 && 6*math.Ldexp(1, k-1) >= amax {
		k--
	}
	for k < 127 && 6*math.Ldexp(1, k) < amax {
		k++
	}
	return k
}

func TestMXScale(t *testing.T) {
	for _, u := range binadeSample() {
		x := math.Float32frombits(u)
		if math.IsInf(float64(x), 0) {
			continue
		}
		if got, want := int(precision.MXScale(x))-127, refMXScale(float64(x)); got != want {
			t.Fatalf("MXScale(%g) = 2^%d; want 2^%d", x, got, want)
		}
	}
	for _, tt := range []struct {
		amax float32
		want int
	}{{0, -127}, {6, 0}, {6.0000005, 1}, {3, -1}, {3.0000002, 0}, {4, 0}, {1, -2}, {1.5, -2}, {math.MaxFloat32, 126}} {
		if got := int(precision.MXScale(tt.amax)) - 127; got != tt.want {
			t.Errorf("MXScale(%g) = 2^%d; want 2^%d", tt.amax, got, tt.want)
		}
	}
	if got := precision.MXScale(float32(math.NaN())); got != 0xff {
		t.Errorf("MXScale(NaN) = %#02x; want 0xff", got)
	}
}

func TestMXFP4(t *testing.T) {
	for _, tc := range tensorCases() {
		q, err := precision.QuantizeMXFP4(tc.data, tc.rows, tc.cols)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		pc := precision.PaddedCols(tc.cols, precision.MXFP4Block)
		nb := pc / 32
		if pc != q.PaddedCols() || len(q.Data) != tc.rows*pc/2 || len(q.Scales) != tc.rows*nb {
			t.Fatalf("%s: layout %d data, %d scales; want %d, %d", tc.name, len(q.Data), len(q.Scales), tc.rows*pc/2, tc.rows*nb)
		}
		if got, want := int64(len(q.Data)+len(q.Scales)), precision.MXFP4Bytes(tc.rows, tc.cols); got != want {
			t.Errorf("%s: %d bytes, MXFP4Bytes says %d", tc.name, got, want)
		}
		deq := q.Dequantize(nil)
		for r := range tc.rows {
			for b := range nb {
				var amax float64
				for i := b * 32; i < min(b*32+32, tc.cols); i++ {
					amax = max(amax, math.Abs(float64(tc.data[r*tc.cols+i])))
				}
				k := refMXScale(amax)
				if got := int(q.Scales[r*nb+b]) - 127; got != k {
					t.Errorf("%s: block [%d, %d] scale 2^%d; want 2^%d", tc.name, r, b, got, k)
				}
				scale := math.Ldexp(1, k)
				for i := b * 32; i < b*32+32; i++ {
					c := nibble(q.Data[r*pc/2:], i)
					if i >= tc.cols {
						if c != 0 {
							t.Errorf("%s: padding [%d, %d] = %#x", tc.name, r, i, c)
						}
						continue
					}
					x := tc.data[r*tc.cols+i]
					if want := e2m1Ref(float32(float64(x) / scale)); c != want {
						t.Errorf("%s: [%d, %d] %g → %#x; want %#x", tc.name, r, i, x, c, want)
					}
					if math.Abs(float64(x)) > 6*scale {
						t.Errorf("%s: [%d, %d] %g clips at scale 2^%d", tc.name, r, i, x, k)
					}
					v := deq[r*tc.cols+i]
					if v != float32(float64(precision.DecodeE2M1(c))*scale) {
						t.Errorf("%s: Dequantize [%d, %d] = %g", tc.name, r, i, v)
					}
					checkGrid(t, tc.name, x, v, scale)
				}
			}
		}
	}
}

func TestMXFP4EdgeCases(t *testing.T) {
	q, _ := precision.QuantizeMXFP4(make([]float32, 64), 1, 64)
	if !slices.Equal(q.Scales, []byte{0, 0}) || slices.ContainsFunc(q.Data, func(b byte) bool { return b != 0 }) {
		t.Errorf("zeros: scales %x data %x", q.Scales, q.Data)
	}
	// The amax maps into the top binade without clipping: 7 → scale 2, 3.5 → 4.
	w := make([]float32, 32)
	w[0], w[1] = 7, -0.75
	q, _ = precision.QuantizeMXFP4(w, 1, 32)
	if q.Scales[0] != 128 || q.Data[0] != 0x96 {
		t.Errorf("7: scale %d data %#02x; want 128 (2^1), 0x96", q.Scales[0], q.Data[0])
	}
	if _, err := precision.QuantizeMXFP4(w, 2, 32); !errors.Is(err, precision.ErrShape) {
		t.Errorf("shape error %v; want ErrShape", err)
	}
}
