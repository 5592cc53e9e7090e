//go:build cgo

package cuda

/*
#include "src/abi.h"
*/
import "C"

import (
	"cmp"
	"errors"
	"fmt"
)

// The typed launches of the language-model kernels (module lm, and the
// per-channel NVFP4 entry point of fp4_linear.cu), grouped by source file as
// in kernels.go: each holds its kernel's geometry and argument order.

// fmtCode is a storage format of the language-model kernels (enum gbx_fmt).
type fmtCode int32

const (
	fmtF32     fmtCode = C.GBX_FMT_F32
	fmtTF32    fmtCode = C.GBX_FMT_TF32
	fmtBF16    fmtCode = C.GBX_FMT_BF16
	fmtF16     fmtCode = C.GBX_FMT_F16
	fmtE4M3    fmtCode = C.GBX_FMT_E4M3
	fmtE4M3F32 fmtCode = C.GBX_FMT_E4M3_F32
	fmtU8      fmtCode = C.GBX_FMT_U8
)

// ---- lm.cu ----

var (
	kLMConvert   = defKernel(modLM, "gbx_lm_convert", 0)
	kLMFill      = defKernel(modLM, "gbx_lm_fill", 0)
	kLMEmbed     = defKernel(modLM, "gbx_lm_embed", 0)
	kLMNorm      = defKernel(modLM, "gbx_lm_norm", 0)
	kLMNormS     = defKernel(modLM, "gbx_lm_norm_small", 0)
	kLMRope      = defKernel(modLM, "gbx_lm_rope", 0)
	kLMRopeS     = defKernel(modLM, "gbx_lm_rope_small", 0)
	kLMSiLURows  = defKernel(modLM, "gbx_lm_silu_rows", 0)
	kLMSiLURowsS = defKernel(modLM, "gbx_lm_silu_rows_small", 0)
	kLMQuantCols = defKernel(modLM, "gbx_lm_quant_cols", 0)
	kLMQuantColS = defKernel(modLM, "gbx_lm_quant_cols_small", 0)
	kLMSiLURow   = defKernel(modLM, "gbx_lm_silu_row", 4*siluRowMaxCols)
)

// lmThreads is the block of the per-row language-model kernels.
const lmThreads = C.GBX_LM_THREADS

// perRowLM is a launch of one GBX_LM_THREADS block per row.
//
// A step of up to lmWideRows rows (decode below full load) has at most two
// such blocks an SM: each then gets 1,024 threads, so that a row's passes
// take a quarter of the serial iterations (the per-row kernels reduce over
// any block of whole warps up to 1,024 threads; the norm's sum, in an order
// that does not depend on the block's size, blockSumLanes, over blocks of
// 256, 512 or 1,024, which GBX_LM_THREADS must therefore be). Up to 32 rows
// only, at first; from 33 to 256 rows, ncu on the H200 had the
// residual-and-norm kernel at 19 µs a call for 64 rows of 4,096, its 16
// passes' loads each waiting on the one before.
func (k *kernelSet) perRowLM(kd *kernel, rows int, a *args) launch {
	threads := uint32(lmThreads)
	if rows <= lmWideRows {
		threads = 1024
		if k.rowThreads > 0 && rows > cmp.Or(k.regsRows, regsMaxRows) {
			threads = uint32(k.rowThreads)
		}
	}
	return launch{kernel: kd, grid: [3]uint32{uint32(rows), 1, 1}, block: [3]uint32{threads, 1, 1}, args: a}
}

// lmWideRows is the most rows for which perRowLM widens its blocks and
// lmRope spreads a row's heads over blocks: 2 × the H200's 132 SMs, less
// a few.
const lmWideRows = 256

// regsMaxRows is the most rows of a step whose row kernels run as their
// _small kernels, a thread's elements in registers or loaded before any
// store (abi.h GBX_REGS_MAX_ROWS).
const regsMaxRows = C.GBX_REGS_MAX_ROWS

// smallRows picks a row kernel's _small form for a step of rows rows.
func (k *kernelSet) smallRows(rows int, kd, small *kernel) *kernel {
	if rows <= cmp.Or(k.regsRows, regsMaxRows) {
		return small
	}
	return kd
}

// lmFewRows is the most rows of a step whose split blocks' scratch
// (lmSiLUAmaxBytes) is sized for 64 blocks a row.
const lmFewRows = 32

