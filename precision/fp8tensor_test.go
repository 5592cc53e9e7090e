package precision_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/precision"
)

func TestFP8Scale(t *testing.T) {
	tests := []struct {
		amax   float32
		margin int
		want   float32
	}{
		{0, 0, 1},
		{0, 3, 1},
		{448, 0, 1},
		{448, 1, 2},
		{896, 0, 2},
		{1, 0, float32(1.0 / 448)},
		{1, 2, float32(4.0 / 448)},
		{1, -5, float32(1.0 / 448)},   // clamped to 0
		{1, 99, float32(256.0 / 448)}, // clamped to MaxMargin
		{math.MaxFloat32, 8, float32(math.MaxFloat32 / 448 * 256)}, // no float32 overflow on the way
		{0x1p-149, 0, 0x1p-149}, // would underflow to 0
		{0x1p-140, 0, 0x1p-149},
		{float32(math.Inf(1)), 0, float32(math.Inf(1))}, // a row holding ±Inf
	}
	for _, tt := range tests {
		if got := precision.FP8Scale(tt.amax, tt.margin); got != tt.want {
			t.Errorf("FP8Scale(%g, %d) = %g; want %g", tt.amax, tt.margin, got, tt.want)
		}
	}
	// Equal to the IEEE float32 division (amax × 2^m) / 448.
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		amax := float32(math.Ldexp(1+r.Float64(), r.IntN(200)-100))
		m := r.IntN(precision.MaxMargin + 1)
		want := float32(amax*float32(math.Ldexp(1, m))) / 448
		if got := precision.FP8Scale(amax, m); got != want {
			t.Fatalf("FP8Scale(%g, %d) = %g; want %g", amax, m, got, want)
		}
	}
}

func TestQuantizeFP8(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 6, 50
	w := randTensor(r, rows, cols, func() float64 { return r.NormFloat64() })
	for i := range cols {
		w[2*cols+i] = 0 // a zero row
		w[4*cols+i] *= 1000
	}
	for _, margin := range []int{0, 1, 3, precision.MaxMargin} {
		pc, err := precision.QuantizeFP8PerChannel(w, rows, cols, margin)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := precision.QuantizeFP8PerTensor(w, rows, cols, margin)
		if err != nil {
			t.Fatal(err)
		}
		if len(pc.Scales) != rows || len(pt.Scales) != 1 || len(pc.Data) != rows*cols || len(pt.Data) != rows*cols {
			t.Fatalf("margin %d: %d, %d scales, %d, %d bytes", margin, len(pc.Scales), len(pt.Scales), len(pc.Data), len(pt.Data))
		}
		if pt.Scales[0] != precision.FP8Scale(precision.Amax(w), margin) {
			t.Errorf("margin %d: per-tensor scale %g", margin, pt.Scales[0])
		}
		if pc.Scales[2] != 1 {
			t.Errorf("margin %d: zero row scale %g; want 1", margin, pc.Scales[2])
		}
		dpc, dpt := pc.Dequantize(nil), pt.Dequantize(nil)
		top := float32(precision.E4M3Max / math.Ldexp(1, margin))
		for row := range rows {
			x := w[row*cols : (row+1)*cols]
			s := precision.FP8Scale(precision.Amax(x), margin)
			if pc.Scale(row) != s || pt.Scale(row) != pt.Scales[0] {
				t.Errorf("margin %d: row %d scale %g; want %g", margin, row, pc.Scale(row), s)
			}
			var rowMax float32
			for i, v := range x {
				c := pc.Data[row*cols+i]
				if want := precision.EncodeE4M3(v / s); c != want {
					t.Errorf("margin %d: [%d, %d] code %#02x; want %#02x", margin, row, i, c, want)
				}
				if want := precision.DecodeE4M3(c) * s; dpc[row*cols+i] != want {
					t.Errorf("margin %d: per-channel dequant [%d, %d] = %g; want %g", margin, row, i, dpc[row*cols+i], want)
				}
				if want := precision.DecodeE4M3(pt.Data[row*cols+i]) * pt.Scales[0]; dpt[row*cols+i] != want {
					t.Errorf("margin %d: per-tensor dequant [%d, %d] = %g; want %g", margin, row, i, dpt[row*cols+i], want)
				}
				rowMax = max(rowMax, abs(precision.DecodeE4M3(c)))
				// Per channel keeps every row in E4M3's normal range:
				// relative error within half an ulp (2^-4).
				if v != 0 && abs(dpc[row*cols+i]-v) > abs(v)/16*1.0001 && abs(v/s) >= 1.0/64 {
					t.Errorf("margin %d: [%d, %d] %g → %g", margin, row, i, v, dpc[row*cols+i])
				}
			}
			// The margin maps the row's amax to 448 / 2^margin.
			if rowMax != 0 && rowMax != precision.DecodeE4M3(precision.EncodeE4M3(top)) {
				t.Errorf("margin %d: row %d largest code %g; want %g", margin, row, rowMax, top)
			}
		}
	}
	// The activation slice path agrees with the tensor path.
	pt, _ := precision.QuantizeFP8PerTensor(w, rows, cols, 1)
	got := make([]float32, len(w))
	precision.RoundE4M3Slice(got, w, pt.Scales[0])
	for i, v := range pt.Dequantize(nil) {
		if got[i] != v {
			t.Fatalf("RoundE4M3Slice [%d] = %g; want %g", i, got[i], v)
		}
	}
}

