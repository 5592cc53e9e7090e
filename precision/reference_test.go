package precision_test

import (
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/x448/float16"

	"github.com/gearbox-inference/gearbox/precision"
)

// This file holds the float64 brute-force references the conversions are
// checked against, and the machinery that runs them over many (or all)
// float32 inputs.

// grid is a target format's non-negative values in code order (codes 0..n-1
// are increasing in value), for the brute-force nearest-value search.
type grid struct {
	name string
	vals []float64
	// saturate: inputs above the largest value give the largest value.
	// Otherwise the last code is +Inf and top stands for it when computing
	// the overflow midpoint (the next power of two past the largest finite
	// value, as if the exponent range went on).
	saturate bool
	top      float64
	sign     uint32 // the sign bit of a code
	encode   func(float32) uint32
}

func newGrid(name string, n int, decode func(uint32) float32, saturate bool, top float64, sign uint32, encode func(float32) uint32) *grid {
	g := &grid{name: name, saturate: saturate, top: top, sign: sign, encode: encode}
	for c := range uint32(n) {
		g.vals = append(g.vals, float64(decode(c)))
	}
	if !sort.Float64sAreSorted(g.vals) {
		panic(name + ": codes not in value order")
	}
	return g
}

// at is the value of code i used for midpoints.
func (g *grid) at(i int) float64 {
	if i == len(g.vals)-1 && !g.saturate {
		return g.top
	}
	return g.vals[i]
}

// pick returns the nearer of codes j and j+1 to x (at(j) ≤ x < at(j+1)),
// a tie going to the even code (the even mantissa).
func (g *grid) pick(x float64, j int) uint32 {
	if j >= len(g.vals)-1 {
		return uint32(len(g.vals) - 1)
	}
	mid := (g.at(j) + g.at(j+1)) / 2 // exact: neighbours, within a factor 2
	switch {
	case x < mid:
		return uint32(j)
	case x > mid:
		return uint32(j + 1)
	case j%2 == 0:
		return uint32(j)
	}
	return uint32(j + 1)
}

// nearest returns the code for x ≥ 0 by binary search.
func (g *grid) nearest(x float64) uint32 {
	j := sort.Search(len(g.vals), func(i int) bool { return g.at(i) > x }) - 1
	return g.pick(x, j)
}

var (
	gridBF16 = newGrid("bf16", 0x7f81, func(c uint32) float32 { return precision.DecodeBF16(uint16(c)) }, false, 0x1p128, 0x8000,
		func(x float32) uint32 { return uint32(precision.EncodeBF16(x)) })
	gridFP16 = newGrid("fp16", 0x7c01, func(c uint32) float32 { return precision.DecodeFP16(uint16(c)) }, false, 0x1p16, 0x8000,
		func(x float32) uint32 { return uint32(precision.EncodeFP16(x)) })
	gridE4M3 = newGrid("e4m3", 0x7f, func(c uint32) float32 { return precision.DecodeE4M3(uint8(c)) }, true, 0, 0x80,
		func(x float32) uint32 { return uint32(precision.EncodeE4M3(x)) })
	gridE5M2 = newGrid("e5m2", 0x7c, func(c uint32) float32 { return precision.DecodeE5M2(uint8(c)) }, true, 0, 0x80,
		func(x float32) uint32 { return uint32(precision.EncodeE5M2(x)) })
	gridE2M1 = newGrid("e2m1", 8, func(c uint32) float32 { return precision.DecodeE2M1(uint8(c)) }, true, 0, 0x8,
		func(x float32) uint32 { return uint32(precision.EncodeE2M1(x)) })
	grids = []*grid{gridBF16, gridFP16, gridE4M3, gridE5M2, gridE2M1}
)

// refTF32 rounds x ≥ 0 to 10 explicit mantissa bits, ties away from zero, in
// float64.
func refTF32(x float64) float32 {
	if math.IsInf(x, 1) {
		return float32(x)
	}
	_, e := math.Frexp(x) // x = f × 2^e, 0.5 ≤ f < 1
	ulp := math.Ldexp(1, max(e-1, -126)-10)
	lo := math.Floor(x/ulp) * ulp
	hi := lo + ulp
	r := lo
	if x-lo >= hi-x {
		r = hi
	}
	if r >= 0x1p128 {
		return float32(math.Inf(1))
	}
	return float32(r)
}

// checker checks every conversion at increasing non-negative float32 bit
// patterns, keeping a position in each grid (a merge, so a whole range costs
// a few steps per input).
type checker struct {
	t     *testing.T
	pos   []int
	fails *atomic.Int64
}

func newChecker(t *testing.T, start uint32, fails *atomic.Int64) *checker {
	c := &checker{t: t, fails: fails, pos: make([]int, len(grids))}
	x := float64(math.Float32frombits(start))
	for i, g := range grids {
		c.pos[i] = max(sort.Search(len(g.vals), func(k int) bool { return g.at(k) > x })-1, 0)
	}
	return c
}

func (c *checker) fail(format string, args ...any) {
	if c.fails.Add(1) <= 20 {
		c.t.Errorf(format, args...)
	}
}