// lmConvert writes n values of src (stored as srcFmt: f32, bf16 or f16) to
// dst as dstFmt (f32, tf32, bf16 or f16), rounded.
func (k *kernelSet) lmConvert(s cuStream, src uint64, srcFmt fmtCode, dst uint64, dstFmt fmtCode, n int) error {
	return k.run(s, k.gridStride(kLMConvert, n, newArgs().ptr(src).i32(int(srcFmt)).ptr(dst).i32(int(dstFmt)).i64(n)))
}

// lmFill writes n random values uniform in [lo, hi) to dst as fmt (benchmarks).
func (k *kernelSet) lmFill(s cuStream, dst uint64, f fmtCode, n int, seed uint32, lo, hi float32) error {
	return k.run(s, k.gridStride(kLMFill, n, newArgs().ptr(dst).i32(int(f)).i64(n).u32(seed).f32(lo).f32(hi)))
}

// lmEmbed writes row r of x [rows, hidden] from row tokens[r] of table,
// stored as f.
func (k *kernelSet) lmEmbed(s cuStream, table uint64, f fmtCode, tokens, x uint64, rows, hidden int) error {
	return k.run(s, k.perRowLM(kLMEmbed, rows, newArgs().ptr(table).i32(int(f)).ptr(tokens).ptr(x).i32(hidden)))
}

// lmEpi is a linear layer's epilogue left to the kernel that reads its
// output (gbx_epi in src/lm.cuh): y·xs[row]·ws[col] + bias[col], each
// address 0 where the layer has none.
type lmEpi struct{ xs, ws, bias uint64 }

// lmNorm runs, for each of rows rows b, row r = rowIdx[b] (rowIdx 0: r = b)
// of x [*, cols]: x[r] += delta[r] with delta's epilogue de applied
// (delta may be 0), yf[b] = RMSNorm(x[r])·w, and yq[b] = yf[b] in format f
// (fp8: scale in xs[b]). de.xs may be xs only with rowIdx 0.
func (k *kernelSet) lmNorm(s cuStream, x, delta uint64, de lmEpi, w, rowIdx, yf, yq uint64, f fmtCode, xs uint64, rows, cols int, eps float64, margin int) error {
	if rowIdx != 0 && de.xs != 0 && de.xs == xs {
		return errors.New("cuda: gbx_lm_norm: with a row index, the delta's row scales cannot be the ones it writes")
	}
	a := newArgs().ptr(x).ptr(delta).ptr(de.xs).ptr(de.ws).ptr(de.bias).ptr(w).ptr(rowIdx).ptr(yf).ptr(yq).i32(int(f)).ptr(xs).i32(cols).f64(eps).i32(margin)
	return k.run(s, k.perRowLM(k.smallRows(rows, kLMNorm, kLMNormS), rows, a))
}

// ropeArgs are gbx_lm_rope's arguments other than the rows.
type ropeArgs struct {
	qkv            uint64 // [rows, stride]
	stride         int
	epi            lmEpi  // the q/k/v projection's epilogue, applied first
	qNorm, kNorm   uint64 // [dim] or 0
	eps            float64
	invFreq        uint64 // [dim/2]
	pos, seq       uint64 // [rows]
	btOff, blocks  uint64
	cache          uint64
	cacheFmt       fmtCode // fmtF32, fmtBF16 or fmtE4M3
	kvScale        uint64  // fmtE4M3: the cache's scales (abi.h)
	layer, layers  int
	heads, kvHeads int
	dim            int
}

// lmRope applies the q/k norms and RoPE to rows rows of qkv and stores their
// K and V in the cache.
func (k *kernelSet) lmRope(s cuStream, rows int, r ropeArgs) error {
	a := newArgs().ptr(r.qkv).i32(r.stride).ptr(r.epi.xs).ptr(r.epi.ws).ptr(r.epi.bias).ptr(r.qNorm).ptr(r.kNorm).f64(r.eps).ptr(r.invFreq).ptr(r.pos).ptr(r.seq).
		ptr(r.btOff).ptr(r.blocks).ptr(r.cache).i32(int(r.cacheFmt)).ptr(r.kvScale).i32(r.layer).i32(r.layers).i32(r.heads).i32(r.kvHeads).i32(r.dim)
	l := k.perRowLM(k.smallRows(rows, kLMRope, kLMRopeS), rows, a)
	if rows <= lmWideRows {
		// Not a full load: a row's heads over several blocks of lmThreads,
		// a warp a head.
		l.block[0] = lmThreads
		l.grid[1] = uint32((r.heads + 2*r.kvHeads + lmThreads/32 - 1) / (lmThreads / 32))
	}
	return k.run(s, l)
}

