//go:build cgo

package cuda

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// The language-model kernels one at a time on the GPU, each against a Go
// transcription of what kernels/cpu computes, so that a failure names the
// op, the row and the element. They skip without a device.

// devT runs small pieces of device work for a test, each in its own
// closure on the device goroutine, failing the test (on the test
// goroutine) on an error.
type devT struct {
	t      *testing.T
	b      *Backend
	allocs []uint64
}

func newDevT(t *testing.T) *devT {
	t.Helper()
	b := newTestBackend(t, Config{})
	x := &devT{t: t, b: b}
	x.do(func(d *devState) error { return d.k.load(modLM) })
	t.Cleanup(func() {
		_ = b.do(context.Background(), func(d *devState) error {
			_ = d.stream.sync()
			for _, p := range x.allocs {
				_ = cuFree(p)
			}
			return nil
		})
	})
	return x
}

func (x *devT) do(fn func(d *devState) error) {
	x.t.Helper()
	if err := x.b.do(context.Background(), fn); err != nil {
		x.t.Fatal(err)
	}
}

// up allocates and uploads b (at least 16 bytes, zero padded).
func (x *devT) up(b []byte) uint64 {
	x.t.Helper()
	var p uint64
	x.do(func(d *devState) error {
		var err error
		if p, err = cuMalloc(uint64(max(len(b), 16))); err != nil {
			return err
		}
		x.allocs = append(x.allocs, p)
		if err := d.stream.memset32(p, 0, max(len(b), 16)/4); err != nil {
			return err
		}
		if err := d.stream.sync(); err != nil {
			return err
		}
		return cuUpload(p, b)
	})
	return p
}

func (x *devT) zeros(n int) uint64 { return x.up(make([]byte, (n+3)&^3)) }

// down waits for the stream and downloads n bytes from p.
func (x *devT) down(p uint64, n int) []byte {
	x.t.Helper()
	b := make([]byte, n)
	x.do(func(d *devState) error {
		if err := d.stream.sync(); err != nil {
			return err
		}
		return cuDownload(b, p)
	})
	return b
}

func (x *devT) floats(p uint64, n int) []float32 { return bytesF32(x.down(p, 4*n)) }

func bytesF32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func i32Bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func randFloats(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * r.NormFloat64())
	}
	return v
}

// ulpDiff is how many float32 ulps apart a and b are (NaNs equal).
func ulpDiff(a, b float32) int64 {
	if a != a && b != b {
		return 0
	}
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia < 0x80000000 == (ib < 0x80000000) {
		return max(ia-ib, ib-ia)
	}
	return max(ia&0x7fffffff+ib&0x7fffffff, 1) // opposite signs
}

// rmsNormRef is kernels/cpu's rmsNormRow.
func rmsNormRef(dst, src, w []float32, eps float64) {
	var ss float64
	for _, v := range src {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/float64(len(src))+eps)
	for i, v := range src {
		if w == nil {
			dst[i] = float32(float64(v) * inv)
		} else {
			dst[i] = float32(float64(v) * inv * float64(w[i]))
		}
	}
}

// TestLMOpNorm checks gbx_lm_norm (residual add, RMSNorm, the operand in
// every format) and gbx_quant_rows against the CPU's arithmetic and package
// precision's conversions.
//
// Shapes with 1,024-thread blocks (up to lmWideRows rows) and 256-thread
// ones, short and long rows.
func TestLMOpNorm(t *testing.T) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		rows, cols int
		rowIdx     []int32
	}{
		{5, 300, []int32{3, 0, 4}},
		{41, 1000, nil},
		{41, 2100, nil},
		{3, 5000, nil},  // a row of 1,024 threads × 8 in registers (≤ 4 above)
		{3, 9000, nil},  // past 8: the loops over memory
		{300, 700, nil}, // past lmWideRows: blocks of lmThreads
	} {
		if tc.rowIdx == nil {
			for i := range tc.rows - 1 { // every row but the last, backwards
				tc.rowIdx = append(tc.rowIdx, int32(tc.rows-2-i))
			}
		}
		testLMOpNorm(t, x, r, tc.rows, tc.cols, tc.rowIdx)
	}
	// Blocks of 512 threads between the _small forms and lmWideRows
	// (kernelSet.rowThreads, a benchmark's choice): the same sums.
	x.do(func(d *devState) error { d.k.rowThreads = 512; return nil })
	defer x.do(func(d *devState) error { d.k.rowThreads = 0; return nil })
	var idx []int32
	for i := range 40 {
		idx = append(idx, int32(39-i))
	}
	testLMOpNorm(t, x, r, 41, 2100, idx)
}

func testLMOpNorm(t *testing.T, x *devT, r *rand.Rand, rows, cols int, rowIdx []int32) {
	const margin = 1
	xv, dv, wv := randFloats(r, rows*cols, 2), randFloats(r, rows*cols, 1), randFloats(r, cols, 0.3)
	for i := range wv {
		wv[i] += 1
	}
	xv[7] = 1e4 // an outlier: the fp8 row scale follows it
	// The expected residual and norm, the rows of rowIdx in that order.
	sum := make([]float32, rows*cols)
	for i := range sum {
		sum[i] = xv[i] + dv[i]
	}
	want := make([]float32, len(rowIdx)*cols)
	for b, ri := range rowIdx {
		rmsNormRef(want[b*cols:(b+1)*cols], sum[int(ri)*cols:(int(ri)+1)*cols], wv, 1e-6)
	}
	for _, f := range []fmtCode{fmtF32, fmtTF32, fmtBF16, fmtF16, fmtE4M3, fmtE4M3F32} {
		xp, dp, wp := x.up(f32Bytes(xv)), x.up(f32Bytes(dv)), x.up(f32Bytes(wv))
		ip, yf, yq, xs := x.up(i32Bytes(rowIdx)), x.zeros(4*len(want)), x.zeros(4*len(want)), x.zeros(4*rows)
		if f == fmtF32 {
			yq = yf
		}
		x.do(func(d *devState) error {
			return d.k.lmNorm(d.stream, xp, dp, lmEpi{}, wp, ip, yf, yq, f, xs, len(rowIdx), cols, 1e-6, margin)
		})
		gotX := x.floats(xp, rows*cols)
		for ri := range rows {
			touched := slices.Contains(rowIdx, int32(ri))
			for i := range cols {
				w := xv[ri*cols+i]
				if touched {
					w = sum[ri*cols+i]
				}
				if gotX[ri*cols+i] != w {
					t.Fatalf("cols %d fmt %d: residual x[%d][%d] = %g, want %g (x += delta on rows %v only)", cols, f, ri, i, gotX[ri*cols+i], w, rowIdx)
				}
			}
		}
		got := x.floats(yf, len(want))
		for i := range want {
			if ulpDiff(got[i], want[i]) > 1 {
				t.Fatalf("cols %d fmt %d: norm row %d (x row %d) [%d] = %g, want %g (rmsNormRow)", cols, f, i/cols, rowIdx[i/cols], i%cols, got[i], want[i])
			}
		}
		checkOperand(t, fmt.Sprintf("lmNorm cols %d fmt %d", cols, f), f, got, x.down(yq, 4*len(want)), x.floats(xs, len(rowIdx)), cols, margin)
		if f == fmtF32 {
			continue
		}
		// gbx_quant_rows from the same fp32 rows.
		q, qs := x.zeros(4*len(want)), x.zeros(4*rows)
		x.do(func(d *devState) error { return d.k.quantRows(d.stream, yf, q, f, qs, len(rowIdx), cols, margin) })
		checkOperand(t, fmt.Sprintf("quantRows fmt %d", f), f, got, x.down(q, 4*len(want)), x.floats(qs, len(rowIdx)), cols, margin)
	}
}

// checkOperand checks a linear layer's operand y (format f) made from the
// fp32 rows h, against package precision (the CPU's roundRows): exact.
func checkOperand(t *testing.T, what string, f fmtCode, h []float32, y []byte, xs []float32, cols, margin int) {
	t.Helper()
	for r := range len(h) / cols {
		row := h[r*cols : (r+1)*cols]
		var s float32
		if f == fmtE4M3 || f == fmtE4M3F32 {
			if s = precision.FP8Scale(precision.Amax(row), margin); xs[r] != s {
				t.Fatalf("%s: row %d scale %g, want FP8Scale(amax %g) = %g", what, r, xs[r], precision.Amax(row), s)
			}
		}
		for i, v := range row {
			at := r*cols + i
			var ok bool
			var g, w any
			switch f {
			case fmtF32:
				g, w = math.Float32frombits(binary.LittleEndian.Uint32(y[4*at:])), v
			case fmtTF32:
				g, w = math.Float32frombits(binary.LittleEndian.Uint32(y[4*at:])), precision.RoundTF32(v)
			case fmtBF16:
				g, w = binary.LittleEndian.Uint16(y[2*at:]), precision.EncodeBF16(v)
			case fmtF16:
				g, w = binary.LittleEndian.Uint16(y[2*at:]), precision.EncodeFP16(v)
			case fmtE4M3:
				g, w = y[at], precision.EncodeE4M3(v/s)
			case fmtE4M3F32:
				g, w = math.Float32frombits(binary.LittleEndian.Uint32(y[4*at:])), precision.DecodeE4M3(precision.EncodeE4M3(v/s))
			}
			ok = g == w
			if !ok {
				t.Fatalf("%s: row %d [%d] of %g: got %v, want %v", what, r, i, v, g, w)
			}
		}
	}
}

