//go:build cgo

package cuda

/*
#include "src/abi.h"
*/
import "C"

import "github.com/gearbox-inference/gearbox/model"

// The typed launch methods: one per kernel of src/, grouped by source file.
// Each holds its kernel's launch geometry and argument order, and is the
// only code that launches that kernel. Arguments come in the order of the
// kernel's C parameters (after the stream, with the launch's extent where
// the kernel takes none); device addresses are uint64.

// activation is an activation code of the kernels (enum gbx_act_code).
type activation int32

const (
	actNone activation = C.GBX_ACT_NONE
	actReLU activation = C.GBX_ACT_RELU
	actGELU activation = C.GBX_ACT_GELU
	actSiLU activation = C.GBX_ACT_SILU
	actTanh activation = C.GBX_ACT_TANH
)

// activationOf is the code of an element-wise activation op, and whether op
// is one.
func activationOf(op model.Op) (activation, bool) {
	switch op {
	case model.ReLU:
		return actReLU, true
	case model.GELU:
		return actGELU, true
	case model.SiLU:
		return actSiLU, true
	case model.Tanh:
		return actTanh, true
	}
	return actNone, false
}

// ---- convert.cu ----

var (
	kToBF16 = defKernel(modOps, "gbx_to_bf16", 0)
	kToFP16 = defKernel(modOps, "gbx_to_fp16", 0)
	kToTF32 = defKernel(modOps, "gbx_to_tf32", 0)
)

// toBF16 writes the bf16 bits of x[0..n) to y, rounded to nearest even.
func (k *kernelSet) toBF16(s cuStream, x, y uint64, n int) error {
	return k.run(s, k.gridStride(kToBF16, n/4, newArgs().ptr(x).ptr(y).i64(n)))
}

// toFP16 writes the fp16 bits of x[0..n) to y, rounded to nearest even.
func (k *kernelSet) toFP16(s cuStream, x, y uint64, n int) error {
	return k.run(s, k.gridStride(kToFP16, n/4, newArgs().ptr(x).ptr(y).i64(n)))
}

// toTF32 writes x[0..n) rounded to tf32 (precision.RoundTF32) to y.
func (k *kernelSet) toTF32(s cuStream, x, y uint64, n int) error {
	return k.run(s, k.gridStride(kToTF32, n/4, newArgs().ptr(x).ptr(y).i64(n)))
}

// ---- fp8.cu ----

var (
	kQuantRows     = defKernel(modOps, "gbx_quant_rows", 0)
	kQuantRowsS    = defKernel(modOps, "gbx_quant_rows_small", 0)
	kAmax          = defKernel(modOps, "gbx_amax", 0)
	kFP8Quant      = defKernel(modOps, "gbx_fp8_quant", 0)
	kFP8QuantSmall = defKernel(modOps, "gbx_fp8_quant_small", 0)
)

// quantRows writes each of rows rows of x [rows, cols] to yq in format f
// (fp8: one scale per row, FP8Scale(amax of the row, margin), in xs).
func (k *kernelSet) quantRows(s cuStream, x, yq uint64, f fmtCode, xs uint64, rows, cols, margin int) error {
	return k.run(s, k.perRowLM(k.smallRows(rows, kQuantRows, kQuantRowsS), rows, newArgs().ptr(x).ptr(yq).i32(int(f)).ptr(xs).i32(cols).i32(margin)))
}

// fp8SmallQuant is the largest activation (values) the per-tensor path
// (benchmarks) quantizes by one block in one launch (fp8QuantSmall) instead
// of a memset, an amax and a quantize launch (measured on an H100: one
// block takes 27 µs for 65536 values, the three launches 8 µs).
const fp8SmallQuant = C.GBX_FP8_SMALL_MAX

// amax raises *out (float bits, zeroed by the caller) to max |x[0..n)|.
func (k *kernelSet) amax(s cuStream, x uint64, n int, out uint64) error {
	return k.run(s, k.gridStride(kAmax, n/4, newArgs().ptr(x).i64(n).ptr(out)))
}

// fp8Quant writes E4M3(x[i] / s) to q for n values, s = FP8Scale(*amax,
// margin), and s to *scale and to scaleVec[0..nvec).
func (k *kernelSet) fp8Quant(s cuStream, x, q uint64, n int, amax uint64, margin int, scale, scaleVec uint64, nvec int) error {
	a := newArgs().ptr(x).ptr(q).i64(n).ptr(amax).i32(margin).ptr(scale).ptr(scaleVec).i32(nvec)
	return k.run(s, k.gridStride(kFP8Quant, max(n/4, nvec), a))
}