// lmSiLURows writes act [rows, inter] = SiLU(gate)·up from gu [rows,
// 2·inter], with gu's epilogue e applied on load, and, in format f, the down
// projection's operand yq (fp8: scales in xs).
//
// A step of siluRowMinRows rows or more (rows of a multiple of 4 columns,
// at most siluRowMaxCols; gu, e.ws and e.bias 16-byte aligned) runs
// gbx_lm_silu_row, which writes only yq: act is then not written unless f
// is f32 (yq is act).
func (k *kernelSet) lmSiLURows(s cuStream, gu uint64, e lmEpi, act, yq uint64, f fmtCode, xs, amax uint64, rows, inter, margin int) error {
	aligned := (gu|e.ws|e.bias)%16 == 0
	if lo := cmp.Or(k.siluRowMin, siluRowMinRows); lo > 0 && rows >= lo && inter%4 == 0 && inter <= siluRowMaxCols && aligned {
		a := newArgs().ptr(gu).ptr(e.xs).ptr(e.ws).ptr(e.bias).ptr(yq).i32(int(f)).ptr(xs).i32(inter).i32(margin)
		return k.run(s, launch{kernel: kLMSiLURow, grid: [3]uint32{uint32(rows), 1, 1}, block: [3]uint32{C.GBX_SILU_ROW_THREADS, 1, 1}, smem: uint32(4 * inter), args: a})
	}
	ny, kd := siluSplit(rows, inter), k.smallRows(rows, kLMSiLURows, kLMSiLURowsS)
	if ny == 1 {
		return k.run(s, k.perRowLM(kd, rows, newArgs().ptr(gu).ptr(e.xs).ptr(e.ws).ptr(e.bias).ptr(act).ptr(yq).i32(int(f)).ptr(xs).ptr(0).i32(inter).i32(margin)))
	}
	grid, block := [3]uint32{uint32(rows), uint32(ny), 1}, [3]uint32{lmThreads, 1, 1}
	a := newArgs().ptr(gu).ptr(e.xs).ptr(e.ws).ptr(e.bias).ptr(act).ptr(yq).i32(int(f)).ptr(xs).ptr(amax).i32(inter).i32(margin)
	if err := k.run(s, launch{kernel: kd, grid: grid, block: block, args: a}); err != nil || (f != fmtE4M3 && f != fmtE4M3F32) {
		return err
	}
	return k.lmQuantCols(s, act, yq, f, xs, amax, rows, inter, margin, ny)
}

// lmQuantCols writes the fp8 operand of lmSiLURows' act when it split rows
// over ny blocks each (amax [rows·ny], the blocks' maxima).
func (k *kernelSet) lmQuantCols(s cuStream, act, yq uint64, f fmtCode, xs, amax uint64, rows, cols, margin, ny int) error {
	a := newArgs().ptr(act).ptr(yq).i32(int(f)).ptr(xs).ptr(amax).i32(cols).i32(margin)
	return k.run(s, launch{kernel: k.smallRows(rows, kLMQuantCols, kLMQuantColS), grid: [3]uint32{uint32(rows), uint32(ny), 1}, block: [3]uint32{lmThreads, 1, 1}, args: a})
}

// siluSplit is the number of blocks lmSiLURows gives a row: enough that a
// step has about siluBlocks of them (a few per SM), each of about siluCols
// columns or more, at most siluMaxSplit, and no more than the maxima's
// scratch holds (lmSiLUAmaxBytes). One block per row left a step of 64
// rows with 64 blocks, each walking 14,336 columns: 74 µs a layer under ncu
// on the H200, about a fifth of an fp8 decode step's kernel time. The
// values do not depend on the split, nor does an fp8 row's scale (a
// maximum), so a row's operand is the same at any row count.
func siluSplit(rows, inter int) int {
	ny := min((siluBlocks+rows-1)/rows, (inter+siluCols-1)/siluCols, siluMaxSplit, siluAmaxSlots/rows)
	return max(ny, 1)
}

// siluRowMinRows is the fewest rows of a step whose SiLU runs
// gbx_lm_silu_row, one block a row; siluRowMaxCols the widest row it
// holds.
const (
	siluRowMinRows = 128
	siluRowMaxCols = C.GBX_SILU_ROW_MAX_COLS
)