// check checks bit pattern u (0 ≤ u ≤ 0x7f800000), and -u; calls must come
// in increasing u.
func (c *checker) check(u uint32) {
	x := math.Float32frombits(u)
	nx := -x
	xf := float64(x)
	for i, g := range grids {
		j := c.pos[i]
		for j+1 < len(g.vals) && g.at(j+1) <= xf {
			j++
		}
		c.pos[i] = j
		want := g.pick(xf, j)
		if got := g.encode(x); got != want {
			c.fail("%s: encode(%g [%#08x]) = %#x, want %#x (%g)", g.name, x, u, got, want, g.vals[want])
		}
		if got := g.encode(nx); got != want|g.sign {
			c.fail("%s: encode(%g) = %#x, want %#x", g.name, nx, got, want|g.sign)
		}
	}
	// The float32 → float32 roundings agree with the encoders.
	wantBF16 := precision.DecodeBF16(uint16(gridBF16.pick(xf, c.pos[0])))
	if got := precision.RoundBF16(nx); math.Float32bits(got) != math.Float32bits(-wantBF16) {
		c.fail("RoundBF16(%g) = %g, want %g", nx, got, -wantBF16)
	}
	wantFP16 := precision.DecodeFP16(uint16(gridFP16.pick(xf, c.pos[1])))
	if got := precision.RoundFP16(x); math.Float32bits(got) != math.Float32bits(wantFP16) {
		c.fail("RoundFP16(%g [%#08x]) = %g, want %g", x, u, got, wantFP16)
	}
	if got := precision.RoundFP16(nx); math.Float32bits(got) != math.Float32bits(-wantFP16) {
		c.fail("RoundFP16(%g) = %g, want %g", nx, got, -wantFP16)
	}
	wantTF32 := refTF32(xf)
	if got := precision.RoundTF32(x); math.Float32bits(got) != math.Float32bits(wantTF32) {
		c.fail("RoundTF32(%g [%#08x]) = %g, want %g", x, u, got, wantTF32)
	}
	if got := precision.RoundTF32(nx); math.Float32bits(got) != math.Float32bits(-wantTF32) {
		c.fail("RoundTF32(%g) = %g, want %g", nx, got, -wantTF32)
	}
}

// checkNaN checks that NaN bit pattern u converts as documented.
func checkNaN(t *testing.T, u uint32, fails *atomic.Int64) {
	x := math.Float32frombits(u)
	bad := func(format string, args ...any) {
		if fails.Add(1) <= 20 {
			t.Errorf(format, args...)
		}
	}
	if h := precision.EncodeBF16(x); !math.IsNaN(float64(precision.DecodeBF16(h))) || h&0x40 == 0 {
		bad("EncodeBF16(NaN %#08x) = %#04x, want a quiet NaN", u, h)
	}
	if h := precision.EncodeFP16(x); !math.IsNaN(float64(precision.DecodeFP16(h))) {
		bad("EncodeFP16(NaN %#08x) = %#04x, want a NaN", u, h)
	}
	for _, f := range []func(float32) float32{precision.RoundBF16, precision.RoundFP16, precision.RoundTF32} {
		if r := f(x); !math.IsNaN(float64(r)) {
			bad("rounding NaN %#08x gave %g", u, r)
		}
	}
	if c := precision.EncodeE4M3(x); c != 0x7f {
		bad("EncodeE4M3(NaN %#08x) = %#02x, want 0x7f", u, c)
	}
	if c := precision.EncodeE5M2(x); c != 0x7f {
		bad("EncodeE5M2(NaN %#08x) = %#02x, want 0x7f", u, c)
	}
	if c, want := precision.EncodeE2M1(x), uint8(7|u>>28&8); c != want {
		bad("EncodeE2M1(NaN %#08x) = %#x, want %#x", u, c, want)
	}
}

// checkBits checks the sorted bit patterns us (all ≤ 0x7f800000) and the
// NaN patterns nans, spread over the CPUs.
func checkBits(t *testing.T, us []uint32, nans []uint32) {
	var fails atomic.Int64
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		part := us[len(us)*w/workers : len(us)*(w+1)/workers]
		nanPart := nans[len(nans)*w/workers : len(nans)*(w+1)/workers]
		if len(part) == 0 && len(nanPart) == 0 {
			continue
		}
		wg.Go(func() {
			if len(part) > 0 {
				c := newChecker(t, part[0], &fails)
				for _, u := range part {
					c.check(u)
				}
			}
			for _, u := range nanPart {
				checkNaN(t, u, &fails)
			}
		})
	}
	wg.Wait()
	if n := fails.Load(); n > 0 {
		t.Errorf("%d mismatches in all", n)
	}
}