// TestLMOpConvert checks gbx_lm_convert (weights converted on the device
// from the stored dtype) and gbx_lm_embed against package precision.
func TestLMOpConvert(t *testing.T) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(3, 4))
	const n = 4099
	v := randFloats(r, n, 3)
	v[0], v[1], v[2] = 0, float32(math.Copysign(0, -1)), 1e-40 // zeros, a subnormal
	bf := make([]uint16, n)
	h := make([]uint16, n)
	precision.EncodeBF16Slice(bf, v)
	precision.EncodeFP16Slice(h, v)
	srcs := map[fmtCode][]byte{fmtF32: f32Bytes(v), fmtBF16: u16Bytes(bf), fmtF16: u16Bytes(h)}
	widened := map[fmtCode][]float32{fmtF32: v, fmtBF16: make([]float32, n), fmtF16: make([]float32, n)}
	precision.DecodeBF16Slice(widened[fmtBF16], bf)
	precision.DecodeFP16Slice(widened[fmtF16], h)
	for sf, raw := range srcs {
		src := x.up(raw)
		for _, df := range []fmtCode{fmtF32, fmtTF32, fmtBF16, fmtF16} {
			dst := x.zeros(4 * n)
			x.do(func(d *devState) error { return d.k.lmConvert(d.stream, src, sf, dst, df, n) })
			checkOperand(t, fmt.Sprintf("lmConvert %d→%d", sf, df), df, widened[sf], x.down(dst, 4*n), nil, n, 0)
		}
		// The embedding lookup widens rows of a table stored as sf.
		const hidden = 97
		toks := []int32{3, 0, 41, 3}
		tok, emb := x.up(i32Bytes(toks)), x.zeros(4*len(toks)*hidden)
		x.do(func(d *devState) error { return d.k.lmEmbed(d.stream, src, sf, tok, emb, len(toks), hidden) })
		got := x.floats(emb, len(toks)*hidden)
		for i, tk := range toks {
			for j := range hidden {
				if w := widened[sf][int(tk)*hidden+j]; got[i*hidden+j] != w {
					t.Fatalf("lmEmbed (table fmt %d): row %d (token %d) [%d] = %g, want %g", sf, i, tk, j, got[i*hidden+j], w)
				}
			}
		}
	}
}

// TestLMOpRowsGate checks that gbx_lm_norm, gbx_quant_rows and
// gbx_lm_silu_rows (with gbx_lm_quant_cols) give the same bits to a row
// whatever the step's size: up to GBX_REGS_MAX_ROWS rows their _small
// kernels hold a row in registers or load first, above it the others loop
// over memory (and above lmWideRows with blocks of lmThreads), and a row's
// result must not depend on the rows beside it.
func TestLMOpRowsGate(t *testing.T) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(21, 22))
	const cols, few = 2100, regsMaxRows / 2
	for _, big := range []int{regsMaxRows + 1, lmWideRows + 1} {
		xv, dv, wv := randFloats(r, big*cols, 2), randFloats(r, big*cols, 1), randFloats(r, cols, 0.3)
		for _, f := range []fmtCode{fmtBF16, fmtE4M3} {
			run := func(rows int) [][]byte {
				xp, dp, wp := x.up(f32Bytes(xv[:rows*cols])), x.up(f32Bytes(dv[:rows*cols])), x.up(f32Bytes(wv))
				yf, yq, xs, q, qs := x.zeros(4*rows*cols), x.zeros(4*rows*cols), x.zeros(4*rows), x.zeros(4*rows*cols), x.zeros(4*rows)
				x.do(func(d *devState) error {
					if err := d.k.lmNorm(d.stream, xp, dp, lmEpi{}, wp, 0, yf, yq, f, xs, rows, cols, 1e-6, 1); err != nil {
						return err
					}
					return d.k.quantRows(d.stream, yf, q, f, qs, rows, cols, 1)
				})
				// The first few rows' bytes.
				n, nq := 4*few*cols, fmtSize(f)*few*cols
				return [][]byte{x.down(xp, n), x.down(yf, n), x.down(yq, nq), x.down(xs, 4*few), x.down(q, nq), x.down(qs, 4*few)}
			}
			small, large := run(few), run(big)
			for i, what := range []string{"residual", "norm", "norm's operand", "its scales", "quant_rows' operand", "its scales"} {
				if !bytes.Equal(small[i], large[i]) {
					t.Errorf("fmt %d: %s of the first %d rows differ between steps of %d and %d rows", f, what, few, few, big)
				}
			}
		}
	}
	// SiLU·up, its rows split over blocks at both sizes (fp8: the operand
	// by gbx_lm_quant_cols).
	const inter, big = 4096, 64
	gu := randFloats(r, big*2*inter, 2)
	for _, f := range []fmtCode{fmtBF16, fmtE4M3} {
		run := func(rows int) [][]byte {
			gp, act, yq, xs := x.up(f32Bytes(gu[:rows*2*inter])), x.zeros(4*rows*inter), x.zeros(4*rows*inter), x.zeros(4*rows)
			amax := x.zeros(lmSiLUAmaxBytes)
			x.do(func(d *devState) error {
				return d.k.lmSiLURows(d.stream, gp, lmEpi{}, act, yq, f, xs, amax, rows, inter, 1)
			})
			return [][]byte{x.down(act, 4*few*inter), x.down(yq, fmtSize(f)*few*inter), x.down(xs, 4*few)}
		}
		small, large := run(few), run(big)
		for i, what := range []string{"SiLU·up", "its operand", "its scales"} {
			if !bytes.Equal(small[i], large[i]) {
				t.Errorf("fmt %d: %s of the first %d rows differ between steps of %d and %d rows", f, what, few, few, big)
			}
		}
	}
	// RoPE with q/k norms (heads of 128: in registers up to the gate), each
	// row a sequence of its own in a block of its own.
	const heads, kvHeads, dim = 4, 2, 128
	width := (heads + 2*kvHeads) * dim
	qkv, qn, kn := randFloats(r, big*width, 1.5), randFloats(r, dim, 0.2), randFloats(r, dim, 0.2)
	inv := (&lm.Config{HeadDim: dim, RopeTheta: 10000}).InvFreq32()
	var pos, seq, btOff, blocks []int32
	for i := range int32(big) {
		pos, seq, btOff, blocks = append(pos, i%kvBlock), append(seq, i), append(btOff, i), append(blocks, i)
	}
	perBlock := 2 * kvHeads * kvBlock * dim // one layer
	for _, f := range []fmtCode{fmtBF16, fmtE4M3} {
		run := func(rows int) [][]byte {
			ra := ropeArgs{
				qkv: x.up(f32Bytes(qkv[:rows*width])), stride: width, qNorm: x.up(f32Bytes(qn)), kNorm: x.up(f32Bytes(kn)), eps: 1e-6,
				invFreq: x.up(f32Bytes(inv)), pos: x.up(i32Bytes(pos)), seq: x.up(i32Bytes(seq)), btOff: x.up(i32Bytes(btOff)),
				blocks: x.up(i32Bytes(blocks)), cache: x.zeros(fmtSize(f) * rows * perBlock), cacheFmt: f,
				kvScale: x.zeros(4 * rows * perBlock / dim), layers: 1, heads: heads, kvHeads: kvHeads, dim: dim,
			}
			x.do(func(d *devState) error { return d.k.lmRope(d.stream, rows, ra) })
			return [][]byte{x.down(ra.qkv, 4*few*width), x.down(ra.cache, fmtSize(f)*few*perBlock), x.down(ra.kvScale, 4*few*perBlock/dim)}
		}
		small, large := run(few), run(big)
		for i, what := range []string{"q/k/v", "cache", "cache scales"} {
			if !bytes.Equal(small[i], large[i]) {
				t.Errorf("cache fmt %d: RoPE's %s of the first %d rows differ between steps of %d and %d rows", f, what, few, few, big)
			}
		}
	}
}

// kvOff is the cache layout of abi.h.
func kvOff(blk, layer, layers, kv, g, kvHeads, slot, dim int) int {
	return ((((blk*layers+layer)*2+kv)*kvHeads+g)*kvBlock + slot) * dim
}

// TestLMOpRope checks gbx_lm_rope: per-head q/k norms, RoPE (default and
// llama3 frequencies) and the K/V stores into the paged cache, against
// kernels/cpu's qkRope and store, element by element.
func TestLMOpRope(t *testing.T) {
	// 32: the general loops; 128: a head in registers (gbx_rope_head).
	for _, dim := range []int{32, 128} {
		t.Run(fmt.Sprint("dim ", dim), func(t *testing.T) { testLMOpRope(t, dim) })
	}
}