const (
	siluBlocks      = 528 // 4 × the H200's 132 SMs
	siluCols        = 1024
	siluMaxSplit    = 64
	siluAmaxSlots   = lmFewRows * siluMaxSplit
	lmSiLUAmaxBytes = 4 * siluAmaxSlots
)

// ---- attention.cu ----

var (
	kAttnPartial = defKernel(modLM, "gbx_attn_partial", 0)
	kAttnReduce  = defKernel(modLM, "gbx_attn_reduce", 0)
	// gbx_attn_dec's entry points by head dim and padded group, and
	// gbx_attn_mma's by head dim (attnKernel picks one).
	kAttnDec64x2  = defKernel(modLM, "gbx_attn_dec64_2", 0)
	kAttnDec64x4  = defKernel(modLM, "gbx_attn_dec64_4", 0)
	kAttnDec64x8  = defKernel(modLM, "gbx_attn_dec64_8", 0)
	kAttnDec128x2 = defKernel(modLM, "gbx_attn_dec128_2", 0)
	kAttnDec128x4 = defKernel(modLM, "gbx_attn_dec128_4", 0)
	kAttnDec128x8 = defKernel(modLM, "gbx_attn_dec128_8", 0)
	kAttnMMA64    = defKernel(modAttnMMA, "gbx_attn_mma64", 0)
	kAttnMMA128   = defKernel(modAttnMMA, "gbx_attn_mma128", 0)
	// gbx_attn_mma's entry points for an E4M3 cache.
	kAttnMMA64E4M3  = defKernel(modAttnMMA, "gbx_attn_mma64_e4m3", 0)
	kAttnMMA128E4M3 = defKernel(modAttnMMA, "gbx_attn_mma128_e4m3", 0)
	// gbx_attn_mma's entry points that group a prefill's rows
	// (attnRowsKernel picks one).
	kAttnMMA64Rows      = defKernel(modAttnMMA, "gbx_attn_mma64_rows", 0)
	kAttnMMA128Rows     = defKernel(modAttnMMA, "gbx_attn_mma128_rows", 0)
	kAttnMMA64E4M3Rows  = defKernel(modAttnMMA, "gbx_attn_mma64_e4m3_rows", 0)
	kAttnMMA128E4M3Rows = defKernel(modAttnMMA, "gbx_attn_mma128_e4m3_rows", 0)
	// gbx_attn_mma's entry points that load a warp's next KV block before
	// attending the current one (attnPFKernel picks one).
	kAttnMMA64PF      = defKernel(modAttnMMA, "gbx_attn_mma64_pf", 0)
	kAttnMMA128PF     = defKernel(modAttnMMA, "gbx_attn_mma128_pf", 0)
	kAttnMMA64E4M3PF  = defKernel(modAttnMMA, "gbx_attn_mma64_e4m3_pf", 0)
	kAttnMMA128E4M3PF = defKernel(modAttnMMA, "gbx_attn_mma128_e4m3_pf", 0)
	// gbx_attn_mma's entry points that keep a warp's next KV blocks' bulk
	// copies in flight (attnRingKernel picks one).
	kAttnMMA64E4M3Ring  = defKernel(modAttnMMA, "gbx_attn_mma64_e4m3_ring", C.GBX_ATTN_RING_BYTES_64)
	kAttnMMA128E4M3Ring = defKernel(modAttnMMA, "gbx_attn_mma128_e4m3_ring", C.GBX_ATTN_RING_BYTES_128)
)

// The attention kernels' geometry and limits (abi.h).
const (
	attnThreads   = C.GBX_ATTN_THREADS
	attnMaxGroup  = C.GBX_ATTN_MAX_GROUP
	attnMaxDim    = C.GBX_ATTN_MAX_DIM
	attnMaxSplits = C.GBX_ATTN_MAX_SPLITS
	attnMinSplit  = C.GBX_ATTN_MIN_SPLIT
	kvBlock       = C.GBX_KV_BLOCK
)