// fp8QuantSmall is amax and fp8Quant in one block, for n <= fp8SmallQuant.
func (k *kernelSet) fp8QuantSmall(s cuStream, x, q uint64, n, margin int, scale, scaleVec uint64, nvec int) error {
	a := newArgs().ptr(x).ptr(q).i64(n).i32(margin).ptr(scale).ptr(scaleVec).i32(nvec)
	return k.run(s, launch{kernel: kFP8QuantSmall, grid: [3]uint32{1, 1, 1}, block: [3]uint32{C.GBX_FP8_SMALL_THREADS, 1, 1}, args: a})
}

// ---- epilogue.cu ----

var kScaleBias = defKernel(modOps, "gbx_scale_bias", 0)

// scaleBias computes y = (y·xscale[r])·wscale[c] + bias[c], then act
// (actNone or actReLU), over rows × cols values; xscale (per row), wscale
// (per column) and bias may be 0.
func (k *kernelSet) scaleBias(s cuStream, y, xscale, wscale, bias uint64, rows, cols int, act activation) error {
	a := newArgs().ptr(y).ptr(xscale).ptr(wscale).ptr(bias).i64(rows).i32(cols).i32(int(act))
	return k.run(s, k.gridStride(kScaleBias, rows*cols, a))
}

// ---- act.cu ----

var kAct = defKernel(modOps, "gbx_act", 0)

// act writes op(x[i]) to y for n values (x and y may be the same).
func (k *kernelSet) act(s cuStream, x, y uint64, n int, op activation) error {
	return k.run(s, k.gridStride(kAct, n, newArgs().ptr(x).ptr(y).i64(n).i32(int(op))))
}

// ---- softmax.cu ----

var kSoftmax = defKernel(modOps, "gbx_softmax", 0)

// softmax writes the softmax of each of rows rows of cols values of x to y.
func (k *kernelSet) softmax(s cuStream, x, y uint64, rows, cols int) error {
	return k.run(s, perRow(kSoftmax, rows, newArgs().ptr(x).ptr(y).i32(cols)))
}

// ---- norm.cu ----

var (
	kLayerNorm = defKernel(modOps, "gbx_layernorm", 0)
	kRMSNorm   = defKernel(modOps, "gbx_rmsnorm", 0)
)

// layerNorm writes the layernorm of each of rows rows of cols values of x
// to y, with weight w and bias b (either may be 0).
func (k *kernelSet) layerNorm(s cuStream, x, y uint64, rows, cols int, w, b uint64, eps float64) error {
	return k.run(s, perRow(kLayerNorm, rows, newArgs().ptr(x).ptr(y).i32(cols).ptr(w).ptr(b).f64(eps)))
}

// rmsNorm writes the rmsnorm of each of rows rows of cols values of x to y,
// with weight w (may be 0).
func (k *kernelSet) rmsNorm(s cuStream, x, y uint64, rows, cols int, w uint64, eps float64) error {
	return k.run(s, perRow(kRMSNorm, rows, newArgs().ptr(x).ptr(y).i32(cols).ptr(w).f64(eps)))
}

// ---- bench.cu ----

var (
	kRand = defKernel(modOps, "gbx_rand", 0)
	kSpin = defKernel(modOps, "gbx_spin", 0)
)

// rand fills x[0..n) with hashed uniform values in (−scale, scale), never 0.
func (k *kernelSet) rand(s cuStream, x uint64, n int, seed uint32, scale float32) error {
	return k.run(s, k.gridStride(kRand, n, newArgs().ptr(x).i64(n).u32(seed).f32(scale)))
}

// spin keeps the GPU busy for ns nanoseconds (one thread).
func (k *kernelSet) spin(s cuStream, ns int) error {
	return k.run(s, launch{kernel: kSpin, grid: [3]uint32{1, 1, 1}, block: [3]uint32{1, 1, 1}, args: newArgs().i64(ns)})
}

// ---- fp4_linear.cu ----