func testLMOpRope(t *testing.T, dim int) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(5, 6))
	const heads, kvHeads, layers, layer, blocks = 4, 2, 3, 1, 6
	width := (heads + 2*kvHeads) * dim
	// llama3 frequency scaling: some frequencies kept, some divided, some
	// interpolated.
	cfg := lm.Config{HeadDim: dim, RopeTheta: 10000, RopeScaling: &lm.RopeScaling{Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}}
	inv := cfg.InvFreq32()
	pos := []int32{0, 1, 17, 40, 95}
	seq := []int32{0, 0, 1, 1, 2}
	tables := [][]int32{{4, 1}, {2, 5, 0}, {3, 1, 2, 4, 0, 5}}
	var btOff, flat []int32
	for _, tb := range tables {
		btOff = append(btOff, int32(len(flat)))
		flat = append(flat, tb...)
	}
	rows := len(pos)
	for _, tc := range []struct {
		name  string
		norms bool
		f     fmtCode
	}{{"rope, bf16 cache", false, fmtBF16}, {"q/k norms, rope, f32 cache", true, fmtF32}, {"rope, e4m3 cache", false, fmtE4M3}} {
		qkv := randFloats(r, rows*width, 1.5)
		if tc.f == fmtE4M3 {
			// A V head of zeros (scale 1), one of tiny values (E4M3
			// subnormals) and one with a large value.
			clear(qkv[width-dim : width])
			for i := range dim {
				qkv[2*width-dim+i] *= 1e-3
			}
			qkv[3*width-1] = 3e4
		}
		var qn, kn []float32
		qnp, knp := uint64(0), uint64(0)
		if tc.norms {
			qn, kn = randFloats(r, dim, 0.2), randFloats(r, dim, 0.2)
			for i := range qn {
				qn[i]++
				kn[i]++
			}
			qnp, knp = x.up(f32Bytes(qn)), x.up(f32Bytes(kn))
		}
		es := fmtSize(tc.f)
		cacheN := blocks * layers * 2 * kvHeads * kvBlock * dim
		qkvp, cache := x.up(f32Bytes(qkv)), x.zeros(es*cacheN)
		var kvScale uint64
		if tc.f == fmtE4M3 {
			kvScale = x.zeros(4 * cacheN / dim)
		}
		ra := ropeArgs{
			qkv: qkvp, stride: width, qNorm: qnp, kNorm: knp, eps: 1e-6, invFreq: x.up(f32Bytes(inv)),
			pos: x.up(i32Bytes(pos)), seq: x.up(i32Bytes(seq)), btOff: x.up(i32Bytes(btOff)), blocks: x.up(i32Bytes(flat)),
			cache: cache, cacheFmt: tc.f, kvScale: kvScale, layer: layer, layers: layers, heads: heads, kvHeads: kvHeads, dim: dim,
		}
		x.do(func(d *devState) error { return d.k.lmRope(d.stream, rows, ra) })
		got := x.floats(qkvp, rows*width)
		cb := x.down(cache, es*cacheN)
		var scales []float32
		if tc.f == fmtE4M3 {
			scales = x.floats(kvScale, cacheN/dim)
		}
		written, writtenS := map[int]bool{}, map[int]bool{}
		for ri := range rows {
			half := dim / 2
			cos, sin := make([]float32, half), make([]float32, half)
			for i, f := range inv {
				a := float64(f * float32(pos[ri]))
				cos[i], sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
			}
			for h := range heads + 2*kvHeads {
				want := append([]float32(nil), qkv[ri*width+h*dim:ri*width+(h+1)*dim]...)
				if h < heads+kvHeads {
					if tc.norms {
						w := qn
						if h >= heads {
							w = kn
						}
						rmsNormRef(want, want, w, 1e-6)
					}
					lo, hi := want[:half], want[half:]
					for i, c := range cos {
						s := sin[i]
						a, b := lo[i], hi[i]
						lo[i] = float32(a*c) - float32(b*s)
						hi[i] = float32(b*c) + float32(a*s)
					}
				}
				for i := range dim {
					// Outputs may differ by an ulp where double cos/sin round
					// differently in Go and CUDA, or the norm's sum order
					// differs.
					if g := got[ri*width+h*dim+i]; h < heads+kvHeads && ulpDiff(g, want[i]) > 2 {
						t.Fatalf("%s: row %d (pos %d) head %d [%d] = %g, want %g", tc.name, ri, pos[ri], h, i, g, want[i])
					}
				}
				if h < heads {
					continue
				}
				kv, g := 0, h-heads
				if h >= heads+kvHeads {
					kv, g = 1, h-heads-kvHeads
				}
				blk := tables[seq[ri]][int(pos[ri])/kvBlock]
				off := kvOff(int(blk), layer, layers, kv, g, kvHeads, int(pos[ri])%kvBlock, dim)
				head := got[ri*width+h*dim : ri*width+(h+1)*dim]
				// E4M3: the head's scale FP8Scale(amax, 0), and each value
				// as precision encodes it.
				var sc float32
				if tc.f == fmtE4M3 {
					so := off / dim
					writtenS[so] = true
					if sc = precision.FP8Scale(precision.Amax(head), 0); scales[so] != sc {
						t.Fatalf("%s: scale of %s of row %d (pos %d, block %d, KV head %d) = %g, want %g", tc.name, []string{"K", "V"}[kv], ri, pos[ri], blk, g, scales[so], sc)
					}
				}
				for i := range dim {
					written[off+i] = true
					var gv, wv any
					switch tc.f {
					case fmtF32:
						gv, wv = math.Float32frombits(binary.LittleEndian.Uint32(cb[4*(off+i):])), head[i]
					case fmtBF16:
						gv, wv = precision.DecodeBF16(binary.LittleEndian.Uint16(cb[2*(off+i):])), precision.RoundBF16(head[i])
					case fmtE4M3:
						gv, wv = cb[off+i], precision.EncodeE4M3(head[i]/sc)
					}
					if gv != wv {
						t.Fatalf("%s: cache %s of row %d (pos %d, block %d, KV head %d) [%d] = %g, want %g", tc.name, []string{"K", "V"}[kv], ri, pos[ri], blk, g, i, gv, wv)
					}
				}
			}
		}
		for i := range cacheN {
			if !written[i] && slices.ContainsFunc(cb[es*i:es*(i+1)], func(b byte) bool { return b != 0 }) {
				t.Fatalf("%s: cache element %d was written, and no row stores there", tc.name, i)
			}
		}
		for i, sc := range scales {
			if !writtenS[i] && sc != 0 {
				t.Fatalf("%s: scale %d was written, and no row stores there", tc.name, i)
			}
		}
	}
}

// TestLMOpAttention checks gbx_attn_partial, gbx_attn_dec and gbx_attn_mma
// (where they take the shape) and gbx_attn_reduce: causal grouped-query
// attention over a paged cache (f32, bf16, or E4M3 with a scale per row)
// with scrambled block tables, contexts of one position to several splits,
// against float64 over the values the cache holds (E4M3: dequantized).
func TestLMOpAttention(t *testing.T) {
	x := newDevT(t)
	x.do(func(d *devState) error { return d.k.load(modAttnMMA) })
	r := rand.New(rand.NewPCG(7, 8))
	const f32, bf16, e4m3 = fmtF32, fmtBF16, fmtE4M3
	for _, tc := range []struct {
		kvHeads, group, dim int
		f                   fmtCode
		ctx                 []int   // positions + 1 of the rows
		qMag                float64 // the queries' magnitude
	}{
		{2, 2, 16, bf16, []int{1, 2, 16, 17, 40}, 1},
		{8, 4, 128, bf16, []int{1, 127, 128, 129, 300, 515}, 1},
		{1, 16, 256, f32, []int{1, 200, 384}, 1},
		{3, 3, 24, f32, []int{130, 5}, 1},
		{1, 1, 8, bf16, []int{1000}, 1},
		{2, 7, 64, bf16, []int{3, 129, 700}, 1},
		{1, 8, 256, f32, []int{1, 257}, 1},
		{2, 5, 32, f32, []int{64, 90}, 1},
		{1, 8, 128, bf16, []int{16, 33, 5000}, 1},
		{3, 1, 64, bf16, []int{1, 15, 16, 250}, 1},
		{2, 3, 64, bf16, []int{48, 9000}, 1},
		{4, 2, 128, bf16, []int{2, 160, 161}, 1},
		{8, 4, 128, e4m3, []int{1, 127, 129, 515}, 1},
		{2, 7, 64, e4m3, []int{3, 129, 700}, 1},
		{1, 2, 128, e4m3, []int{17, 2100}, 1},
		{3, 3, 24, e4m3, []int{130, 5}, 1},
		{1, 16, 256, e4m3, []int{1, 200}, 1},
		{1, 4, 128, e4m3, []int{33000}, 1}, // splits of 33 blocks: past the 32 table entries read up front
		{1, 2, 128, bf16, []int{33000}, 1},
		// Queries past F16's range (an E4M3 cache's operands): one position
		// takes all the weight, as in float64, not infinities.
		{2, 4, 128, e4m3, []int{40, 300}, 1 << 17},
		{2, 4, 128, bf16, []int{40, 300}, 1 << 17},
	} {
		name := fmt.Sprintf("kvHeads %d group %d dim %d cache format %d", tc.kvHeads, tc.group, tc.dim, tc.f)
		const layers, layer = 2, 1
		heads := tc.kvHeads * tc.group
		// One sequence per row, each with its own scrambled blocks.
		var btOff, flat, pos, seq, split []int32
		nblk := 0
		for i, n := range tc.ctx {
			btOff = append(btOff, int32(len(flat)))
			for range (n + kvBlock - 1) / kvBlock {
				flat = append(flat, int32(nblk))
				nblk++
			}
			pos, seq, split = append(pos, int32(n-1)), append(seq, int32(i)), append(split, int32(attnSplit(n)))
		}
		perm := r.Perm(nblk)
		for i := range flat {
			flat[i] = int32(perm[flat[i]])
		}
		raw, vals, scales := attnCache(r, tc.f, nblk*layers*2*tc.kvHeads*kvBlock*tc.dim, tc.dim)
		rows := len(tc.ctx)
		stride := (heads + 2*tc.kvHeads) * tc.dim
		q := randFloats(r, rows*stride, 1)
		for i := range q {
			q[i] *= float32(tc.qMag)
		}
		maxSplits := 0
		for _, n := range tc.ctx {
			maxSplits = max(maxSplits, (n+attnSplit(n)-1)/attnSplit(n))
		}
		a := attnArgs{
			qkv: x.up(f32Bytes(q)), stride: stride, cache: x.up(raw), cacheFmt: tc.f, layer: layer, layers: layers,
			kvHeads: tc.kvHeads, group: tc.group, dim: tc.dim, pos: x.up(i32Bytes(pos)), seq: x.up(i32Bytes(seq)),
			btOff: x.up(i32Bytes(btOff)), blocks: x.up(i32Bytes(flat)), split: x.up(i32Bytes(split)),
			scale: float32(1 / math.Sqrt(float64(tc.dim))), maxSplits: maxSplits, out: x.zeros(4 * rows * heads * tc.dim),
			outStride: heads * tc.dim,
		}
		if scales != nil {
			a.kvScale = x.up(f32Bytes(scales))
		}
		// Two rows per launch, to check row0. Every kernel that takes
		// the shape (with its bf16 operand); gbx_attn_mma's _pf and _ring
		// entry points (i ≥ 3) must give its bits.
		a.partO = x.zeros(4 * 2 * heads * maxSplits * tc.dim)
		a.partML = x.zeros(4 * 2 * heads * maxSplits * 2)
		var k *kernelSet // attnKernel reads nothing of it
		var mmaOut []float32
		for i, dec := range []*kernel{nil, k.attnKernel(false, tc.f, tc.dim, tc.group), k.attnKernel(true, tc.f, tc.dim, tc.group), k.attnPFKernel(tc.f, tc.dim, tc.group), k.attnRingKernel(tc.f, tc.dim, tc.group)} {
			if i > 0 && dec == nil {
				continue // the shape has no gbx_attn_dec (or gbx_attn_mma)
			}
			a.dec, a.yq, a.yqFmt = dec, 0, fmtBF16
			kname := "gbx_attn_partial"
			if dec != nil {
				kname = dec.name
				a.yq = x.zeros(2 * rows * heads * tc.dim)
			}
			x.do(func(d *devState) error { return d.lmAttention(rows, 2, a) })
			got := x.floats(a.out, rows*heads*tc.dim)
			if dec != nil {
				checkOperand(t, name+" "+kname+" operand", fmtBF16, got, x.down(a.yq, 2*len(got)), nil, heads*tc.dim, 0)
			}
			// Float sums over up to 9,000 positions: a few float ulps;
			// gbx_attn_mma rounds the queries and the weights to BF16 on a
			// BF16 cache, to F16 (three bits more) on an E4M3 one.
			tol := 1e-5
			if i >= 2 {
				tol = 1e-2
				if tc.f == e4m3 {
					tol = 6e-4
				}
			}
			checkAttention(t, name+" "+kname, got, q, vals, flat, btOff, tc.ctx, stride, tc.kvHeads, tc.group, tc.dim, layer, layers, tol)
			switch i {
			case 2:
				mmaOut = got
			case 3, 4:
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(mmaOut[j]) {
						t.Fatalf("%s %s: out[%d] = %v, gbx_attn_mma's entry point %v", name, kname, j, got[j], mmaOut[j])
					}
				}
			}
		}
	}
}