// attnArgs are the attention kernels' arguments other than the chunk of
// rows.
type attnArgs struct {
	qkv                     uint64
	stride                  int
	cache                   uint64
	cacheFmt                fmtCode // fmtF32, fmtBF16 or fmtE4M3
	kvScale                 uint64  // fmtE4M3: the cache's scales (abi.h)
	layer, layers           int
	kvHeads, group, dim     int
	pos, seq, btOff, blocks uint64
	split                   uint64
	scale                   float32
	partO, partML           uint64
	maxSplits               int
	out                     uint64
	outStride               int
	// dec, if set, runs in place of gbx_attn_partial with gbx_attn_dec's
	// arguments (gbx_attn_dec or gbx_attn_mma: attnKernel); yq, if not 0,
	// then receives out in yqFmt (tf32, bf16 or f16) too: the o
	// projection's operand.
	dec   *kernel
	yq    uint64
	yqFmt fmtCode
	// pfForm is gbx_attn_prefill's form: pfMMA, or (sm_90a only) pfWG.
	pfForm int
}

// attnKernel returns the kernel that takes a model's attention in place of
// gbx_attn_partial, with gbx_attn_dec's arguments, or nil where
// gbx_attn_partial does: gbx_attn_dec (or, with mma, gbx_attn_mma, its
// tensor-core form) reads a cache of format f, head dims 64 and 128, up to
// 8 query heads per KV head (gbx_attn_dec pads the group to the next power
// of two from 2); gbx_attn_dec a BF16 cache, gbx_attn_mma a BF16 or E4M3
// one.
func (k *kernelSet) attnKernel(mma bool, f fmtCode, dim, group int) *kernel {
	if group > 8 || dim != 64 && dim != 128 {
		return nil
	}
	switch {
	case mma && f == fmtE4M3:
		if dim == 64 {
			return kAttnMMA64E4M3
		}
		return kAttnMMA128E4M3
	case f != fmtBF16:
		return nil
	case mma:
		if dim == 64 {
			return kAttnMMA64
		}
		return kAttnMMA128
	}
	switch {
	case dim == 64 && group <= 2:
		return kAttnDec64x2
	case dim == 64 && group <= 4:
		return kAttnDec64x4
	case dim == 64:
		return kAttnDec64x8
	case group <= 2:
		return kAttnDec128x2
	case group <= 4:
		return kAttnDec128x4
	default:
		return kAttnDec128x8
	}
}

// attnRowsKernel returns the gbx_attn_mma entry point that takes
// attnKernel(true, f, dim, group)'s place in a step that feeds a sequence
// several rows (a prefill): it attends a sequence's consecutive rows 8 /
// group at a time, one load of each KV block for them all, with each
// row's results the same bits as attnKernel's. nil where that has no
// gbx_attn_mma or the group fills the products' 8 columns alone (more than
// 4 query heads a KV head).
func (k *kernelSet) attnRowsKernel(f fmtCode, dim, group int) *kernel {
	switch {
	case group > 4 || dim != 64 && dim != 128 || f != fmtBF16 && f != fmtE4M3:
		return nil
	case f == fmtE4M3 && dim == 64:
		return kAttnMMA64E4M3Rows
	case f == fmtE4M3:
		return kAttnMMA128E4M3Rows
	case dim == 64:
		return kAttnMMA64Rows
	}
	return kAttnMMA128Rows
}

// attnPFKernel returns the gbx_attn_mma entry point that takes
// attnKernel(true, f, dim, group)'s place in a launch of few blocks (a
// small batch's decode, attnPFBlocks): each warp loads its next KV block
// before it attends the current one, two blocks in registers (an SM holds
// fewer of its blocks, which a small launch does not fill anyway), with
// each row's results the same bits as attnKernel's. nil where that has no
// gbx_attn_mma.
func (k *kernelSet) attnPFKernel(f fmtCode, dim, group int) *kernel {
	switch {
	case group > 8 || dim != 64 && dim != 128 || f != fmtBF16 && f != fmtE4M3:
		return nil
	case f == fmtE4M3 && dim == 64:
		return kAttnMMA64E4M3PF
	case f == fmtE4M3:
		return kAttnMMA128E4M3PF
	case dim == 64:
		return kAttnMMA64PF
	}
	return kAttnMMA128PF
}

// attnRingKernel returns the gbx_attn_mma entry point that takes
// attnKernel(true, f, dim, group)'s place on compute capability 9.0 and
// above, whose bulk copies it uses: each warp keeps its next
// GBX_ATTN_RING_SLOTS KV blocks in flight into shared memory, which holds
// them without registers, with each row's results the same bits as
// attnKernel's. nil where it has none: a BF16 cache, whose 8 KB blocks
// in a ring read no faster on the H200 (docs/benchmarks.md, thirteenth
// pass).
func (k *kernelSet) attnRingKernel(f fmtCode, dim, group int) *kernel {
	switch {
	case group > 8 || f != fmtE4M3:
		return nil
	case dim == 64:
		return kAttnMMA64E4M3Ring
	case dim == 128:
		return kAttnMMA128E4M3Ring
	}
	return nil
}