var (
	kNVFP4Gemm      = defKernel(modFP4, "gbx_nvfp4_gemm", C.GBX_FP4_SMEM_BYTES).streamed()
	kNVFP4GemmTiled = defKernel(modFP4, "gbx_nvfp4_gemm_tiled", C.GBX_FP4_SMEM_BYTES).streamed()
	kNVFP4GemmWide  = defKernel(modFP4, "gbx_nvfp4_gemm_wide", C.GBX_FP4W_SMEM_BYTES).streamed()
	kNVFP4WideSum   = defKernel(modFP4, "gbx_nvfp4_wide_sum", 0)
)

// The NVFP4 kernel's output channels and batch rows a CTA.
const fp4Rows, fp4MTile = C.GBX_FP4_ROWS, C.GBX_FP4_MTILE

// nvfp4Gemm computes y[m, n] = x[m, kdim]·W[n, kdim]ᵀ + bias for NVFP4
// weights W (packed E2M1 w, E4M3 block scales ws: row-major, rows padded
// to kdim rounded up to 16, or tiled (tileNVFP4); tensor scale ts, or one
// a channel in tsv) and bf16 x; tsv and bias may be 0.
func (k *kernelSet) nvfp4Gemm(s cuStream, x, w, ws uint64, ts float32, tsv, bias, y uint64, m, n, kdim int, tiled bool) error {
	kd := kNVFP4Gemm
	if tiled {
		kd = kNVFP4GemmTiled
	}
	a := newArgs().ptr(x).ptr(w).ptr(ws).f32(ts).ptr(tsv).ptr(bias).ptr(y).i32(m).i32(n).i32(kdim).i32((kdim + 15) / 16 * 16)
	grid := [3]uint32{uint32((n + fp4Rows - 1) / fp4Rows), uint32((m + fp4MTile - 1) / fp4MTile), 1}
	return k.run(s, launch{kernel: kd, grid: grid, block: [3]uint32{C.GBX_FP4_THREADS, 1, 1}, smem: C.GBX_FP4_SMEM_BYTES, args: a})
}

// The wide NVFP4 kernel's output channels and batch rows a CTA.
const fp4WideRows, fp4WideMTile = C.GBX_FP4W_ROWS, C.GBX_FP4W_MTILE

// fp4WideSplits is how many CTAs gbx_nvfp4_gemm_wide splits K of an m × n
// × kdim product over: enough for about two CTAs an SM (1 when the
// channels and batch tiles give that already), at most 8 and one chunk
// of 128 columns each, and partial sums (splits × m × n floats) within
// scratch bytes.
func (k *kernelSet) fp4WideSplits(m, n, kdim, scratch int) int {
	ctas := (n + fp4WideRows - 1) / fp4WideRows * ((m + fp4WideMTile - 1) / fp4WideMTile)
	z := min((2*k.sms+ctas/2)/ctas, 8, kdim/128)
	for z > 1 && z*m*n*4 > scratch {
		z--
	}
	return max(z, 1)
}

// nvfp4GemmWide computes y = x·Wᵀ + bias as nvfp4Gemm does, on the wide
// kernel (tiled weights only; kdim % 128 == 0, n % 16 == 0): with z > 1
// splits of K it writes their sums to part [z, m, n] and nvfp4WideSum
// must follow.
func (k *kernelSet) nvfp4GemmWide(s cuStream, x, w, ws uint64, ts float32, tsv, bias, y, part uint64, m, n, kdim, z int) error {
	a := newArgs().ptr(x).ptr(w).ptr(ws).f32(ts).ptr(tsv).ptr(bias).ptr(y).ptr(part).i32(m).i32(n).i32(kdim)
	grid := [3]uint32{uint32((m + fp4WideMTile - 1) / fp4WideMTile), uint32((n + fp4WideRows - 1) / fp4WideRows), uint32(z)}
	return k.run(s, launch{kernel: kNVFP4GemmWide, grid: grid, block: [3]uint32{C.GBX_FP4W_THREADS, 1, 1}, smem: C.GBX_FP4W_SMEM_BYTES, args: a})
}

// nvfp4WideSum writes y [m, n] = (the z partial sums of part, in order) ×
// the tensor scale (ts, or tsv[n]) + bias after nvfp4GemmWide.
func (k *kernelSet) nvfp4WideSum(s cuStream, part uint64, ts float32, tsv, bias, y uint64, m, n, z int) error {
	return k.run(s, k.gridStride(kNVFP4WideSum, m*n, newArgs().ptr(part).f32(ts).ptr(tsv).ptr(bias).ptr(y).i64(m*n).i32(n).i32(z)))
}