// TestLMOpAttentionGroupedRows checks gbx_attn_mma's _rows entry points
// on a prefill's rows: one sequence's consecutive positions, which a block
// attends 8/G at a time, among rows that break the groups (another
// sequence's, a decode row, a launch's last rows, a split boundary).
// Every row's output, from them and from the entry points that attend a
// row a block, must be the bits it gets alone (a launch of one row), and
// within BF16 rounding of float64.
func TestLMOpAttentionGroupedRows(t *testing.T) {
	x := newDevT(t)
	x.do(func(d *devState) error { return d.k.load(modAttnMMA) })
	r := rand.New(rand.NewPCG(11, 12))
	seqs := []span{{0, 38}, {500, 500}, {120, 135}, {2043, 2052}, {7, 9}, {8191, 8194}}
	for _, tc := range []struct {
		kvHeads, group, dim int
		f                   fmtCode
	}{
		{2, 4, 128, fmtBF16}, {2, 4, 128, fmtE4M3}, {2, 2, 64, fmtBF16}, {3, 3, 64, fmtE4M3}, {1, 1, 128, fmtE4M3}, {1, 8, 64, fmtBF16},
	} {
		name := fmt.Sprintf("kvHeads %d group %d dim %d cache format %d", tc.kvHeads, tc.group, tc.dim, tc.f)
		const layers, layer = 2, 1
		heads := tc.kvHeads * tc.group
		sr := spanRows(r, seqs)
		btOff, flat, pos, seq, rowOff, ctx, nblk := sr.btOff, sr.flat, sr.pos, sr.seq, sr.rowOff, sr.ctx, sr.nblk
		var split []int32
		for _, n := range ctx {
			split = append(split, int32(attnSplit(n)))
		}
		raw, vals, scales := attnCache(r, tc.f, nblk*layers*2*tc.kvHeads*kvBlock*tc.dim, tc.dim)
		rows := len(pos)
		stride := (heads + 2*tc.kvHeads) * tc.dim
		q := randFloats(r, rows*stride, 1)
		maxSplits := 0
		for _, n := range ctx {
			maxSplits = max(maxSplits, (n+attnSplit(n)-1)/attnSplit(n))
		}
		var k *kernelSet // attnKernel reads nothing of it
		a := attnArgs{
			qkv: x.up(f32Bytes(q)), stride: stride, cache: x.up(raw), cacheFmt: tc.f, layer: layer, layers: layers,
			kvHeads: tc.kvHeads, group: tc.group, dim: tc.dim, pos: x.up(i32Bytes(pos)), seq: x.up(i32Bytes(seq)),
			btOff: x.up(i32Bytes(btOff)), blocks: x.up(i32Bytes(flat)), split: x.up(i32Bytes(split)),
			scale: float32(1 / math.Sqrt(float64(tc.dim))), maxSplits: maxSplits, out: x.zeros(4 * rows * heads * tc.dim),
			outStride: heads * tc.dim, partO: x.zeros(4 * rows * heads * maxSplits * tc.dim),
			partML: x.zeros(4 * rows * heads * maxSplits * 2), dec: k.attnKernel(true, tc.f, tc.dim, tc.group),
		}
		if scales != nil {
			a.kvScale = x.up(f32Bytes(scales))
		}
		// Alone: a launch a row. Then launches of all rows and of 13 (whose
		// ends cut groups).
		x.do(func(d *devState) error { return d.lmAttention(rows, 1, a) })
		alone := x.floats(a.out, rows*heads*tc.dim)
		checkAttention(t, name+" alone", alone, q, vals, flat, rowOff, ctx, stride, tc.kvHeads, tc.group, tc.dim, layer, layers, 1e-2)
		kernels := []*kernel{a.dec}
		if kr := k.attnRowsKernel(tc.f, tc.dim, tc.group); kr != nil {
			kernels = append(kernels, kr)
		} else if tc.group <= 4 {
			t.Fatalf("%s: no _rows entry point", name)
		}
		for _, a.dec = range kernels {
			for _, chunk := range []int{rows, 13} {
				a.out = x.zeros(4 * rows * heads * tc.dim)
				x.do(func(d *devState) error { return d.lmAttention(rows, chunk, a) })
				got := x.floats(a.out, len(alone))
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(alone[i]) {
						row := i / (heads * tc.dim)
						t.Fatalf("%s %s, launches of %d rows: row %d (sequence %d, position %d) out[%d] = %g, alone %g",
							name, a.dec.name, chunk, row, seq[row], pos[row], i%(heads*tc.dim), got[i], alone[i])
					}
				}
			}
		}
	}
}

// TestLMOpAttentionPrefill checks gbx_attn_prefill on prefill chunks (a
// sequence's consecutive positions, several sequences in a launch, one of
// a single row, runs of rows that cross its blocks' boundaries) over BF16
// and E4M3 caches: within BF16 (E4M3: F16) rounding of float64, its
// operand the output rounded, and every row's output the same bits in
// every launch of its form — all rows at once, launches of 1, 7 and 13
// rows (which cut the blocks' rows differently) — and wherever the cache
// (values and scales) past a run's last position holds NaN. Every form:
// mma.sync, and on compute capability 9.0 the warpgroup (wgmma) ones.
func TestLMOpAttentionPrefill(t *testing.T) {
	x := newDevT(t)
	if m := x.b.Info().Major; m < 8 {
		t.Skipf("compute capability %d: gbx_attn_prefill needs 8.0", m)
	}
	x.do(func(d *devState) error { return d.k.load(modAttnPrefill) })
	forms := []int{pfMMA} // and the warpgroup form on 9.0
	if i := x.b.Info(); i.Major == 9 && i.Minor == 0 {
		forms = append(forms, pfWG)
	}
	r := rand.New(rand.NewPCG(21, 22))
	seqs := []span{{0, 38}, {500, 500}, {120, 135}, {2043, 2052}, {7, 9}}
	for _, tc := range []struct {
		kvHeads, group, dim int
		f                   fmtCode
	}{{2, 4, 128, fmtBF16}, {1, 3, 64, fmtBF16}, {2, 8, 64, fmtBF16}, {1, 16, 128, fmtBF16}, {2, 4, 128, fmtE4M3}, {3, 3, 64, fmtE4M3}} {
		name := fmt.Sprintf("kvHeads %d group %d dim %d cache format %d", tc.kvHeads, tc.group, tc.dim, tc.f)
		const layers, layer = 2, 1
		heads := tc.kvHeads * tc.group
		sr := spanRows(r, seqs)
		btOff, flat, pos, seq, rowOff, ctx, nblk := sr.btOff, sr.flat, sr.pos, sr.seq, sr.rowOff, sr.ctx, sr.nblk
		raw, vals, scales := attnCache(r, tc.f, nblk*layers*2*tc.kvHeads*kvBlock*tc.dim, tc.dim)
		// NaN at every position past each sequence's last (its blocks'
		// tails; E4M3: its scales too): weights of 0 there must not turn
		// into NaN.
		for i, sp := range seqs {
			for p := sp.to + 1; p < (sp.to/kvBlock+1)*kvBlock; p++ {
				blk := int(flat[int(btOff[i])+p/kvBlock])
				for kv := range 2 {
					for g := range tc.kvHeads {
						off := kvOff(blk, layer, layers, kv, g, tc.kvHeads, p%kvBlock, tc.dim)
						for j := range tc.dim {
							if tc.f == fmtE4M3 {
								raw[off+j] = 0x7f
							} else {
								binary.LittleEndian.PutUint16(raw[2*(off+j):], 0x7fc0)
							}
						}
						if scales != nil {
							scales[kvOff(blk, layer, layers, kv, g, tc.kvHeads, p%kvBlock, 1)] = float32(math.NaN())
						}
					}
				}
			}
		}
		rows := len(pos)
		stride := (heads + 2*tc.kvHeads) * tc.dim
		q := randFloats(r, rows*stride, 1)
		a := attnArgs{
			qkv: x.up(f32Bytes(q)), stride: stride, cache: x.up(raw), cacheFmt: tc.f, layer: layer, layers: layers,
			kvHeads: tc.kvHeads, group: tc.group, dim: tc.dim, pos: x.up(i32Bytes(pos)), seq: x.up(i32Bytes(seq)),
			btOff: x.up(i32Bytes(btOff)), blocks: x.up(i32Bytes(flat)),
			scale: float32(1 / math.Sqrt(float64(tc.dim))), out: x.zeros(4 * rows * heads * tc.dim),
			outStride: heads * tc.dim, yq: x.zeros(2 * rows * heads * tc.dim), yqFmt: fmtBF16,
		}
		tol := 1e-2 // BF16 queries and weights
		if scales != nil {
			a.kvScale = x.up(f32Bytes(scales))
			tol = 6e-4 // F16's, as gbx_attn_mma's
		}
		for _, form := range forms {
			name := fmt.Sprintf("%s, form %d", name, form)
			a.pfForm, a.out = form, x.zeros(4*rows*heads*tc.dim)
			x.do(func(d *devState) error { return d.k.attnPrefill(d.stream, 0, rows, a) })
			all := x.floats(a.out, rows*heads*tc.dim)
			checkAttention(t, name, all, q, vals, flat, rowOff, ctx, stride, tc.kvHeads, tc.group, tc.dim, layer, layers, tol)
			checkOperand(t, name+" operand", fmtBF16, all, x.down(a.yq, 2*len(all)), nil, heads*tc.dim, 0)
			// Launches of 1, 7 and 13 rows.
			for _, chunk := range []int{1, 7, 13} {
				a.out = x.zeros(4 * rows * heads * tc.dim)
				x.do(func(d *devState) error {
					for r0 := 0; r0 < rows; r0 += chunk {
						if err := d.k.attnPrefill(d.stream, r0, min(chunk, rows-r0), a); err != nil {
							return err
						}
					}
					return nil
				})
				got := x.floats(a.out, len(all))
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(all[i]) {
						row := i / (heads * tc.dim)
						t.Fatalf("%s, launches of %d rows: row %d (sequence %d, position %d) out[%d] = %g, %g in one launch",
							name, chunk, row, seq[row], pos[row], i%(heads*tc.dim), got[i], all[i])
					}
				}
			}
		}
	}
}