// TestQuantizeFP8PerRow: quantized per row, as activations are, each
// ordinary row is what it is alone, whatever its neighbours hold: 3e38s, a
// NaN (which stays in its own row), a −Inf (which makes its own row NaN) or
// zeros (scale 1).
func TestQuantizeFP8PerRow(t *testing.T) {
	const cols = 8
	ordinary := []float32{0.5, -1, 2, 0.01, -3.5, 7, 0, 1e-3}
	rows := [][]float32{
		ordinary,
		{3e38, -3e38, 1, 2, 3, 4, 5, 6},
		ordinary,
		{1, float32(math.NaN()), 2, 3, 4, 5, 6, 7},
		ordinary,
		{1, 2, float32(math.Inf(-1)), 3, 4, 5, 6, 7},
		make([]float32, cols),
	}
	var x []float32
	for _, r := range rows {
		x = append(x, r...)
	}
	q, err := precision.QuantizeFP8PerChannel(x, len(rows), cols, 0)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := precision.QuantizeFP8PerChannel(ordinary, 1, cols, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := alone.Dequantize(nil)
	got := q.Dequantize(nil)
	row := func(r int) []float32 { return got[r*cols : (r+1)*cols] }
	for _, r := range []int{0, 2, 4} {
		for i, v := range row(r) {
			if v != want[i] {
				t.Errorf("row %d [%d] = %g; want %g, as alone", r, i, v, want[i])
			}
		}
	}
	for i, v := range row(3) {
		if isNaN := v != v; isNaN != (i == 1) {
			t.Errorf("NaN row [%d] = %g; want NaN only where the input is", i, v)
		}
	}
	for i, v := range row(5) {
		if v == v {
			t.Errorf("−Inf row [%d] = %g; want NaN (scale %g)", i, v, q.Scales[5])
		}
	}
	if q.Scales[6] != 1 {
		t.Errorf("zero row's scale %g; want 1", q.Scales[6])
	}
	for i, v := range row(6) {
		if v != 0 {
			t.Errorf("zero row [%d] = %g; want 0", i, v)
		}
	}
}

func TestQuantizeFP8Errors(t *testing.T) {
	for _, m := range []int{-1, precision.MaxMargin + 1} {
		if _, err := precision.QuantizeFP8PerChannel(make([]float32, 4), 2, 2, m); !errors.Is(err, precision.ErrInvalidMargin) {
			t.Errorf("margin %d: error %v; want ErrInvalidMargin", m, err)
		}
		if _, err := precision.QuantizeFP8PerTensor(make([]float32, 4), 2, 2, m); !errors.Is(err, precision.ErrInvalidMargin) {
			t.Errorf("margin %d: error %v; want ErrInvalidMargin", m, err)
		}
	}
	if _, err := precision.QuantizeFP8PerChannel(make([]float32, 5), 2, 2, 0); !errors.Is(err, precision.ErrShape) {
		t.Errorf("shape error %v; want ErrShape", err)
	}
	if _, err := precision.QuantizeFP8PerTensor(make([]float32, 5), 2, 2, 0); !errors.Is(err, precision.ErrShape) {
		t.Errorf("shape error %v; want ErrShape", err)
	}
}

func TestAmax(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(-1))
	for _, tt := range []struct {
		x    []float32
		want float32
	}{{nil, 0}, {[]float32{-3, 2}, 3}, {[]float32{nan, -1}, 1}, {[]float32{1, inf}, float32(math.Inf(1))}} {
		if got := precision.Amax(tt.x); got != tt.want {
			t.Errorf("Amax(%v) = %g; want %g", tt.x, got, tt.want)
		}
	}
}

func abs(x float32) float32 { return float32(math.Abs(float64(x))) }

// TestQuantizeFP8PerChannelLarge: a tensor large enough to be quantized on
// several cores gets, row by row, what each row quantized alone gets.
func TestQuantizeFP8PerChannelLarge(t *testing.T) {
	const rows, cols = 96, 4100
	r := rand.New(rand.NewPCG(3, 4))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() * math.Pow(2, float64(i/cols%20-10)))
	}
	q, err := precision.QuantizeFP8PerChannel(w, rows, cols, 0)
	if err != nil {
		t.Fatal(err)
	}
	for row := range rows {
		one, err := precision.QuantizeFP8PerChannel(w[row*cols:(row+1)*cols], 1, cols, 0)
		if err != nil {
			t.Fatal(err)
		}
		if q.Scales[row] != one.Scales[0] || !slices.Equal(q.Data[row*cols:(row+1)*cols], one.Data) {
			t.Fatalf("row %d: scale %g and bytes differ from the row quantized alone (scale %g)", row, q.Scales[row], one.Scales[0])
		}
	}
}
