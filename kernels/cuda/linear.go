//go:build cgo

package cuda

/*
#include "src/abi.h"
*/
import "C"

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gearbox-inference/gearbox/precision"
)

// fp8OuterVecMinRows is the smallest batch whose per-channel fp8 GEMM uses
// cuBLASLt's outer-vector scaling; smaller batches run the scalar GEMM and
// apply the scales in gbx_scale_bias (faster there; measured on an H100,
// docs/cuda.md).
const fp8OuterVecMinRows = 128

// gemmMode says how a linear layer's GEMM is set up: which extra work a
// kernel of ours does after cuBLASLt.
type gemmMode int

const (
	modeFused    gemmMode = iota // bias (+relu) and scales inside cuBLASLt
	modeScaled                   // fp8: scales in cuBLASLt, bias (+relu) in gbx_scale_bias
	modeEpilogue                 // everything after the product in gbx_scale_bias
)

// planKey names a prepared cuBLASLt plan.
type planKey struct {
	p         precision.Format
	rows      int
	n, k      int
	bias      bool
	relu      bool
	perTensor bool // fp8 weight and activation scales per tensor (bench variant)
	fp8F32    bool
	cand      int // cuBLASLt's heuristic result taken (LinearBench.Cand; 0 its first)
}

// gemmPlan is a plan with the mode it ended up in.
type gemmPlan struct {
	lt   ltPlan
	mode gemmMode
	bVec bool   // fp8: the activation scales as an outer vector (one per row)
	used uint64 // devState.planClock at its last use
}

// maxPlans is how many plans a device keeps. A language model's steps
// take many row counts (every prefill chunk and decode batch size), five
// or so plans each: past maxPlans the least recently used half is freed,
// so the sizes in steady use keep theirs.
const maxPlans = 4096

func (g *gemmPlan) free() { g.lt.free() }

// gemmTypes returns the A/B operand type and compute type of p's GEMM.
func gemmTypes(p precision.Format, fp8F32 bool) (ab, compute int) {
	switch p {
	case precision.TF32:
		return C.GBX_CUDA_R_32F, C.GBX_CUBLAS_COMPUTE_32F_FAST_TF32
	case precision.BF16, precision.FP4:
		return C.GBX_CUDA_R_16BF, C.GBX_CUBLAS_COMPUTE_32F
	case precision.FP16:
		return C.GBX_CUDA_R_16F, C.GBX_CUBLAS_COMPUTE_32F
	case precision.FP8:
		if fp8F32 {
			return C.GBX_CUDA_R_32F, C.GBX_CUBLAS_COMPUTE_32F
		}
		return C.GBX_CUDA_R_8F_E4M3, C.GBX_CUBLAS_COMPUTE_32F
	}
	return C.GBX_CUDA_R_32F, C.GBX_CUBLAS_COMPUTE_32F
}