// span is one sequence's rows of a step: positions from … to (inclusive).
type span struct{ from, to int }

// stepRows are the attention inputs of a step of spans: each sequence's
// block table (its own blocks, scrambled over the nblk of the cache) and,
// per row, its position, sequence, block-table offset and context.
type stepRows struct {
	btOff, flat, pos, seq, rowOff []int32
	ctx                           []int
	nblk                          int
}

// spanRows lays out seqs as a step's rows, the blocks scrambled by r.
func spanRows(r *rand.Rand, seqs []span) stepRows {
	var s stepRows
	for i, sp := range seqs {
		s.btOff = append(s.btOff, int32(len(s.flat)))
		for range (sp.to + 1 + kvBlock - 1) / kvBlock {
			s.flat = append(s.flat, int32(s.nblk))
			s.nblk++
		}
		for p := sp.from; p <= sp.to; p++ {
			s.pos, s.seq = append(s.pos, int32(p)), append(s.seq, int32(i))
			s.rowOff, s.ctx = append(s.rowOff, s.btOff[i]), append(s.ctx, p+1)
		}
	}
	perm := r.Perm(s.nblk)
	for i := range s.flat {
		s.flat[i] = int32(perm[s.flat[i]])
	}
	return s
}

// attnCache returns a cache of n values in format f (rows of dim), raw as
// the kernels read it, and the values it holds as floats (E4M3: decoded,
// with a scale per row, in scales; each row its own magnitude from 2^-7 to
// 1, as the other formats' values, whose larger keys make larger scores,
// whose error from gbx_attn_mma's BF16 queries grows with them; some rows
// zero).
func attnCache(r *rand.Rand, f fmtCode, n, dim int) (raw []byte, vals, scales []float32) {
	vals = randFloats(r, n, 1)
	raw = make([]byte, fmtSize(f)*n)
	switch f {
	case fmtF32:
		for i, v := range vals {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
	case fmtBF16:
		for i, v := range vals {
			vals[i] = precision.RoundBF16(v)
			binary.LittleEndian.PutUint16(raw[2*i:], precision.EncodeBF16(v))
		}
	case fmtE4M3:
		scales = make([]float32, n/dim)
		for i := range scales {
			row := vals[i*dim : (i+1)*dim]
			mag := float32(math.Ldexp(1, r.IntN(8)-7))
			if r.IntN(16) == 0 {
				mag = 0
			}
			for j := range row {
				row[j] *= mag
			}
			scales[i] = precision.FP8Scale(precision.Amax(row), 0)
			precision.EncodeE4M3Slice(raw[i*dim:(i+1)*dim], row, scales[i])
			precision.DecodeE4M3Slice(row, raw[i*dim:(i+1)*dim], scales[i])
		}
	}
	return raw, vals, scales
}

// checkAttention checks got [rows, heads·dim], attention of the rows of
// contexts ctx over the cache vals (block tables flat from btOff), against
// float64.
func checkAttention(t *testing.T, name string, got, q, vals []float32, flat, btOff []int32, ctx []int, stride, kvHeads, group, dim, layer, layers int, tol float64) {
	t.Helper()
	heads := kvHeads * group
	for ri, n := range ctx {
		tb := flat[btOff[ri]:]
		for h := range heads {
			g := h / group
			scores := make([]float64, n)
			hi := math.Inf(-1)
			for j := range n {
				off := kvOff(int(tb[j/kvBlock]), layer, layers, 0, g, kvHeads, j%kvBlock, dim)
				var s float64
				for i := range dim {
					s += float64(q[ri*stride+h*dim+i]) * float64(vals[off+i])
				}
				scores[j] = s / math.Sqrt(float64(dim))
				hi = math.Max(hi, scores[j])
			}
			var sum float64
			for j := range scores {
				scores[j] = math.Exp(scores[j] - hi)
				sum += scores[j]
			}
			want := make([]float64, dim)
			for j := range n {
				off := kvOff(int(tb[j/kvBlock]), layer, layers, 1, g, kvHeads, j%kvBlock, dim)
				for i := range want {
					want[i] += scores[j] / sum * float64(vals[off+i])
				}
			}
			gh := got[(ri*heads+h)*dim : (ri*heads+h+1)*dim]
			if e := kt.RelL2(gh, want); !(e <= tol) {
				worst, at := 0.0, 0
				for i := range want {
					if d := math.Abs(float64(gh[i]) - want[i]); !(d <= worst) {
						worst, at = d, i
					}
				}
				t.Fatalf("%s: row %d (context %d, %d splits) query head %d: rel L2 %.3g vs float64, want <= %g; worst [%d] %g, want %g",
					name, ri, n, (n+attnSplit(n)-1)/attnSplit(n), h, e, tol, at, gh[at], want[at])
			}
		}
	}
}

// positiveFloats returns n values |u| + floor, u normal with deviation
// scale (randFloats): scales for an epilogue.
func positiveFloats(r *rand.Rand, n int, scale float64, floor float32) []float32 {
	v := randFloats(r, n, scale)
	for i := range v {
		v[i] = float32(math.Abs(float64(v[i]))) + floor
	}
	return v
}

// noSiLURow runs every SiLU of x's device on the split forms for the rest of
// the test.
func noSiLURow(x *devT) {
	x.do(func(d *devState) error { d.k.siluRowMin = -1; return nil })
	x.t.Cleanup(func() { x.do(func(d *devState) error { d.k.siluRowMin = 0; return nil }) })
}

// TestLMOpSiLURow checks gbx_lm_silu_row (one block a row, the row in
// shared memory, a step of siluRowMinRows rows or more) against the split
// forms it replaces there, which TestLMOpSiLUEpilogue checks against the
// CPU: the same operand and scales, bit for bit, with the gate/up
// projection's epilogue applied on load (its activation scales the
// operand's own, as in a decode step) and without.
func TestLMOpSiLURow(t *testing.T) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(31, 32))
	positive := func(n int) []float32 { return positiveFloats(r, n, 1, 0.5) }
	for _, tc := range []struct {
		rows, inter int
		f           fmtCode
		epi         bool
	}{
		{siluRowMinRows, 3000, fmtE4M3, false}, {siluRowMinRows + 3, 8192, fmtE4M3, true}, {200, 14336, fmtE4M3, true},
		{siluRowMinRows, 14336, fmtE4M3F32, false}, {siluRowMinRows, 5000, fmtBF16, true}, {siluRowMinRows, 8192, fmtF32, false}, {siluRowMinRows, 8190, fmtBF16, true},
	} {
		rows, inter := tc.rows, tc.inter
		gu, xsv, wsv, bv := randFloats(r, rows*2*inter, 3), positive(rows), positive(2*inter), randFloats(r, 2*inter, 0.1)
		run := func(regs bool) [][]byte {
			gp, xs := x.up(f32Bytes(gu)), x.up(f32Bytes(xsv))
			act, amax := x.zeros(4*rows*inter), x.zeros(lmSiLUAmaxBytes)
			yq := act
			if tc.f != fmtF32 {
				yq = x.zeros(4 * rows * inter)
			}
			var e lmEpi
			if tc.epi {
				e = lmEpi{xs: xs, ws: x.up(f32Bytes(wsv)), bias: x.up(f32Bytes(bv))}
			}
			x.do(func(d *devState) error {
				d.k.siluRowMin = -1
				if regs {
					d.k.siluRowMin = 0
				}
				defer func() { d.k.siluRowMin = 0 }()
				return d.k.lmSiLURows(d.stream, gp, e, act, yq, tc.f, xs, amax, rows, inter, 1)
			})
			return [][]byte{x.down(yq, fmtSize(tc.f)*rows*inter), x.down(xs, 4*rows)}
		}
		split, regs := run(false), run(true)
		for i, what := range []string{"operand", "scales"} {
			if !bytes.Equal(split[i], regs[i]) {
				t.Errorf("lmSiLURows %d×%d fmt %d (epilogue %v): gbx_lm_silu_row' %s differs from the split form's", rows, inter, tc.f, tc.epi, what)
			}
		}
	}
}

