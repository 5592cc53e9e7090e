//go:build cgo

package cuda

import (
	"fmt"

	"github.com/gearbox-inference/gearbox/precision"
)

// cuBLASLt and CUDA enum values (CUDA 13.0; see
// shared/reference/cuda-from-go.md).
const (
	rF32  = 0  // CUDA_R_32F
	rF16  = 2  // CUDA_R_16F
	rBF16 = 14 // CUDA_R_16BF
	rE4M3 = 28 // CUDA_R_8F_E4M3

	compute32F     = 68 // CUBLAS_COMPUTE_32F
	compute32FTF32 = 77 // CUBLAS_COMPUTE_32F_FAST_TF32

	epiDefault  = 1 // CUBLASLT_EPILOGUE_DEFAULT
	epiReLU     = 2
	epiBias     = 4
	epiReLUBias = 6

	scaleOuterVec = 3 // CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F

	// fp8OuterVecMinRows is the smallest batch whose per-channel fp8 GEMM
	// uses cuBLASLt's outer-vector scaling; smaller batches run the scalar
	// GEMM and apply the scales in gbx_scale_bias (faster there; measured
	// on an H100, docs/cuda.md).
	fp8OuterVecMinRows = 128

	// fp8SmallQuant is the largest activation (values) quantized by one
	// block in one launch (gbx_fp8_quant_small) instead of a memset, an
	// amax and a quantize launch (measured on an H100: one block takes
	// 27 µs for 65536 values, the three launches 8 µs).
	fp8SmallQuant = 1 << 14
)

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
	perTensor bool // fp8 weight scale per tensor (bench variant)
	fp8F32    bool
}

// gemmPlan is a plan with the mode it ended up in.
type gemmPlan struct {
	lt   ltPlan
	mode gemmMode
	bVec bool // fp8: the activation scale as an outer vector (one per row)
}

func (g *gemmPlan) free() { g.lt.free() }

// gemmTypes returns the A/B operand type and compute type of p's GEMM.
func gemmTypes(p precision.Format, fp8F32 bool) (ab, compute int) {
	switch p {
	case precision.TF32:
		return rF32, compute32FTF32
	case precision.BF16, precision.FP4:
		return rBF16, compute32F
	case precision.FP16:
		return rF16, compute32F
	case precision.FP8:
		if fp8F32 {
			return rF32, compute32F
		}
		return rE4M3, compute32F
	}
	return rF32, compute32F
}