// attnRingMinBlocks is the fewest blocks per SM (splits × KV heads × rows
// over the device's SMs) above which a launch takes attnRingKernel's entry
// points. Below, the plain ones ran faster in decode steps on the H200
// (docs/benchmarks.md, thirteenth pass).
const attnRingMinBlocks = 8

// attnPFBlocks is the most blocks per SM (splits × KV heads × rows over the
// device's SMs) of a launch on a cache of format f that attnPFKernel's
// entry points take. Measured on the H200 (docs/benchmarks.md, ninth
// pass): E4M3 (167 registers, three blocks an SM) gained up to 256 blocks,
// lost from 512; BF16 (244 registers, two) gained at 128, lost at 256.
func attnPFBlocks(f fmtCode) int {
	if f == fmtE4M3 {
		return 2
	}
	return 1
}

// attnPartial attends rows [row0, row0+rows) over every split of their
// contexts (grid: maxSplits × kvHeads × rows).
func (k *kernelSet) attnPartial(s cuStream, row0, rows int, a attnArgs) error {
	grid := [3]uint32{uint32(a.maxSplits), uint32(a.kvHeads), uint32(rows)}
	if a.dec != nil {
		ar := newArgs().ptr(a.qkv).i32(a.stride).ptr(a.cache).ptr(a.kvScale).i32(a.layer).i32(a.layers).i32(a.kvHeads).i32(a.group).
			ptr(a.pos).ptr(a.seq).ptr(a.btOff).ptr(a.blocks).ptr(a.split).i32(row0).f32(a.scale).ptr(a.partO).
			ptr(a.partML).i32(a.maxSplits).ptr(a.out).i32(a.outStride).ptr(a.yq).i32(int(a.yqFmt))
		return k.run(s, launch{kernel: a.dec, grid: grid, block: [3]uint32{C.GBX_ATTN_DEC_THREADS, 1, 1}, smem: uint32(a.dec.smem), args: ar})
	}
	ar := newArgs().ptr(a.qkv).i32(a.stride).ptr(a.cache).i32(int(a.cacheFmt)).ptr(a.kvScale).i32(a.layer).i32(a.layers).i32(a.kvHeads).i32(a.group).
		i32(a.dim).ptr(a.pos).ptr(a.seq).ptr(a.btOff).ptr(a.blocks).ptr(a.split).i32(row0).f32(a.scale).ptr(a.partO).
		ptr(a.partML).i32(a.maxSplits).ptr(a.out).i32(a.outStride)
	return k.run(s, launch{kernel: kAttnPartial, grid: grid, block: [3]uint32{attnThreads, 1, 1}, args: ar})
}

// gbx_attn_prefill's entry points, by cache format and head dim
// (attn_prefill.cu).
var (
	kAttnPrefill64      = defKernel(modAttnPrefill, "gbx_attn_prefill64", 0)
	kAttnPrefill128     = defKernel(modAttnPrefill, "gbx_attn_prefill128", 0)
	kAttnPrefill64E4M3  = defKernel(modAttnPrefill, "gbx_attn_prefill64_e4m3", 0)
	kAttnPrefill128E4M3 = defKernel(modAttnPrefill, "gbx_attn_prefill128_e4m3", 0)
	// The warpgroup (wgmma) form, sm_90a: tiles of 64 positions, two
	// warpgroups a block, bits of its own.
	kAttnPrefill64WG      = defKernel(modAttnPrefill, "gbx_attn_prefill64_wg", C.GBX_ATTN_PFW_SMEM_64)
	kAttnPrefill128WG     = defKernel(modAttnPrefill, "gbx_attn_prefill128_wg", C.GBX_ATTN_PFW_SMEM_128)
	kAttnPrefill64E4M3WG  = defKernel(modAttnPrefill, "gbx_attn_prefill64_e4m3_wg", C.GBX_ATTN_PFW_SMEM_64_E4M3)
	kAttnPrefill128E4M3WG = defKernel(modAttnPrefill, "gbx_attn_prefill128_e4m3_wg", C.GBX_ATTN_PFW_SMEM_128_E4M3)
)

// gbx_attn_prefill's forms (attnArgs.pfForm).
const (
	pfMMA = iota // mma.sync, compute capability 8.0+
	pfWG         // wgmma, two warpgroups a block, sm_90a
)