// TestLMOpSiLUEpilogue checks gbx_lm_silu_rows (with its bf16 operand) and
// gbx_scale_bias (per-row and
// per-column scales, bias, relu) against the CPU's arithmetic, exactly.
func TestLMOpSiLUEpilogue(t *testing.T) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(9, 10))
	// The float row is written by the split forms only: gbx_lm_silu_row
	// (TestLMOpSiLURow) writes the operand alone.
	noSiLURow(x)
	// One block per row, and (rows fewer than siluBlocks, wide) a row split
	// over blocks, whose fp8 operand is written by a second kernel.
	for _, tc := range []struct {
		rows, inter int
		f           fmtCode
	}{{3, 70, fmtBF16}, {2, 3000, fmtBF16}, {2, 3000, fmtE4M3}, {1, 14336, fmtE4M3F32}, {40, 3000, fmtE4M3}, {300, 2100, fmtE4M3},
		{100, 700, fmtBF16}, {600, 3000, fmtE4M3}} { // one block a row of 1,024 threads, then of 256
		rows, inter := tc.rows, tc.inter
		gu := randFloats(r, rows*2*inter, 3)
		gp, act, yq, xs, amax := x.up(f32Bytes(gu)), x.zeros(4*rows*inter), x.zeros(4*rows*inter), x.zeros(4*rows), x.zeros(lmSiLUAmaxBytes)
		x.do(func(d *devState) error {
			return d.k.lmSiLURows(d.stream, gp, lmEpi{}, act, yq, tc.f, xs, amax, rows, inter, 0)
		})
		got := x.floats(act, rows*inter)
		for ri := range rows {
			for c := range inter {
				i := ri*inter + c
				g := float64(gu[ri*2*inter+c])
				if w := float32(g/(1+math.Exp(-g))) * gu[ri*2*inter+inter+c]; ulpDiff(got[i], w) > 1 {
					t.Fatalf("lmSiLURows %d×%d row %d [%d]: %g, want %g", rows, inter, ri, c, got[i], w)
				}
			}
		}
		what := fmt.Sprintf("lmSiLURows %d×%d (%d blocks a row) fmt %d", rows, inter, siluSplit(rows, inter), tc.f)
		checkOperand(t, what, tc.f, got, x.down(yq, 4*rows*inter), x.floats(xs, rows), inter, 0)
	}
	const rows, inter = 3, 70
	y, xs, ws, b := randFloats(r, rows*inter, 1), randFloats(r, rows, 1), randFloats(r, inter, 1), randFloats(r, inter, 1)
	for _, tc := range []struct {
		name             string
		xs, ws, bs, relu bool
	}{{"all", true, true, true, false}, {"all, relu", true, true, true, true}, {"weight scales and bias (fp4)", false, true, true, false}, {"bias", false, false, true, false}} {
		yp := x.up(f32Bytes(y))
		ptr := func(on bool, v []float32) uint64 {
			if !on {
				return 0
			}
			return x.up(f32Bytes(v))
		}
		xp, wp, bp := ptr(tc.xs, xs), ptr(tc.ws, ws), ptr(tc.bs, b)
		act := actNone
		if tc.relu {
			act = actReLU
		}
		x.do(func(d *devState) error { return d.k.scaleBias(d.stream, yp, xp, wp, bp, rows, inter, act) })
		got := x.floats(yp, rows*inter)
		for i, v := range y {
			ri, c := i/inter, i%inter
			if tc.xs {
				v *= xs[ri]
			}
			if tc.ws {
				v *= ws[c]
			}
			if tc.bs {
				v += b[c]
			}
			if tc.relu {
				v = max(v, 0)
			}
			if got[i] != v {
				t.Fatalf("scaleBias (%s) row %d [%d]: %g, want %g", tc.name, ri, c, got[i], v)
			}
		}
	}
}