// denseSample returns sorted, distinct non-negative finite-or-Inf bit
// patterns: a stride through all of them, each with the tf32 tie near it
// and its neighbours, and every value of every grid and every midpoint
// between neighbours, each ± 2 ulps. It is computed once.
var denseSample = sync.OnceValue(func() []uint32 {
	var us []uint32
	add := func(u uint32, spread int) {
		for d := -spread; d <= spread; d++ {
			if v := int64(u) + int64(d); v >= 0 && v <= 0x7f800000 {
				us = append(us, uint32(v))
			}
		}
	}
	for u := uint32(0); u <= 0x7f800000; u += 8191 {
		us = append(us, u)
		add(u&^0x1fff|0x1000, 1) // a tf32 tie and its neighbours
	}
	for _, g := range grids {
		for i, v := range g.vals {
			if !math.IsInf(v, 0) {
				add(math.Float32bits(float32(v)), 2)
			}
			if i+1 < len(g.vals) {
				mid := (g.at(i) + g.at(i+1)) / 2
				if mid < math.MaxFloat32 {
					add(math.Float32bits(float32(mid)), 2)
				}
			}
		}
	}
	for _, u := range []uint32{0, 1, 2, 0x007fffff, 0x00800000, 0x7f7fffff, 0x7f800000} {
		add(u, 2)
	}
	slices.Sort(us)
	return slices.Compact(us)
})

// binadeSample returns bit patterns around every power of two and every
// 1.5 × 2^e (± 3 ulps), and a coarse stride: the edges of E8M0 and MXScale.
func binadeSample() []uint32 {
	var us []uint32
	for e := uint32(0); e < 0xff; e++ {
		for _, m := range []uint32{0, 0x400000} {
			for d := int64(-3); d <= 3; d++ {
				if v := int64(e<<23|m) + d; v >= 0 && v < 0x7f800000 {
					us = append(us, uint32(v))
				}
			}
		}
	}
	for u := uint32(0); u < 0x7f800000; u += 65521 {
		us = append(us, u)
	}
	// Subnormals around 2^-127 (0x00400000) and the smallest ones.
	us = append(us, 1, 2, 3, 0x003fffff, 0x00400001, 0x00600000, 0x007fffff)
	return us
}

// nanSample returns NaN bit patterns of both signs.
func nanSample(stride uint32) []uint32 {
	var us []uint32
	for m := uint32(1); m < 0x800000; m += stride {
		us = append(us, 0x7f800000|m, 0xff800000|m)
	}
	return append(us, 0x7fc00000, 0xffc00000, 0x7fffffff, 0xffffffff, 0x7f800001)
}

// TestConversionsDenseSample checks bf16, fp16, E4M3, E5M2, E2M1 and tf32
// conversions against the float64 references on about two million inputs:
// the short suite's share of TestConversionsExhaustive.
func TestConversionsDenseSample(t *testing.T) {
	us := denseSample()
	t.Logf("%d inputs (and their negatives)", len(us))
	checkBits(t, us, nanSample(997))
}

// TestConversionsExhaustive checks every float32 input. It takes minutes:
// it does not run under -short or -race.
func TestConversionsExhaustive(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("exhaustive over 2^32 inputs: not under -short or -race")
	}
	var fails atomic.Int64
	workers := runtime.GOMAXPROCS(0)
	const end = 0x7f800000 // +Inf, inclusive
	var wg sync.WaitGroup
	for w := range workers {
		lo := uint32(uint64(end+1) * uint64(w) / uint64(workers))
		hi := uint32(uint64(end+1) * uint64(w+1) / uint64(workers))
		wg.Go(func() {
			c := newChecker(t, lo, &fails)
			for u := lo; u < hi; u++ {
				c.check(u)
			}
			for m := uint32(1) + uint32(w); m < 0x800000; m += uint32(workers) {
				checkNaN(t, 0x7f800000|m, &fails)
				checkNaN(t, 0xff800000|m, &fails)
			}
		})
	}
	wg.Wait()
	if n := fails.Load(); n > 0 {
		t.Errorf("%d mismatches in all", n)
	}
}

// x448 cross-checks EncodeFP16 against github.com/x448/float16 (an
// independent RNE implementation) on every non-NaN input in us.
func checkX448(t *testing.T, us []uint32) {
	t.Helper()
	fails := 0
	for _, u := range us {
		for _, v := range []uint32{u, u | 0x80000000} {
			x := math.Float32frombits(v)
			if got, want := precision.EncodeFP16(x), float16.Fromfloat32(x).Bits(); got != want && fails < 20 {
				fails++
				t.Errorf("EncodeFP16(%g [%#08x]) = %#04x; x448 says %#04x", x, v, got, want)
			}
		}
	}
}

func TestFP16AgainstX448(t *testing.T) {
	checkX448(t, denseSample())
}

func TestFP16AgainstX448Exhaustive(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("exhaustive over 2^32 inputs: not under -short or -race")
	}
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	const end = 0x7f800000
	for w := range workers {
		lo := uint32(uint64(end+1) * uint64(w) / uint64(workers))
		hi := uint32(uint64(end+1) * uint64(w+1) / uint64(workers))
		wg.Go(func() {
			us := make([]uint32, 0, 1<<16)
			for u := uint64(lo); u < uint64(hi); u++ {
				us = append(us, uint32(u))
				if len(us) == cap(us) || u+1 == uint64(hi) {
					checkX448(t, us)
					us = us[:0]
				}
			}
		})
	}
	wg.Wait()
}
