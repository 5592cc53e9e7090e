// rows.cuh: a row of floats written as a linear layer's operand, in any
// operand format, by one block (gbx_row_out); shared by gbx_quant_rows
// (fp8.cu, tensor and language models) and gbx_lm_norm (lm.cu), which are
// in different modules.
#ifndef GBX_ROWS_CUH
#define GBX_ROWS_CUH

#include "common.cuh"

// gbx_ld returns element i of p, stored as fmt (F32, TF32, BF16 or F16), as
// a float (exactly).
__device__ __forceinline__ float gbx_ld(const void *p, int fmt, long long i) {
	switch (fmt) {
	case GBX_FMT_BF16: return bf2f(((const u16 *)p)[i]);
	case GBX_FMT_F16: return h2f(((const u16 *)p)[i]);
	default: return ((const float *)p)[i]; // F32, TF32
	}
}

// gbx_st stores v as element i of p in fmt (F32, TF32, BF16 or F16),
// rounded as package precision rounds.
__device__ __forceinline__ void gbx_st(void *p, int fmt, long long i, float v) {
	switch (fmt) {
	case GBX_FMT_BF16: ((u16 *)p)[i] = f2bf(v); break;
	case GBX_FMT_F16: ((u16 *)p)[i] = f2h(v); break;
	case GBX_FMT_TF32: ((float *)p)[i] = f2tf32(v); break;
	default: ((float *)p)[i] = v; break; // F32
	}
}

// gbx_st_e4m3 stores x quantized with scale s as element i of p: the byte
// E4M3(x / s) (GBX_FMT_E4M3) or its value as a float (GBX_FMT_E4M3_F32).
__device__ __forceinline__ void gbx_st_e4m3(void *p, int fmt, long long i, float x, float s) {
	const u8 q = e4m3q(x, s);
	if (fmt == GBX_FMT_E4M3) ((u8 *)p)[i] = q;
	else ((float *)p)[i] = e4m3f(q);
}

// gbx_row_out writes the block's row h[0..cols) as row `row` of y in fmt, a
// linear layer's operand (roundActivations of kernels/cpu): F32 (a copy, skipped
// when y is h), TF32, BF16, F16 rounded; E4M3 and E4M3_F32 quantized with
// the row's own scale s = FP8Scale(amax of the row, margin), q =
// E4M3(h / s) (an IEEE division, saturating), s written to xs[row]. Every
// thread reads only the elements it wrote itself (i = threadIdx.x +
// k·blockDim.x), so it needs no barrier before.
__device__ void gbx_row_out(const float *h, int cols, void *y, long long row, int fmt, float *xs, int margin) {
	__shared__ float sm[33];
	const long long base = row * cols;
	if (fmt == GBX_FMT_E4M3 || fmt == GBX_FMT_E4M3_F32) {
		float m = 0.0f;
		for (int i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, fabsf(h[i])); // NaN skipped, as Amax
		m = blockAmax(m, sm);
		if (threadIdx.x == 0) sm[32] = m;
		__syncthreads();
		const float s = fp8Scale(sm[32], margin);
		if (threadIdx.x == 0) xs[row] = s;
		for (int i = threadIdx.x; i < cols; i += blockDim.x) gbx_st_e4m3(y, fmt, base + i, h[i], s);
		return;
	}
	if (fmt == GBX_FMT_F32 && (const float *)y + base == h) return;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) gbx_st(y, fmt, base + i, h[i]);
}

// GBX_ROW_BATCH is how many elements a thread of gbx_lm_silu_rows_small and
// gbx_lm_quant_cols_small loads before it stores any.
#define GBX_ROW_BATCH 4

// gbx_row_out_regs is gbx_row_out of a row held in registers, with the same
// bits: v[j] is element threadIdx.x + j·blockDim.x (those below cols);
// hmem is where the row is also in memory (the F32 copy skipped when y is
// it). A row kept in registers is loaded once, all of a thread's loads in
// flight together: gbx_row_out's loops, a load and a store an element,
// wait for each load before the next (the compiler cannot move a load
// above a store that may alias it), one memory round trip an element.
template <int NV>
__device__ void gbx_row_out_regs(const float (&v)[NV], const float *hmem, int cols, void *y, long long row, int fmt,
                                 float *xs, int margin) {
	__shared__ float sm[33];
	const long long base = row * cols;
	if (fmt == GBX_FMT_E4M3 || fmt == GBX_FMT_E4M3_F32) {
		float m = 0.0f;
#pragma unroll
		for (int j = 0; j < NV; j++)
			if (threadIdx.x + j * blockDim.x < cols) m = fmaxf(m, fabsf(v[j])); // NaN skipped, as Amax
		m = blockAmax(m, sm);
		if (threadIdx.x == 0) sm[32] = m;
		__syncthreads();
		const float s = fp8Scale(sm[32], margin);
		if (threadIdx.x == 0) xs[row] = s;
#pragma unroll
		for (int j = 0; j < NV; j++) {
			const int i = threadIdx.x + j * blockDim.x;
			if (i < cols) gbx_st_e4m3(y, fmt, base + i, v[j], s);
		}
		return;
	}
	if (fmt == GBX_FMT_F32 && (const float *)y + base == hmem) return;
#pragma unroll
	for (int j = 0; j < NV; j++) {
		const int i = threadIdx.x + j * blockDim.x;
		if (i < cols) gbx_st(y, fmt, base + i, v[j]);
	}
}

// gbx_row_load loads the row h[0..cols) into v as gbx_row_out_regs holds it.
template <int NV>
__device__ __forceinline__ void gbx_row_load(float (&v)[NV], const float *h, int cols) {
#pragma unroll
	for (int j = 0; j < NV; j++) {
		const int i = threadIdx.x + j * blockDim.x;
		v[j] = i < cols ? h[i] : 0.0f;
	}
}

#endif