// TestLMOpSample checks gbx_lm_logprobs and gbx_lm_sample on logits
// uploaded from the host against package kernels: LogSumExp, Sample (the
// same token for the same logits, at every temperature, top-k and top-p),
// the sampled token's log-probability and TopLogprobs.
func TestLMOpSample(t *testing.T) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(11, 12))
	type rowCase struct {
		logits []float32
		s      kernels.Sampling
		pos    int
	}
	var cases []rowCase
	vocabs := []int{1000, 1000, 1000, 128256}
	for vi, vocab := range vocabs {
		for ci := range 24 {
			l := randFloats(r, vocab, 1+float64(ci%3))
			switch ci % 4 {
			case 1: // ties: many equal logits, ±0
				for i := range l {
					l[i] = float32(math.Round(float64(l[i]) * 2))
				}
				l[5], l[6] = 0, float32(math.Copysign(0, -1))
			case 2: // one dominant token
				l[r.IntN(vocab)] = 30
			}
			s := kernels.Sampling{
				Temperature: []float32{0, 0.5, 1, 1.7}[ci%4],
				TopK:        []int{0, 1, 5, 50, 0, 1000}[ci%6],
				TopP:        []float32{0, 0.3, 0.9, 1, 0.95}[ci%5],
				Seed:        r.Uint64(), TopLogprobs: []int{0, 1, 5, 20}[(ci+vi)%4],
			}
			cases = append(cases, rowCase{l, s, r.IntN(4096)})
		}
	}
	// One block per row, rows of a vocab together.
	start := 0
	for _, vocab := range []int{1000, 128256} {
		var rows []rowCase
		for _, c := range cases[start:] {
			if len(c.logits) != vocab {
				break
			}
			rows = append(rows, c)
		}
		start += len(rows)
		n := len(rows)
		var flat []float32
		p := &lmPlan{}
		for i, c := range rows {
			flat = append(flat, c.logits...)
			p.sRow = append(p.sRow, int32(i))
			p.sTemp = append(p.sTemp, c.s.Temperature)
			p.sTopK = append(p.sTopK, int32(c.s.TopK))
			p.sTopP = append(p.sTopP, c.s.TopP)
			p.sU = append(p.sU, kernels.SampleUniform(c.s.Seed, c.pos))
			p.sNTop = append(p.sNTop, int32(min(c.s.TopLogprobs, vocab)))
			p.targets = append(p.targets, int32(r.IntN(vocab)))
		}
		packed, lay := p.pack()
		hdr := x.up(packed)
		logits := x.up(f32Bytes(flat))
		at := func(off int) uint64 { return hdr + uint64(off) }
		lse, lp, amax := x.logprobs(logits, vocab, n, at(lay.targets))
		tok, tokLp, topIDs, topLp := x.zeros(4*n), x.zeros(4*n), x.zeros(4*n*maxTop), x.zeros(4*n*maxTop)
		x.do(func(d *devState) error {
			// Two launches over halves of the rows, as the head's chunks do.
			for _, h := range [][2]int{{0, n / 2}, {n / 2, n}} {
				err := d.k.lmSample(d.stream, logits+uint64(4*h[0]*vocab), vocab, h[0], h[1], n, sampleArgs{
					row: at(lay.sRow), temp: at(lay.sTemp), topK: at(lay.sTopK), topP: at(lay.sTopP), u: at(lay.sU),
					nTop: at(lay.sNTop), lse: lse, amax: amax, tok: tok, tokLp: tokLp, topIDs: topIDs, topLp: topLp,
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		lseB, lpG := x.down(lse, 8*n), x.floats(lp, n)
		tokB, tokLpG, topIDB, topLpG := x.down(tok, 4*n), x.floats(tokLp, n), x.down(topIDs, 4*n*maxTop), x.floats(topLp, n*maxTop)
		for i, c := range rows {
			wantLSE := kernels.LogSumExp(c.logits)
			gotLSE := math.Float64frombits(binary.LittleEndian.Uint64(lseB[8*i:]))
			if math.Abs(gotLSE-wantLSE) > 1e-12*math.Max(1, math.Abs(wantLSE)) {
				t.Errorf("vocab %d row %d: log-sum-exp %.17g, want %.17g", vocab, i, gotLSE, wantLSE)
			}
			// l − lse: lse's last bits depend on the order of its sum, which
			// a log-probability near 0 shows (cancellation).
			lpClose := func(got, want float32) bool {
				return ulpDiff(got, want) <= 1 || math.Abs(float64(got-want)) <= 1e-12*math.Max(1, math.Abs(wantLSE))
			}
			tg := p.targets[i]
			if w := float32(float64(c.logits[tg]) - wantLSE); !lpClose(lpG[i], w) {
				t.Errorf("vocab %d row %d: log-probability of %d = %g, want %g", vocab, i, tg, lpG[i], w)
			}
			want := kernels.Sample(c.logits, c.s, c.pos)
			got := int32(binary.LittleEndian.Uint32(tokB[4*i:]))
			if got != want {
				t.Errorf("vocab %d row %d: sampled %d (logit %g), want %d (logit %g) by kernels.Sample with %+v, u = %.17g",
					vocab, i, got, c.logits[got], want, c.logits[want], c.s, kernels.SampleUniform(c.s.Seed, c.pos))
				continue
			}
			if w := float32(float64(c.logits[want]) - wantLSE); !lpClose(tokLpG[i], w) {
				t.Errorf("vocab %d row %d: sampled token's log-probability %g, want %g", vocab, i, tokLpG[i], w)
			}
			top := kernels.TopLogprobs(c.logits, wantLSE, c.s.TopLogprobs)
			for j, tl := range top {
				gid := int32(binary.LittleEndian.Uint32(topIDB[4*(i*maxTop+j):]))
				if gid != tl.Token || !lpClose(topLpG[i*maxTop+j], tl.Logprob) {
					t.Errorf("vocab %d row %d: alternative %d = (%d, %g), want (%d, %g)", vocab, i, j, gid, topLpG[i*maxTop+j], tl.Token, tl.Logprob)
				}
			}
		}
	}
}

// logprobs runs gbx_lm_logprobs_part and gbx_lm_logprobs on rows rows of
// vocab logits at logits with targets [rows], returning the device
// addresses of lse [rows] (double), lp [rows] and amax [rows].
func (x *devT) logprobs(logits uint64, vocab, rows int, targets uint64) (lse, lp, amax uint64) {
	x.t.Helper()
	part := x.zeros(logprobsPartBytes(rows, vocab))
	lse, lp, amax = x.zeros(8*rows), x.zeros(4*rows), x.zeros(4*rows)
	x.do(func(d *devState) error {
		if err := d.k.lmLogprobsPart(d.stream, logits, vocab, part, rows); err != nil {
			return err
		}
		return d.k.lmLogprobs(d.stream, part, logits, vocab, targets, lse, lp, amax, rows)
	})
	return lse, lp, amax
}

// TestLMOpLogprobsChunks checks the head's reductions over chunks of the
// vocabulary — log-sum-exp, the target's log-probability and the greedy
// token (gbx_lm_sample at temperature 0 and at top-k 1) — against
// kernels.LogSumExp and kernels.Argmax on rows whose extremes sit across
// the chunks: ties in two chunks (the lower id), a NaN in one chunk, only
// NaNs, a chunk of -inf, +inf, -0 against +0, the maximum in the last
// partial chunk; for vocabularies smaller than a chunk, of exactly one,
// and not a multiple of it. Each row's results are the same bits alone as
// in the batch.
func TestLMOpLogprobsChunks(t *testing.T) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(5, 6))
	const chunk = logprobsChunk
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, vocab := range []int{100, chunk, 3*chunk + 5, 128256} {
		// at is an id in chunk c (clamped to the row), offset o into it.
		at := func(c, o int) int { return min(c*chunk+o, vocab-1-(c%2)) }
		type rowCase struct {
			name string
			edit func(l []float32)
		}
		cases := []rowCase{
			{"random", func([]float32) {}},
			{"random, larger", func(l []float32) {
				for i := range l {
					l[i] *= 4
				}
			}},
			{"tie in two chunks", func(l []float32) { l[at(2, 3)], l[at(1, 7)] = 7, 7 }},
			{"tie in the first and last chunks", func(l []float32) { l[vocab-1], l[vocab-2], l[at(1, 9)] = 8, 8, 8 }},
			{"NaN in one chunk", func(l []float32) { l[at(1, 1)], l[at(2, 5)] = nan, 6 }},
			{"NaNs first, max last", func(l []float32) { l[0], l[1], l[at(1, 2)], l[vocab-1] = nan, nan, nan, 9 }},
			{"only NaNs", func(l []float32) {
				for i := range l {
					l[i] = nan
				}
			}},
			{"a chunk of -inf", func(l []float32) {
				for i := at(1, 0); i < min(at(1, 0)+chunk, vocab-1); i++ {
					l[i] = -inf
				}
			}},
			{"only -inf", func(l []float32) {
				for i := range l {
					l[i] = -inf
				}
			}},
			{"+inf", func(l []float32) { l[at(2, 11)] = inf }},
			{"-0 before +0", func(l []float32) {
				for i := range l {
					l[i] = -1 - float32(math.Abs(float64(l[i])))
				}
				l[at(1, 4)], l[at(2, 4)] = float32(math.Copysign(0, -1)), 0
			}},
		}
		n := len(cases)
		rows := make([][]float32, n)
		var flat []float32
		targets := make([]int32, n)
		for i, c := range cases {
			rows[i] = randFloats(r, vocab, 1)
			c.edit(rows[i])
			flat = append(flat, rows[i]...)
			targets[i] = int32(r.IntN(vocab))
		}
		logits, tg := x.up(f32Bytes(flat)), x.up(i32Bytes(targets))
		lse, lp, amax := x.logprobs(logits, vocab, n, tg)
		// Greedy sampling from amax: temperature 0 on even rows, top-k 1 on odd.
		p := &lmPlan{}
		for i := range n {
			p.sRow = append(p.sRow, int32(i))
			p.sTemp = append(p.sTemp, float32(i%2))
			p.sTopK = append(p.sTopK, int32(i%2))
			p.sTopP, p.sU, p.sNTop = append(p.sTopP, 0.9), append(p.sU, 0.5), append(p.sNTop, 0)
		}
		packed, lay := p.pack()
		hdr := x.up(packed)
		tok, tokLp, topIDs, topLp := x.zeros(4*n), x.zeros(4*n), x.zeros(4*n*maxTop), x.zeros(4*n*maxTop)
		x.do(func(d *devState) error {
			h := func(off int) uint64 { return hdr + uint64(off) }
			return d.k.lmSample(d.stream, logits, vocab, 0, n, n, sampleArgs{
				row: h(lay.sRow), temp: h(lay.sTemp), topK: h(lay.sTopK), topP: h(lay.sTopP), u: h(lay.sU), nTop: h(lay.sNTop),
				lse: lse, amax: amax, tok: tok, tokLp: tokLp, topIDs: topIDs, topLp: topLp,
			})
		})
		lseB, lpG, amaxB, tokB, tokLpG := x.down(lse, 8*n), x.floats(lp, n), x.down(amax, 4*n), x.down(tok, 4*n), x.floats(tokLp, n)
		for i, c := range cases {
			name := fmt.Sprintf("vocab %d, %s", vocab, c.name)
			l := rows[i]
			wantLSE := kernels.LogSumExp(l)
			gotLSE := math.Float64frombits(binary.LittleEndian.Uint64(lseB[8*i:]))
			if !(gotLSE == wantLSE || math.IsNaN(gotLSE) && math.IsNaN(wantLSE) || math.Abs(gotLSE-wantLSE) <= 1e-12*math.Max(1, math.Abs(wantLSE))) {
				t.Errorf("%s: log-sum-exp %.17g, want %.17g", name, gotLSE, wantLSE)
			}
			lpClose := func(got, want float32) bool {
				return ulpDiff(got, want) <= 1 || math.Abs(float64(got-want)) <= 1e-12*math.Max(1, math.Abs(wantLSE))
			}
			if w := float32(float64(l[targets[i]]) - wantLSE); !lpClose(lpG[i], w) {
				t.Errorf("%s: log-probability of %d = %g, want %g", name, targets[i], lpG[i], w)
			}
			want := kernels.Argmax(l)
			if got := int32(binary.LittleEndian.Uint32(amaxB[4*i:])); got != want {
				t.Errorf("%s: argmax %d, want %d (logit %g)", name, got, want, l[want])
			}
			if got := int32(binary.LittleEndian.Uint32(tokB[4*i:])); got != want {
				t.Errorf("%s: greedy token %d, want %d", name, got, want)
			}
			if w := float32(float64(l[want]) - wantLSE); !lpClose(tokLpG[i], w) {
				t.Errorf("%s: greedy token's log-probability %g, want %g", name, tokLpG[i], w)
			}
			// The row alone: the same bits.
			lse1, lp1, amax1 := x.logprobs(logits+uint64(4*i*vocab), vocab, 1, tg+uint64(4*i))
			if g, w := x.down(lse1, 8), lseB[8*i:8*i+8]; !slices.Equal(g, w) {
				t.Errorf("%s: log-sum-exp alone %x, in a batch of %d %x", name, g, n, w)
			}
			if g, w := x.floats(lp1, 1)[0], lpG[i]; math.Float32bits(g) != math.Float32bits(w) {
				t.Errorf("%s: log-probability alone %g, in a batch of %d %g", name, g, n, w)
			}
			if g, w := x.down(amax1, 4), amaxB[4*i:4*i+4]; !slices.Equal(g, w) {
				t.Errorf("%s: argmax alone %x, in a batch of %d %x", name, g, n, w)
			}
		}
	}
}

// TestLMOpGEMV checks gbx_gemv against float64 for bf16, fp16 and fp8
// operands (fp8 with per-row and per-channel scales), every batch of 1 to
// 8 rows, with and without bias — and that a row's result is the same bits
// in every batch (the kernel's sums do not depend on the other rows).
func TestLMOpGEMV(t *testing.T) {
	x := newDevT(t)
	x.do(func(d *devState) error { return d.k.load(modGEMV) })
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		f    fmtCode
		n, k int
		bias bool
	}{
		{fmtBF16, 48, 96, true},    // 3 steps: most warps idle
		{fmtBF16, 32, 4096, false}, // 128 steps, the unrolled loop and the tail
		{fmtF16, 16, 352, true},
		{fmtE4M3, 64, 640, true},
		{fmtE4M3, 16, 4160, false},
	} {
		name := fmt.Sprintf("fmt %d n %d k %d bias %v", tc.f, tc.n, tc.k, tc.bias)
		const maxM = gemvMaxM
		xv, wv := randFloats(r, maxM*tc.k, 1), randFloats(r, tc.n*tc.k, 1)
		var xb, wb []byte
		enc := func(v []float32) []byte {
			var b []byte
			for i, f := range v {
				switch tc.f {
				case fmtBF16:
					v[i] = precision.RoundBF16(f)
					b = binary.LittleEndian.AppendUint16(b, precision.EncodeBF16(f))
				case fmtF16:
					v[i] = precision.RoundFP16(f)
					b = binary.LittleEndian.AppendUint16(b, precision.EncodeFP16(f))
				default:
					c := precision.EncodeE4M3(f * 200)
					v[i] = precision.DecodeE4M3(c)
					b = append(b, c)
				}
			}
			return b
		}
		xb, wb = enc(xv), enc(wv)
		var xs, ws, bias []float32
		var xsp, wsp, bp uint64
		if tc.f == fmtE4M3 {
			xs, ws = randFloats(r, maxM, 0.01), randFloats(r, tc.n, 0.01)
			xsp, wsp = x.up(f32Bytes(xs)), x.up(f32Bytes(ws))
		}
		if tc.bias {
			bias = randFloats(r, tc.n, 1)
			bp = x.up(f32Bytes(bias))
		}
		xp, wp := x.up(xb), x.up(wb)
		kb := len(wb) / tc.n
		var full []float32 // the batch of maxM rows
		for m := maxM; m >= 1; m-- {
			y := x.zeros(4 * m * tc.n)
			x.do(func(d *devState) error { return d.k.gemv(d.stream, xp, wp, tc.f, xsp, wsp, bp, y, m, tc.n, kb) })
			got := x.floats(y, m*tc.n)
			if m == maxM {
				full = got
			}
			for ri := range m {
				for c := range tc.n {
					var s, mag float64
					for i := range tc.k {
						p := float64(xv[ri*tc.k+i]) * float64(wv[c*tc.k+i])
						s, mag = s+p, mag+math.Abs(p)
					}
					if xs != nil {
						s, mag = s*float64(xs[ri])*float64(ws[c]), mag*math.Abs(float64(xs[ri])*float64(ws[c]))
					}
					if bias != nil {
						s, mag = s+float64(bias[c]), mag+math.Abs(float64(bias[c]))
					}
					// fp32 accumulation of exact products: a few ulps of Σ|p|.
					g := got[ri*tc.n+c]
					if d := math.Abs(float64(g) - s); !(d <= 1e-5*mag) {
						t.Fatalf("%s: m %d row %d channel %d: %g, want %g (Σ|p| %g)", name, m, ri, c, g, s, mag)
					}
					if g != full[ri*tc.n+c] {
						t.Fatalf("%s: row %d channel %d: %g in a batch of %d rows, %g in one of %d", name, ri, c, g, m, full[ri*tc.n+c], maxM)
					}
				}
			}
		}
	}
}

// TestLMOpEpilogueOnLoad: a linear layer's epilogue (fp8's row and column
// scales, fp4's column scales, a bias) applied by the kernel that reads the
// layer's output — the norm's delta, RoPE's q/k/v heads, SiLU·up's gate
// and up — gives bit for bit what a gbx_scale_bias pass before that kernel
// gives, also where the row scales it reads are the ones it then
// overwrites (the norm's and SiLU's fp8 operand scales), as in a decode
// step.
func TestLMOpEpilogueOnLoad(t *testing.T) {
	x := newDevT(t)
	r := rand.New(rand.NewPCG(11, 12))
	positive := func(n int) []float32 { return positiveFloats(r, n, 0.5, 0.01) }
	ptr := func(on bool, v []float32) uint64 {
		if !on {
			return 0
		}
		return x.up(f32Bytes(v))
	}
	same := func(what string, a, b []byte) {
		t.Helper()
		if i := slices.Compare(a, b); i != 0 {
			for j := range a {
				if a[j] != b[j] {
					t.Fatalf("%s: byte %d differs (%#x after a gbx_scale_bias pass, %#x applied on load)", what, j, a[j], b[j])
				}
			}
		}
	}
	for _, ep := range []struct {
		name         string
		xs, ws, bias bool
	}{{"fp8", true, true, false}, {"fp8 and bias", true, true, true}, {"fp4", false, true, true}, {"bias", false, false, true}} {
		// The norm reads the delta of the layer before (the o or down
		// projection), rows one by one.
		{
			const rows, cols = 3, 300
			xv, dv, wv := randFloats(r, rows*cols, 2), randFloats(r, rows*cols, 1), positive(cols)
			xsv, wsv, bv := positive(rows), positive(cols), randFloats(r, cols, 0.1)
			wp, wsp, bp := x.up(f32Bytes(wv)), ptr(ep.ws, wsv), ptr(ep.bias, bv)
			run := func(onLoad bool) [][]byte {
				xp, dp, xs := x.up(f32Bytes(xv)), x.up(f32Bytes(dv)), x.up(f32Bytes(xsv))
				yf, yq := x.zeros(4*rows*cols), x.zeros(rows*cols)
				de := lmEpi{ws: wsp, bias: bp}
				if ep.xs {
					de.xs = xs
				}
				x.do(func(d *devState) error {
					if !onLoad {
						if err := d.k.scaleBias(d.stream, dp, de.xs, de.ws, de.bias, rows, cols, actNone); err != nil {
							return err
						}
						de = lmEpi{}
					}
					return d.k.lmNorm(d.stream, xp, dp, de, wp, 0, yf, yq, fmtE4M3, xs, rows, cols, 1e-6, 1)
				})
				return [][]byte{x.down(xp, 4*rows*cols), x.down(yf, 4*rows*cols), x.down(yq, rows*cols), x.down(xs, 4*rows)}
			}
			a, b := run(false), run(true)
			for i, what := range []string{"residual", "norm", "fp8 operand", "operand scales"} {
				same(fmt.Sprintf("lmNorm, %s epilogue: %s", ep.name, what), a[i], b[i])
			}
		}
		// RoPE reads the q/k/v projection; the K and V go to the cache
		// (heads of 32: the general loops; of 64: in registers).
		for _, dim := range []int{32, 64} {
			const heads, kvHeads, layers, blocks = 4, 2, 2, 4
			width := (heads + 2*kvHeads) * dim
			pos, seq := []int32{0, 5, 33}, []int32{0, 1, 1}
			tables := []int32{2, 0, 3} // sequence 0: block 2; sequence 1: blocks 0, 3
			rows := len(pos)
			qkv := randFloats(r, rows*width, 1.5)
			xsv, wsv, bv := positive(rows), positive(width), randFloats(r, width, 0.1)
			wsp, bp := ptr(ep.ws, wsv), ptr(ep.bias, bv)
			inv := (&lm.Config{HeadDim: dim, RopeTheta: 10000}).InvFreq32()
			common := ropeArgs{
				stride: width, eps: 1e-6, invFreq: x.up(f32Bytes(inv)), pos: x.up(i32Bytes(pos)), seq: x.up(i32Bytes(seq)),
				btOff: x.up(i32Bytes([]int32{0, 1})), blocks: x.up(i32Bytes(tables)), cacheFmt: fmtE4M3, layer: 1,
				layers: layers, heads: heads, kvHeads: kvHeads, dim: dim,
			}
			cacheN := blocks * layers * 2 * kvHeads * kvBlock * dim
			run := func(onLoad bool) [][]byte {
				ra := common
				ra.qkv, ra.cache, ra.kvScale = x.up(f32Bytes(qkv)), x.zeros(cacheN), x.zeros(4*cacheN/dim)
				e := lmEpi{xs: ptr(ep.xs, xsv), ws: wsp, bias: bp}
				x.do(func(d *devState) error {
					if !onLoad {
						if err := d.k.scaleBias(d.stream, ra.qkv, e.xs, e.ws, e.bias, rows, width, actNone); err != nil {
							return err
						}
						e = lmEpi{}
					}
					ra.epi = e
					return d.k.lmRope(d.stream, rows, ra)
				})
				return [][]byte{x.down(ra.qkv, 4*rows*width), x.down(ra.cache, cacheN), x.down(ra.kvScale, 4*cacheN/dim)}
			}
			a, b := run(false), run(true)
			for i, what := range []string{"q/k/v", "cache", "cache scales"} {
				same(fmt.Sprintf("lmRope (dim %d), %s epilogue: %s", dim, ep.name, what), a[i], b[i])
			}
		}
		// SiLU·up reads the gate/up projection: one block a row, and a
		// row split over blocks (its fp8 operand by gbx_lm_quant_cols).
		for _, inter := range []int{160, 3000} {
			const rows = 2
			gu := randFloats(r, rows*2*inter, 2)
			xsv, wsv, bv := positive(rows), positive(2*inter), randFloats(r, 2*inter, 0.1)
			wsp, bp := ptr(ep.ws, wsv), ptr(ep.bias, bv)
			run := func(onLoad bool) [][]byte {
				gp, xs := x.up(f32Bytes(gu)), x.up(f32Bytes(xsv))
				act, yq, amax := x.zeros(4*rows*inter), x.zeros(rows*inter), x.zeros(lmSiLUAmaxBytes)
				e := lmEpi{ws: wsp, bias: bp}
				if ep.xs {
					e.xs = xs
				}
				x.do(func(d *devState) error {
					if !onLoad {
						if err := d.k.scaleBias(d.stream, gp, e.xs, e.ws, e.bias, rows, 2*inter, actNone); err != nil {
							return err
						}
						e = lmEpi{}
					}
					return d.k.lmSiLURows(d.stream, gp, e, act, yq, fmtE4M3, xs, amax, rows, inter, 0)
				})
				return [][]byte{x.down(act, 4*rows*inter), x.down(yq, rows*inter), x.down(xs, 4*rows)}
			}
			a, b := run(false), run(true)
			for i, what := range []string{"SiLU·up", "fp8 operand", "operand scales"} {
				same(fmt.Sprintf("lmSiLURows %d×%d (%d blocks a row), %s epilogue: %s", rows, inter, siluSplit(rows, inter), ep.name, what), a[i], b[i])
			}
		}
	}
}
