package precision_test

import (
	"math"
	"testing"

	"github.com/gearbox-inference/gearbox/precision"
)

func isNaN32(x float32) bool { return x != x }

func TestBF16AllPatterns(t *testing.T) {
	for h := range 1 << 16 {
		x := precision.DecodeBF16(uint16(h))
		got := precision.EncodeBF16(x)
		if isNaN32(x) {
			if !isNaN32(precision.DecodeBF16(got)) {
				t.Errorf("EncodeBF16(DecodeBF16(%#04x)) = %#04x, want a NaN", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Errorf("EncodeBF16(DecodeBF16(%#04x)) = %#04x", h, got)
		}
		if r := precision.RoundBF16(x); math.Float32bits(r) != math.Float32bits(x) {
			t.Errorf("RoundBF16(%g) = %g, want it unchanged", x, r)
		}
	}
}

func TestFP16AllPatterns(t *testing.T) {
	for h := range 1 << 16 {
		x := precision.DecodeFP16(uint16(h))
		got := precision.EncodeFP16(x)
		if isNaN32(x) {
			if !isNaN32(precision.DecodeFP16(got)) {
				t.Errorf("EncodeFP16(DecodeFP16(%#04x)) = %#04x, want a NaN", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Errorf("EncodeFP16(DecodeFP16(%#04x)) = %#04x", h, got)
		}
		if r := precision.RoundFP16(x); math.Float32bits(r) != math.Float32bits(x) {
			t.Errorf("RoundFP16(%g) = %g, want it unchanged", x, r)
		}
	}
}

func TestFP8AllPatterns(t *testing.T) {
	for c := range 256 {
		x := precision.DecodeE4M3(uint8(c))
		if nan := c&0x7f == 0x7f; nan != isNaN32(x) {
			t.Errorf("DecodeE4M3(%#02x) = %g, NaN %v", c, x, nan)
		}
		if got := precision.EncodeE4M3(x); !isNaN32(x) && got != uint8(c) || isNaN32(x) && got != 0x7f {
			t.Errorf("EncodeE4M3(DecodeE4M3(%#02x) = %g) = %#02x", c, x, got)
		}
		y := precision.DecodeE5M2(uint8(c))
		if nan := c&0x7c == 0x7c && c&3 != 0; nan != isNaN32(y) {
			t.Errorf("DecodeE5M2(%#02x) = %g, NaN %v", c, y, nan)
		}
		got := precision.EncodeE5M2(y)
		switch {
		case isNaN32(y):
			if got != 0x7f {
				t.Errorf("EncodeE5M2(NaN) = %#02x, want 0x7f", got)
			}
		case math.IsInf(float64(y), 0): // saturates
			if want := uint8(c&0x80 | 0x7b); got != want {
				t.Errorf("EncodeE5M2(%g) = %#02x, want %#02x", y, got, want)
			}
		case got != uint8(c):
			t.Errorf("EncodeE5M2(DecodeE5M2(%#02x) = %g) = %#02x", c, y, got)
		}
	}
}

func TestE4M3Values(t *testing.T) {
	inf := float32(math.Inf(1))
	tests := []struct {
		x    float32
		want uint8
	}{
		{0, 0x00},
		{float32(math.Copysign(0, -1)), 0x80},
		{1, 0x38},
		{-1, 0xb8},
		{448, 0x7e},
		{-448, 0xfe},
		{450, 0x7e},
		{463.99, 0x7e},
		{464, 0x7e}, // tie between 448 and 480 (NaN slot): even is 448
		{480, 0x7e},
		{1e30, 0x7e},
		{inf, 0x7e},
		{-inf, 0xfe},
		{float32(math.NaN()), 0x7f},
		{0x1p-9, 0x01},   // smallest subnormal
		{0x1p-10, 0x00},  // tie between 0 and 2^-9: even is 0
		{0x1.8p-9, 0x02}, // tie between 1 and 2 (× 2^-9): even is 2
		{0x1.4p-8, 0x02}, // 2.5 × 2^-9: tie → 2
		{0x1p-6, 0x08},   // smallest normal
		{0x1.ep-7, 0x08}, // 7.5 × 2^-9 ties to 8 (even), the smallest normal
		{0x1.1p0, 0x38},  // 1.0625: tie between 1 and 1.125 → 1
		{0x1.3p0, 0x3a},  // 1.1875: tie between 1.125 and 1.25 → 1.25
		{240, 0x77},
		{232, 0x76}, // tie between 224 and 240 → 224 (0x76, even)
	}
	for _, tt := range tests {
		if got := precision.EncodeE4M3(tt.x); got != tt.want {
			t.Errorf("EncodeE4M3(%g) = %#02x; want %#02x", tt.x, got, tt.want)
		}
	}
	if got := precision.DecodeE4M3(0x7e); got != precision.E4M3Max {
		t.Errorf("DecodeE4M3(0x7e) = %g; want 448", got)
	}
}

func TestE5M2Values(t *testing.T) {
	inf := float32(math.Inf(1))
	tests := []struct {
		x    float32
		want uint8
	}{
		{0, 0x00},
		{float32(math.Copysign(0, -1)), 0x80},
		{1, 0x3c},
		{57344, 0x7b},
		{61439, 0x7b},
		{61440, 0x7b}, // a tie with Inf would round to Inf; saturates
		{1e10, 0x7b},
		{inf, 0x7b},
		{-inf, 0xfb},
		{float32(math.NaN()), 0x7f},
		{0x1p-16, 0x01},
		{0x1p-17, 0x00},
		{0x1.8p-16, 0x02},
		{0x1p-14, 0x04},
	}
	for _, tt := range tests {
		if got := precision.EncodeE5M2(tt.x); got != tt.want {
			t.Errorf("EncodeE5M2(%g) = %#02x; want %#02x", tt.x, got, tt.want)
		}
	}
	if got := precision.DecodeE5M2(0x7c); !math.IsInf(float64(got), 1) {
		t.Errorf("DecodeE5M2(0x7c) = %g; want +Inf", got)
	}
}

func TestE2M1(t *testing.T) {
	want := []float32{0, 0.5, 1, 1.5, 2, 3, 4, 6}
	for c := range 16 {
		v := precision.DecodeE2M1(uint8(c))
		w := want[c&7]
		if c&8 != 0 {
			w = -w
		}
		if math.Float32bits(v) != math.Float32bits(w) {
			t.Errorf("DecodeE2M1(%#x) = %g; want %g", c, v, w)
		}
		if got := precision.EncodeE2M1(v); got != uint8(c) {
			t.Errorf("EncodeE2M1(%g) = %#x; want %#x", v, got, c)
		}
	}
	tests := []struct{ x, want float32 }{
		{0.25, 0}, {0.2500001, 0.5}, {0.75, 1}, {0.7499999, 0.5}, {1.25, 1}, {1.75, 2},
		{2.5, 2}, {3.5, 4}, {5, 4}, {5.0000005, 6}, {6, 6}, {7, 6}, {1e30, 6},
		{float32(math.Inf(1)), 6}, {float32(math.Inf(-1)), -6}, {-2.5, -2}, {-0.75, -1},
		{float32(math.NaN()), 6}, {0x1p-140, 0},
	}
	for _, tt := range tests {
		if got := precision.DecodeE2M1(precision.EncodeE2M1(tt.x)); got != tt.want {
			t.Errorf("E2M1(%g) = %g; want %g", tt.x, got, tt.want)
		}
	}
	if got := precision.EncodeE2M1(float32(math.Copysign(0, -1))); got != 8 {
		t.Errorf("EncodeE2M1(-0) = %#x; want 0x8", got)
	}
}

func TestE8M0(t *testing.T) {
	for c := range 255 {
		v := precision.DecodeE8M0(uint8(c))
		if want := float32(math.Ldexp(1, c-127)); v != want {
			t.Errorf("DecodeE8M0(%d) = %g; want %g", c, v, want)
		}
		if got := precision.EncodeE8M0(v); got != uint8(c) {
			t.Errorf("EncodeE8M0(DecodeE8M0(%d)) = %d", c, got)
		}
	}
	if !isNaN32(precision.DecodeE8M0(0xff)) || precision.EncodeE8M0(float32(math.NaN())) != 0xff {
		t.Error("E8M0 0xff is not NaN both ways")
	}
	// Rounds up, against float64, over the dense sample.
	for _, u := range binadeSample() {
		x := math.Float32frombits(u)
		want := 0
		if xf := float64(x); xf > 0x1p127 {
			want = 254
		} else if xf > 0x1p-127 {
			want = 127 + int(math.Ceil(math.Log2(xf)))
			// Log2 is not exact: settle on the smallest power of two ≥ x.
			for want > 0 && math.Ldexp(1, want-1-127) >= xf {
				want--
			}
			for math.Ldexp(1, want-127) < xf {
				want++
			}
		}
		if got := precision.EncodeE8M0(x); int(got) != want {
			t.Fatalf("EncodeE8M0(%g) = %d; want %d", x, got, want)
		}
		if got := precision.EncodeE8M0(-x); int(got) != want {
			t.Fatalf("EncodeE8M0(%g) = %d; want %d (sign ignored)", -x, got, want)
		}
	}
}

func TestTF32(t *testing.T) {
	tests := []struct{ x, want float32 }{
		{1, 1},
		{1 + 0x1p-11, 1 + 0x1p-10},       // tie: away from zero
		{-(1 + 0x1p-11), -(1 + 0x1p-10)}, // tie: away from zero
		{1 + 3*0x1p-11, 1 + 0x1p-9},      // tie with odd lower: away
		{1 + 0x1p-11 - 0x1p-23, 1},       // below the tie
		{0x1p-149, 0},                    // subnormals round to multiples of 2^-136
		{0x1p-136, 0x1p-136},
		{0x1p-137, 0x1p-136},                           // subnormal tie: away
		{math.MaxFloat32, float32(math.Inf(1))},        // rounds past the largest tf32 value
		{float32(math.Inf(-1)), float32(math.Inf(-1))}, // Inf stays
		{0x1.ffcp127, 0x1.ffcp127},                     // the largest tf32 value
		{float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))},
	}
	for _, tt := range tests {
		if got := precision.RoundTF32(tt.x); math.Float32bits(got) != math.Float32bits(tt.want) {
			t.Errorf("RoundTF32(%g) = %g; want %g", tt.x, got, tt.want)
		}
	}
	if got := precision.RoundTF32(float32(math.NaN())); !isNaN32(got) {
		t.Errorf("RoundTF32(NaN) = %g; want NaN", got)
	}
}

func TestFP16Overflow(t *testing.T) {
	tests := []struct{ x, want float32 }{
		{65504, 65504},
		{65519.99, 65504},
		{65520, float32(math.Inf(1))}, // tie: 65504 is odd, Inf "even"
		{-1e6, float32(math.Inf(-1))},
		{0x1p-24, 0x1p-24},
		{0x1p-25, 0},
		{0x1.8p-24, 0x1p-23},
	}
	for _, tt := range tests {
		if got := precision.RoundFP16(tt.x); got != tt.want {
			t.Errorf("RoundFP16(%g) = %g; want %g", tt.x, got, tt.want)
		}
		if got := precision.DecodeFP16(precision.EncodeFP16(tt.x)); got != tt.want {
			t.Errorf("FP16 round trip of %g = %g; want %g", tt.x, got, tt.want)
		}
	}
}

func TestSliceHelpers(t *testing.T) {
	src := make([]float32, 1000)
	for i := range src {
		src[i] = float32(math.Sin(float64(i))*math.Exp(float64(i%40-20))) + 0.1
	}
	scalar := map[string]func(float32) float32{
		"bf16": precision.RoundBF16, "fp16": precision.RoundFP16, "tf32": precision.RoundTF32,
		"e4m3": func(x float32) float32 { return precision.DecodeE4M3(precision.EncodeE4M3(x/3)) * 3 },
	}
	slice := map[string]func(dst, src []float32){
		"bf16": precision.RoundBF16Slice, "fp16": precision.RoundFP16Slice, "tf32": precision.RoundTF32Slice,
		"e4m3": func(dst, src []float32) { precision.RoundE4M3Slice(dst, src, 3) },
	}
	for name, f := range slice {
		dst := make([]float32, len(src))
		f(dst, src)
		inPlace := append([]float32(nil), src...)
		f(inPlace, inPlace)
		for i, x := range src {
			want := scalar[name](x)
			if dst[i] != want || inPlace[i] != want {
				t.Fatalf("%s slice [%d] of %g = %g (in place %g); want %g", name, i, x, dst[i], inPlace[i], want)
			}
		}
	}
	u16 := make([]uint16, len(src))
	back := make([]float32, len(src))
	precision.EncodeBF16Slice(u16, src)
	precision.DecodeBF16Slice(back, u16)
	for i, x := range src {
		if u16[i] != precision.EncodeBF16(x) || back[i] != precision.RoundBF16(x) {
			t.Fatalf("bf16 slices [%d]: %#04x %g", i, u16[i], back[i])
		}
	}
	precision.EncodeFP16Slice(u16, src)
	precision.DecodeFP16Slice(back, u16)
	for i, x := range src {
		if u16[i] != precision.EncodeFP16(x) || back[i] != precision.RoundFP16(x) {
			t.Fatalf("fp16 slices [%d]: %#04x %g", i, u16[i], back[i])
		}
	}
	u8 := make([]uint8, len(src))
	precision.EncodeE5M2Slice(u8, src, 0.5)
	precision.DecodeE5M2Slice(back, u8, 0.5)
	for i, x := range src {
		if c := precision.EncodeE5M2(x / 0.5); u8[i] != c || back[i] != precision.DecodeE5M2(c)*0.5 {
			t.Fatalf("e5m2 slices [%d]: %#02x %g", i, u8[i], back[i])
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("RoundBF16Slice with a short dst did not panic")
		}
	}()
	precision.RoundBF16Slice(make([]float32, 1), src)
}