// plan returns (creating and caching) the plan for key: the most fused
// configuration cuBLASLt has an algorithm for.
func (d *devState) plan(k planKey, dl *devLayer) (*gemmPlan, error) {
	if g := d.plans[k]; g != nil {
		return g, nil
	}
	if len(d.plans) > 512 { // many batch sizes: start over
		for key, g := range d.plans {
			g.free()
			delete(d.plans, key)
		}
	}
	ab, compute := gemmTypes(k.p, k.fp8F32)
	base := planArgs{
		compute: compute, scale: rF32, aType: ab, bType: ab, cType: rF32, dType: rF32,
		m: k.n, n: k.rows, k: k.k, epilogue: epiDefault,
		biasType: -1, aScaleMode: -1, bScaleMode: -1, fastAccum: -1,
		workspace: workspaceBytes,
	}
	epi := epiDefault
	switch {
	case k.bias && k.relu:
		epi = epiReLUBias
	case k.bias:
		epi = epiBias
	case k.relu:
		epi = epiReLU
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
		fused.biasType = rF32
		fused.bias = dl.bias
	}
	if k.p == precision.FP8 && !k.fp8F32 {
		// fp8: per-channel weight scales as cuBLASLt's outer-vector A
		// scale; the activation scale as B's outer vector (every row the
		// same value), or as B's scalar. unfuse leaves the bias and relu
		// to gbx_scale_bias (relu must follow the bias).
		unfuse := func(a planArgs) planArgs {
			a.epilogue, a.bias, a.biasType = epiDefault, 0, -1
			return a
		}
		scaled := fused
		scaled.aScale, scaled.bScale = dl.wscale, d.xscale
		switch {
		case k.perTensor:
			tries = append(tries, try{modeFused, false, scaled}, try{modeScaled, false, unfuse(scaled)})
		case k.rows >= fp8OuterVecMinRows:
			vec := scaled
			vec.aScaleMode, vec.bScaleMode, vec.bScale = scaleOuterVec, scaleOuterVec, d.xvec
			scaled.aScaleMode = scaleOuterVec
			tries = append(tries, try{modeFused, true, vec}, try{modeScaled, true, unfuse(vec)},
				try{modeFused, false, scaled}, try{modeScaled, false, unfuse(scaled)})
		}
		// Small per-channel batches: the unscaled GEMM and gbx_scale_bias
		// (modeEpilogue, below) are faster there than the outer-vector
		// kernels (measured: 38 vs 45 µs at 1×8192×8192).
	} else if k.p != precision.FP8 {
		tries = append(tries, try{modeFused, false, fused})
	}
	tries = append(tries, try{modeEpilogue, false, base})
	var firstErr error
	for _, t := range tries {
		lp, err := d.lt.plan(t.a)
		if err == nil {
			g := &gemmPlan{lt: lp, mode: t.mode, bVec: t.bVec}
			d.plans[k] = g
			return g, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("cuda: no cuBLASLt algorithm for %s %d×%d×%d: %w", k.p, k.rows, k.n, k.k, firstErr)
}

// linear enqueues y[rows, N] = x[rows, K]·Wᵀ + bias (then relu when relu)
// for layer dl at precision p. x and y are fp32 device buffers; conv holds
// the converted input (at least rows × K × 4 bytes). amaxReady says that
// d.amax already holds x's amax (fp8: computed by the producing kernel).
func (d *devState) linear(dl *devLayer, p precision.Format, x, y, conv uint64, rows int, relu, amaxReady bool) error {
	n, k := dl.out, dl.in
	cnt := rows * k
	if p == precision.FP4 && d.useFP4Kernel(rows) {
		return d.fp4Linear(dl, x, y, conv, rows, relu)
	}
	b := x // the GEMM's B operand
	alpha := float32(1)
	switch p {
	case precision.TF32:
		if err := d.launch1D("gbx_to_tf32", cnt/4, newArgs("gbx_to_tf32").ptr(x).ptr(conv).i64(cnt)); err != nil {
			return err
		}
		b = conv
	case precision.BF16, precision.FP4:
		if err := d.launch1D("gbx_to_bf16", cnt/4, newArgs("gbx_to_bf16").ptr(x).ptr(conv).i64(cnt)); err != nil {
			return err
		}
		b = conv
		if p == precision.FP4 {
			alpha = dl.ts
		}
	case precision.FP16:
		if err := d.launch1D("gbx_to_fp16", cnt/4, newArgs("gbx_to_fp16").ptr(x).ptr(conv).i64(cnt)); err != nil {
			return err
		}
		b = conv
	case precision.FP8:
		if err := d.fp8Activations(x, conv, cnt, rows, dl.fp8F32, amaxReady); err != nil {
			return err
		}
		b = conv
	}
	if err := d.markMid(); err != nil {
		return err
	}
	key := planKey{p: p, rows: rows, n: n, k: k, bias: dl.bias != 0, relu: relu, perTensor: dl.perTensor, fp8F32: dl.fp8F32}
	g, err := d.plan(key, dl)
	if err != nil {
		return err
	}
	var bias, aScale, bScale uint64
	switch g.mode {
	case modeFused:
		bias = dl.bias
		if p == precision.FP8 && !dl.fp8F32 {
			aScale, bScale = dl.wscale, d.xscale
		}
	case modeScaled:
		aScale, bScale = dl.wscale, d.xscale
	}
	if g.bVec {
		bScale = d.xvec
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
		xs, ws = d.xscale, dl.wscale
	}
	if xs == 0 && ws == 0 && dl.bias == 0 && !relu {
		return nil
	}
	act := 0
	if relu {
		act = 1
	}
	tot := rows * n
	return d.launch1D("gbx_scale_bias", tot, newArgs("gbx_scale_bias").ptr(y).ptr(xs).ptr(ws).ptr(dl.bias).i64(rows).i32(n).i32(act))
}

// fp8Activations quantizes cnt values (rows rows) of x into conv: E4M3
// bytes (or their float32 values when fp8F32) with one scale from the
// batch's amax, written to d.xscale and, once per row, to d.xvec. With
// amaxReady, d.amax already holds x's amax.
func (d *devState) fp8Activations(x, conv uint64, cnt, rows int, fp8F32, amaxReady bool) error {
	if err := d.growScaleVec(rows); err != nil {
		return err
	}
	if cnt <= fp8SmallQuant && !fp8F32 {
		a := newArgs("gbx_fp8_quant_small").ptr(x).ptr(conv).i64(cnt).i32(d.margin).ptr(d.xscale).ptr(d.xvec).i32(rows)
		return d.fn["gbx_fp8_quant_small"].launch(d.stream, [3]uint32{1, 1, 1}, [3]uint32{1024, 1, 1}, 0, a)
	}
	if !amaxReady {
		if err := d.stream.memset32(d.amax, 0, 1); err != nil {
			return err
		}
		if err := d.launch1D("gbx_amax", cnt/4, newArgs("gbx_amax").ptr(x).i64(cnt).ptr(d.amax)); err != nil {
			return err
		}
	}
	name := "gbx_fp8_quant"
	n := cnt / 4
	if fp8F32 {
		name, n = "gbx_fp8_round", cnt
	}
	a := newArgs(name).ptr(x).ptr(conv).i64(cnt).ptr(d.amax).i32(d.margin).ptr(d.xscale)
	if !fp8F32 {
		a.ptr(d.xvec).i32(rows)
	}
	return d.launch1D(name, max(n, rows), a)
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