// attnPrefillThreads is a gbx_attn_prefill block's threads in form f:
// GBX_ATTN_PF_WARPS warps (abi.h), twice as many for pfWG.
func attnPrefillThreads(f int) int {
	if f == pfWG {
		return 64 * C.GBX_ATTN_PF_WARPS
	}
	return 32 * C.GBX_ATTN_PF_WARPS
}

// attnPrefillRows is how many rows a gbx_attn_prefill block of form f
// takes at group G: 16 product rows a warp.
func attnPrefillRows(f, group int) int { return attnPrefillThreads(f) / 2 / group }

// attnPrefill enqueues gbx_attn_prefill for rows [row0, row0+rows) of a
// step over a BF16 or E4M3 cache of head dim 64 or 128 (group ≤ 16): the
// same outputs as attnPartial with gbx_attn_mma (out, and yq in yqFmt), no
// splits; a.pfForm picks the form (the warpgroup one on compute
// capability 9.0 only).
func (k *kernelSet) attnPrefill(s cuStream, row0, rows int, a attnArgs) error {
	if a.cacheFmt != fmtBF16 && a.cacheFmt != fmtE4M3 || a.group > 16 || a.dim != 64 && a.dim != 128 {
		return fmt.Errorf("cuda: gbx_attn_prefill: cache format %d, head dim %d, group %d: want BF16 or E4M3, 64 or 128, at most 16", a.cacheFmt, a.dim, a.group)
	}
	kerns := [...][4]*kernel{
		pfMMA: {kAttnPrefill64, kAttnPrefill128, kAttnPrefill64E4M3, kAttnPrefill128E4M3},
		pfWG:  {kAttnPrefill64WG, kAttnPrefill128WG, kAttnPrefill64E4M3WG, kAttnPrefill128E4M3WG},
	}[a.pfForm]
	i := 0
	if a.dim == 128 {
		i++
	}
	if a.cacheFmt == fmtE4M3 {
		i += 2
	}
	kern := kerns[i]
	per := attnPrefillRows(a.pfForm, a.group)
	ar := newArgs().ptr(a.qkv).i32(a.stride).ptr(a.cache).ptr(a.kvScale).i32(a.layer).i32(a.layers).i32(a.kvHeads).i32(a.group).
		ptr(a.pos).ptr(a.seq).ptr(a.btOff).ptr(a.blocks).i32(row0).i32(rows).f32(a.scale).ptr(a.out).i32(a.outStride).
		ptr(a.yq).i32(int(a.yqFmt))
	return k.run(s, launch{kernel: kern, grid: [3]uint32{uint32(a.kvHeads), uint32((rows + per - 1) / per), 1},
		block: [3]uint32{uint32(attnPrefillThreads(a.pfForm)), 1, 1}, smem: uint32(kern.smem), args: ar})
}

// attnReduce combines the splits of rows [row0, row0+rows) (grid: heads ×
// rows).
func (k *kernelSet) attnReduce(s cuStream, row0, rows int, a attnArgs) error {
	ar := newArgs().ptr(a.pos).ptr(a.split).i32(row0).i32(a.kvHeads * a.group).i32(a.dim).ptr(a.partO).ptr(a.partML).
		i32(a.maxSplits).ptr(a.out).i32(a.outStride).ptr(a.yq).i32(int(a.yqFmt))
	return k.run(s, launch{kernel: kAttnReduce, grid: [3]uint32{uint32(a.kvHeads * a.group), uint32(rows), 1},
		block: [3]uint32{attnThreads, 1, 1}, args: ar})
}

// ---- sample.cu ----

var (
	kLMLogprobsPart = defKernel(modLM, "gbx_lm_logprobs_part", 0)
	kLMLogprobs     = defKernel(modLM, "gbx_lm_logprobs", 0)
	kLMSample       = defKernel(modLM, "gbx_lm_sample", 0)
)

// maxTop is the most alternatives gbx_lm_sample writes per sequence.
const maxTop = C.GBX_MAX_TOP

// logprobsChunk is the ids per block of gbx_lm_logprobs_part.
const logprobsChunk = C.GBX_LOGPROBS_CHUNK

// logprobsChunks is how many chunks gbx_lm_logprobs_part cuts a row of
// vocab logits into.
func logprobsChunks(vocab int) int { return (vocab + logprobsChunk - 1) / logprobsChunk }