// plan returns (creating and caching) the plan for key: the most fused
// configuration cuBLASLt has an algorithm for. On a batch-invariant
// device (Config.BatchInvariant) the configuration and its algorithm are
// those chosen for InvariantRefRows rows, whatever k.rows: the fp8 scale
// mode is the one for that row count, and gbx_plan_fixed takes the
// heuristic's algorithm for it, split-K off, at every row count.
func (d *devState) plan(k planKey, dl *devLayer) (*gemmPlan, error) {
	d.planClock++
	if g := d.plans[k]; g != nil {
		g.used = d.planClock
		return g, nil
	}
	if len(d.plans) >= maxPlans {
		d.evictPlans(maxPlans / 2)
	}
	ab, compute := gemmTypes(k.p, k.fp8F32)
	base := planArgs{
		compute: compute, scale: C.GBX_CUDA_R_32F, aType: ab, bType: ab, cType: C.GBX_CUDA_R_32F, dType: C.GBX_CUDA_R_32F,
		m: k.n, n: k.rows, k: k.k, epilogue: C.GBX_CUBLASLT_EPILOGUE_DEFAULT,
		biasType: C.GBX_PLAN_UNSET, aScaleMode: C.GBX_PLAN_UNSET, bScaleMode: C.GBX_PLAN_UNSET, fastAccum: C.GBX_PLAN_UNSET,
		workspace: workspaceBytes,
	}
	ref := k.rows // the row count the configuration is chosen for
	if d.invariant {
		ref, base.refN = InvariantRefRows, InvariantRefRows
	} else {
		base.cand = k.cand
	}
	epi := C.GBX_CUBLASLT_EPILOGUE_DEFAULT
	switch {
	case k.bias && k.relu:
		epi = C.GBX_CUBLASLT_EPILOGUE_RELU_BIAS
	case k.bias:
		epi = C.GBX_CUBLASLT_EPILOGUE_BIAS
	case k.relu:
		epi = C.GBX_CUBLASLT_EPILOGUE_RELU
	}
	type try struct {
		mode gemmMode
		bVec bool
		a    planArgs
	}
	var tries []try
	fused := base
	fused.epilogue = epi
	if k.bias {
		fused.biasType = C.GBX_CUDA_R_32F
		fused.bias = dl.bias
	}
	if k.p == precision.FP8 && !k.fp8F32 {
		// fp8: per-channel weight scales as cuBLASLt's outer-vector A
		// scale, the per-row activation scales as B's outer vector, from
		// fp8OuterVecMinRows rows; below, the unscaled product and
		// gbx_scale_bias (modeEpilogue), faster there (measured: 38 vs
		// 45 µs at 1×8192×8192). The per-tensor bench variant takes
		// scalar scales. unfuse leaves the bias and relu to
		// gbx_scale_bias (relu must follow the bias).
		unfuse := func(a planArgs) planArgs {
			a.epilogue, a.bias, a.biasType = C.GBX_CUBLASLT_EPILOGUE_DEFAULT, 0, C.GBX_PLAN_UNSET
			return a
		}
		scaled := fused
		scaled.aScale, scaled.bScale = dl.wscale, d.xscale
		switch {
		case k.perTensor:
			tries = append(tries, try{modeFused, false, scaled}, try{modeScaled, false, unfuse(scaled)})
		case ref >= fp8OuterVecMinRows:
			vec := scaled
			outer := C.GBX_CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
			vec.aScaleMode, vec.bScaleMode, vec.bScale = outer, outer, d.xvec
			tries = append(tries, try{modeFused, true, vec}, try{modeScaled, true, unfuse(vec)})
		}
	} else if k.p != precision.FP8 {
		tries = append(tries, try{modeFused, false, fused})
	}
	tries = append(tries, try{modeEpilogue, false, base})
	var firstErr error
	for _, t := range tries {
		lp, err := d.lt.plan(t.a)
		if err == nil {
			g := &gemmPlan{lt: lp, mode: t.mode, bVec: t.bVec, used: d.planClock}
			d.plans[k] = g
			return g, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("cuda: no cuBLASLt algorithm for %s %d×%d×%d: %w", k.p, k.rows, k.n, k.k, firstErr)
}

// evictPlans frees the least recently used plans until keep are left.
func (d *devState) evictPlans(keep int) {
	if len(d.plans) <= keep {
		return
	}
	keys := make([]planKey, 0, len(d.plans))
	for k := range d.plans {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b planKey) int { return cmp.Compare(d.plans[a].used, d.plans[b].used) })
	for _, k := range keys[:len(keys)-keep] {
		d.plans[k].free()
		delete(d.plans, k)
	}
}

// linear enqueues y[rows, N] = x[rows, K]·Wᵀ + bias (then relu when relu)
// for layer dl at precision p. x and y are fp32 device buffers; conv holds
// the converted input (at least rows × K × 4 bytes).
func (d *devState) linear(dl *devLayer, p precision.Format, x, y, conv uint64, rows int, relu bool) error {
	n, k := dl.out, dl.in
	cnt := rows * k
	if p == precision.FP4 && d.useFP4Kernel(rows, dl.out, dl.in, dl.fp4Tiled) {
		return d.fp4Linear(dl, x, y, conv, rows, relu)
	}
	b := x // the GEMM's B operand
	alpha := float32(1)
	switch p {
	case precision.TF32:
		if err := d.k.toTF32(d.stream, x, conv, cnt); err != nil {
			return err
		}
		b = conv
	case precision.BF16, precision.FP4:
		if err := d.k.toBF16(d.stream, x, conv, cnt); err != nil {
			return err
		}
		b = conv
		if p == precision.FP4 {
			alpha = dl.ts
		}
	case precision.FP16:
		if err := d.k.toFP16(d.stream, x, conv, cnt); err != nil {
			return err
		}
		b = conv
	case precision.FP8:
		if err := d.fp8Activations(dl, x, conv, rows); err != nil {
			return err
		}
		b = conv
	}
	if err := d.markMid(); err != nil {
		return err
	}
	key := planKey{p: p, rows: rows, n: n, k: k, bias: dl.bias != 0, relu: relu, perTensor: dl.perTensor, fp8F32: dl.fp8F32, cand: d.benchCand}
	g, err := d.plan(key, dl)
	if err != nil {
		return err
	}
	var bias, aScale, bScale uint64
	if g.mode == modeFused {
		bias = dl.bias
	}
	if p == precision.FP8 && g.mode != modeEpilogue {
		aScale, bScale = dl.wscale, d.xscale // per-tensor (bench)
		if g.bVec {
			bScale = d.xvec // per row
		}
	}
	if err := d.lt.run(g.lt, alpha, dl.w, b, y, bias, aScale, bScale, d.workspace, workspaceBytes, d.stream); err != nil {
		return err
	}
	if g.mode == modeFused {
		return nil
	}
	// The rest of the epilogue: scales (fp8 in epilogue mode), bias, relu.
	var xs, ws uint64
	if p == precision.FP8 && g.mode == modeEpilogue {
		if dl.perTensor {
			return fmt.Errorf("cuda: fp8 per-tensor weights need cuBLASLt scale pointers")
		}
		xs, ws = d.xvec, dl.wscale
	}
	if xs == 0 && ws == 0 && dl.bias == 0 && !relu {
		return nil
	}
	act := actNone
	if relu {
		act = actReLU
	}
	return d.k.scaleBias(d.stream, y, xs, ws, dl.bias, rows, n, act)
}

// fp8Activations quantizes rows rows of x, layer dl's input, into conv:
// E4M3 bytes (or their float32 values when dl.fp8F32) with one scale per
// row, FP8Scale(amax of the row, margin), written to d.xvec, so that a
// row's operand does not depend on the other rows of the batch (a row with
// an Inf gets scale Inf and only its own outputs become NaN). The
// per-tensor bench variant quantizes the whole batch with one scale from
// its amax instead, written to d.xscale.
func (d *devState) fp8Activations(dl *devLayer, x, conv uint64, rows int) error {
	if err := d.growScaleVec(rows); err != nil {
		return err
	}
	cnt := rows * dl.in
	if !dl.perTensor {
		f := fmtE4M3
		if dl.fp8F32 {
			f = fmtE4M3F32
		}
		return d.k.quantRows(d.stream, x, conv, f, d.xvec, rows, dl.in, d.margin)
	}
	if cnt <= fp8SmallQuant {
		return d.k.fp8QuantSmall(d.stream, x, conv, cnt, d.margin, d.xscale, d.xvec, rows)
	}
	if err := d.stream.memset32(d.amax, 0, 1); err != nil {
		return err
	}
	if err := d.k.amax(d.stream, x, cnt, d.amax); err != nil {
		return err
	}
	return d.k.fp8Quant(d.stream, x, conv, cnt, d.amax, d.margin, d.xscale, d.xvec, rows)
}

// growScaleVec makes d.xvec hold at least rows floats.
func (d *devState) growScaleVec(rows int) error {
	if rows <= d.xvecCap {
		return nil
	}
	n := bucket(rows)
	p, err := cuMalloc(uint64(4 * n))
	if err != nil {
		return err
	}
	_ = d.stream.sync()
	d.invalidateGraphs()
	_ = cuFree(d.xvec)
	// Plans hold the old vector's address: drop those that use it.
	for k, g := range d.plans {
		if g.bVec {
			g.free()
			delete(d.plans, k)
		}
	}
	d.xvec, d.xvecCap = p, n
	return nil
}
