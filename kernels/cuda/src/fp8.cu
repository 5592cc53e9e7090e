// fp8.cu: an fp8 layer's input. gbx_quant_rows is what every forward pass
// runs: one scale per row (per token), so that a row's operand does not
// depend on the other rows of its batch. gbx_amax, gbx_fp8_quant and
// gbx_fp8_quant_small quantize a whole batch with one scale from its amax
// (precision.FP8Scale; E4M3 of x / s, an IEEE division, saturating): only
// the benchmarks' per-tensor path (fp8-tensor) uses them.

#include "rows.cuh"

// gbx_quant_rows: row b of yq = row b of x [*, cols] in fmt (gbx_row_out):
// for E4M3 and E4M3_F32 with the row's own scale FP8Scale(amax of the row,
// margin), written to xs[b]. One block of GBX_LM_THREADS per row.
extern "C" __global__ void __launch_bounds__(1024) gbx_quant_rows(const float *x, void *yq, int fmt, float *xs, int cols, int margin) {
	gbx_pdl();
	gbx_row_out(x + (long long)blockIdx.x * cols, cols, yq, blockIdx.x, fmt, xs, margin);
}

// gbx_quant_rows_small is gbx_quant_rows for a step of at most
// GBX_REGS_MAX_ROWS rows: a row of up to 8 values a thread in registers
// (gbx_row_out_regs), the same bits.
extern "C" __global__ void __launch_bounds__(1024)
    gbx_quant_rows_small(const float *x, void *yq, int fmt, float *xs, int cols, int margin) {
	gbx_pdl();
	const float *h = x + (long long)blockIdx.x * cols;
	if (cols <= 4 * (int)blockDim.x) {
		float v[4];
		gbx_row_load(v, h, cols);
		gbx_row_out_regs(v, h, cols, yq, blockIdx.x, fmt, xs, margin);
	} else if (cols <= 8 * (int)blockDim.x) {
		float v[8];
		gbx_row_load(v, h, cols);
		gbx_row_out_regs(v, h, cols, yq, blockIdx.x, fmt, xs, margin);
	} else {
		gbx_row_out(h, cols, yq, blockIdx.x, fmt, xs, margin);
	}
}

// gbx_amax: *out = max(*out, max |x[i]|) as float bits (the caller zeroes
// *out first). NaNs are skipped, as precision.Amax does.
extern "C" __global__ void gbx_amax(const float *__restrict__ x, long long n, u32 *out) {
	gbx_pdl();
	__shared__ float warpMax[32];
	float m = 0.0f;
	long long stride = (long long)gridDim.x * blockDim.x;
	long long n4 = n / 4;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride) {
		float4 v = reinterpret_cast<const float4 *>(x)[i];
		m = fmaxf(m, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
	}
	for (long long i = n4 * 4 + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride)
		m = fmaxf(m, fabsf(x[i]));
	m = blockAmax(m, warpMax);
	if (threadIdx.x == 0) atomicMax(out, __float_as_uint(m)); // non-negative floats order as integers
}

// gbx_fp8_quant: q[i] = E4M3(x[i] / s), s = FP8Scale(amax, margin), an IEEE
// division; *scale = s (written by thread 0 for the GEMM) and
// scaleVec[0..nvec) = s (the same scale per row, for cuBLASLt's outer-vector
// scaling; scaleVec may be NULL).
extern "C" __global__ void gbx_fp8_quant(const float *__restrict__ x, u8 *__restrict__ q, long long n,
                                         const u32 *__restrict__ amax, int margin, float *scale,
                                         float *scaleVec, int nvec) {
	gbx_pdl();
	float s = fp8Scale(__uint_as_float(*amax), margin);
	if (blockIdx.x == 0 && threadIdx.x == 0) *scale = s;
	long long stride = (long long)gridDim.x * blockDim.x;
	if (scaleVec)
		for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nvec; i += stride) scaleVec[i] = s;
	long long n4 = n / 4;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride) {
		float4 v = reinterpret_cast<const float4 *>(x)[i];
		u32 lo = f2e4m3x2(__fdiv_rn(v.x, s), __fdiv_rn(v.y, s));
		u32 hi = f2e4m3x2(__fdiv_rn(v.z, s), __fdiv_rn(v.w, s));
		reinterpret_cast<u32 *>(q)[i] = lo | (hi << 16);
	}
	for (long long i = n4 * 4 + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride)
		q[i] = e4m3q(x[i], s);
}

static_assert(GBX_FP8_SMALL_MAX <= 16 * GBX_FP8_SMALL_THREADS, "gbx_fp8_quant_small holds 16 values per thread");

// gbx_fp8_quant_small is gbx_amax followed by gbx_fp8_quant in one block,
// for small batches where each launch costs more than the work: every
// thread loads its (at most 16) values once into registers, the block
// reduces the amax, and the threads quantize what they hold (same results:
// a max is exact in any order). Launch with one block of
// GBX_FP8_SMALL_THREADS threads, for n <= GBX_FP8_SMALL_MAX and x 16-byte
// aligned.
extern "C" __global__ void gbx_fp8_quant_small(const float *__restrict__ x, u8 *__restrict__ q, long long n,
                                               int margin, float *scale, float *scaleVec, int nvec) {
	gbx_pdl();
	__shared__ float warpMax[32];
	const int per = 4; // float4 loads per thread
	float4 v[per];
	float m = 0.0f;
	long long n4 = n / 4;
#pragma unroll
	for (int k = 0; k < per; k++) {
		long long i = threadIdx.x + (long long)k * blockDim.x;
		if (i < n4) {
			v[k] = reinterpret_cast<const float4 *>(x)[i];
			m = fmaxf(m, fmaxf(fmaxf(fabsf(v[k].x), fabsf(v[k].y)), fmaxf(fabsf(v[k].z), fabsf(v[k].w))));
		}
	}
	long long tail = n4 * 4 + threadIdx.x; // the last n % 4 values, one per thread
	float t = tail < n ? x[tail] : 0.0f;
	m = fmaxf(m, fabsf(t));
	m = blockAmax(m, warpMax);
	if (threadIdx.x == 0) warpMax[0] = m;
	__syncthreads();
	float s = fp8Scale(warpMax[0], margin);
	if (threadIdx.x == 0) *scale = s;
	if (scaleVec)
		for (int i = threadIdx.x; i < nvec; i += blockDim.x) scaleVec[i] = s;
#pragma unroll
	for (int k = 0; k < per; k++) {
		long long i = threadIdx.x + (long long)k * blockDim.x;
		if (i < n4) {
			u32 lo = f2e4m3x2(__fdiv_rn(v[k].x, s), __fdiv_rn(v[k].y, s));
			u32 hi = f2e4m3x2(__fdiv_rn(v[k].z, s), __fdiv_rn(v[k].w, s));
			reinterpret_cast<u32 *>(q)[i] = lo | (hi << 16);
		}
	}
	if (tail < n) q[tail] = e4m3q(t, s);
}