// logprobsPartBytes is the scratch lmLogprobsPart writes for rows rows of
// vocab logits.
func logprobsPartBytes(rows, vocab int) int {
	return C.GBX_LOGPROBS_PART_BYTES * rows * logprobsChunks(vocab)
}

// lmLogprobsPart reduces each chunk of rows rows of logits (vocab values
// each) to its maximum, sum and argmax at part (logprobsPartBytes), for
// lmLogprobs.
func (k *kernelSet) lmLogprobsPart(s cuStream, logits uint64, vocab int, part uint64, rows int) error {
	a := newArgs().ptr(logits).i32(vocab).ptr(part)
	return k.run(s, launch{kernel: kLMLogprobsPart, grid: [3]uint32{uint32(rows), uint32(logprobsChunks(vocab)), 1},
		block: [3]uint32{C.GBX_LOGPROBS_THREADS, 1, 1}, args: a})
}

// lmLogprobs combines lmLogprobsPart's chunks of rows rows of logits into
// lse [rows] (double), lp [rows] = l[target] − lse and amax [rows] (int32,
// each row's argmax).
func (k *kernelSet) lmLogprobs(s cuStream, part, logits uint64, vocab int, targets, lse, lp, amax uint64, rows int) error {
	a := newArgs().ptr(part).i32(logprobsChunks(vocab)).ptr(logits).i32(vocab).ptr(targets).ptr(lse).ptr(lp).ptr(amax)
	return k.run(s, launch{kernel: kLMLogprobs, grid: [3]uint32{uint32(rows), 1, 1}, block: [3]uint32{32, 1, 1}, args: a})
}

// sampleArgs are gbx_lm_sample's per-sequence arrays and outputs.
type sampleArgs struct {
	row, temp, topK, topP, u, nTop uint64 // inputs [n]
	lse, amax                      uint64 // [logit rows]: lmLogprobs' outputs
	tok, tokLp, topIDs, topLp      uint64 // outputs [n], [n], [n·maxTop], [n·maxTop]
}

// lmSample samples n sequences whose logits rows are in [rowLo, rowHi) of
// logits (the others return at once).
func (k *kernelSet) lmSample(s cuStream, logits uint64, vocab, rowLo, rowHi, n int, a sampleArgs) error {
	ar := newArgs().ptr(logits).i32(vocab).i32(rowLo).i32(rowHi).ptr(a.row).ptr(a.temp).ptr(a.topK).ptr(a.topP).ptr(a.u).
		ptr(a.nTop).ptr(a.lse).ptr(a.amax).ptr(a.tok).ptr(a.tokLp).ptr(a.topIDs).ptr(a.topLp)
	return k.run(s, launch{kernel: kLMSample, grid: [3]uint32{uint32(n), 1, 1}, block: [3]uint32{C.GBX_SAMPLE_THREADS, 1, 1}, args: ar})
}

// ---- gemv.cu ----

// kGEMV is launched with programmatic dependent launch: its first weight
// loads are in flight before it waits for the kernel before it
// (gbx_pdl_weights_first), which made decode at batch 1 3-5 % faster than
// cuBLASLt on the H200 (docs/benchmarks.md, "tenth pass").
var kGEMV = defKernel(modGEMV, "gbx_gemv", 0)

// gemvRows is the output channels of one gbx_gemv block.
const gemvRows = C.GBX_GEMV_ROWS

// gbx_gemv's limit, as config.go states it.
var _ [C.GBX_GEMV_MAX_M - gemvMaxM]struct{}
var _ [gemvMaxM - C.GBX_GEMV_MAX_M]struct{}

// gemv enqueues y [m, n] = ((x·Wᵀ)·xs)·ws + bias for x [m, k] and w [n, k]
// in f (bf16, f16 or e4m3; xs, ws and bias may be 0), m ≤ gemvMaxM, n a
// multiple of GBX_GEMV_ROWS, k·(element bytes) a multiple of 64.
func (k *kernelSet) gemv(s cuStream, x, w uint64, f fmtCode, xs, ws, bias, y uint64, m, n, kb int) error {
	a := newArgs().ptr(x).ptr(w).i32(int(f)).ptr(xs).ptr(ws).ptr(bias).ptr(y).i32(m).i32(n).i32(kb)
	return k.run(s, launch{kernel: kGEMV, grid: [3]uint32{uint32(n / gemvRows), 1, 1}, block: [3]uint32{C.GBX_GEMV_THREADS, 1, 1}, args: a})
}
