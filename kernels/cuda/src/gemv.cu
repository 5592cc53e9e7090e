// gemv.cu: a linear layer of a few rows (decode at small batch) on the
// tensor cores, streaming the weights once:
//
//	y[r, c] = ((Σ_k x[r, k]·W[c, k]) · xs[r]) · ws[c] + bias[c]
//
// for x [m, k] and W [n, k] both BF16, both F16, or both E4M3 (fp8's
// per-row activation scales xs and per-channel weight scales ws), m ≤
// GBX_GEMV_MAX_M; xs, ws and bias may be NULL. The order of the epilogue is
// gbx_scale_bias's.
//
// A block computes GBX_GEMV_ROWS = 16 output channels for every row; its
// warps cut k into contiguous ranges. A warp step covers 64 bytes of each of
// the 16 weight rows: thread (g = lane/4, t = lane%4) loads 16 bytes of rows
// g and g + 8 and 16 bytes of x's row g (zero for g ≥ m), at byte 16·t of
// the step, and feeds them to two mma.sync: words 0–1 as the first's
// k-slots, words 2–3 as the second's. The k-slots of A (weights) and B (x)
// a thread holds are the same physical k, so the product is the dot
// product under a permutation of k — the loads stay 16 bytes wide and
// need no shuffling. The warps' partial sums meet in shared memory in warp
// order: a row's result does not depend on the other rows of the batch.

#include "common.cuh"

// gbx_mma_op: c += a·b, one mma.sync of FMT's shape: m16n8k16 for BF16 and
// F16, m16n8k32 for E4M3 (fp32 accumulators).
template <int FMT>
__device__ __forceinline__ void gbx_mma_op(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
	if (FMT == GBX_FMT_BF16) gbx_mma(c, a0, a1, a2, a3, b0, b1);
	else if (FMT == GBX_FMT_F16) gbx_mma_f16(c, a0, a1, a2, a3, b0, b1);
	else gbx_mma_e4m3(c, a0, a1, a2, a3, b0, b1);
}

template <int FMT>
__device__ __forceinline__ void gbx_gemv_fmt(const u8 *x, const u8 *w, const float *xs, const float *ws,
                                             const float *bias, float *y, int m, int n, int kb) {
	constexpr int NW = GBX_GEMV_THREADS / 32, U = 4;
	__shared__ float red[NW][GBX_GEMV_ROWS][GBX_GEMV_MAX_M];
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int n0 = blockIdx.x * GBX_GEMV_ROWS;
	// kb bytes a row, kb / 64 steps; warp w takes steps [s0, s1).
	const int steps = kb >> 6, per = (steps + NW - 1) / NW;
	const int s0 = gbx_imin(warp * per, steps), s1 = gbx_imin(s0 + per, steps);
	const u8 *w0 = w + (long long)(n0 + g) * kb + 16 * t, *w1 = w0 + 8LL * kb;
	const bool hasX = g < m;
	const u8 *xr = x + (long long)(hasX ? g : 0) * kb + 16 * t;
	float c0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, c1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
	int s = s0;
	// lo, hi: weight rows g and g + 8; v: x's row g. The first U steps'
	// weights are loaded before the wait (gbx_pdl_weights_first), x after.
	u32 lo[U][4], hi[U][4];
	if (s + U <= s1) {
#pragma unroll
		for (int u = 0; u < U; u++) {
			gbx_ldg128(lo[u], w0 + 64LL * (s + u));
			gbx_ldg128(hi[u], w1 + 64LL * (s + u));
		}
	}
	gbx_pdl();
	for (; s + U <= s1; s += U) {
		u32 v[U][4];
#pragma unroll
		for (int u = 0; u < U; u++) {
			if (s != s0) {
				gbx_ldg128(lo[u], w0 + 64LL * (s + u));
				gbx_ldg128(hi[u], w1 + 64LL * (s + u));
			}
			if (hasX) gbx_ldg128(v[u], xr + 64LL * (s + u));
			else v[u][0] = v[u][1] = v[u][2] = v[u][3] = 0u;
		}
#pragma unroll
		for (int u = 0; u < U; u++) {
			gbx_mma_op<FMT>(c0, lo[u][0], hi[u][0], lo[u][1], hi[u][1], v[u][0], v[u][1]);
			gbx_mma_op<FMT>(c1, lo[u][2], hi[u][2], lo[u][3], hi[u][3], v[u][2], v[u][3]);
		}
	}
	for (; s < s1; s++) {
		u32 lo[4], hi[4], v[4] = {0u, 0u, 0u, 0u};
		gbx_ldg128(lo, w0 + 64LL * s);
		gbx_ldg128(hi, w1 + 64LL * s);
		if (hasX) gbx_ldg128(v, xr + 64LL * s);
		gbx_mma_op<FMT>(c0, lo[0], hi[0], lo[1], hi[1], v[0], v[1]);
		gbx_mma_op<FMT>(c1, lo[2], hi[2], lo[3], hi[3], v[2], v[3]);
	}
	// c[0], c[1]: channel g, rows 2t and 2t + 1; c[2], c[3]: channel g + 8.
	red[warp][g][2 * t] = c0[0] + c1[0];
	red[warp][g][2 * t + 1] = c0[1] + c1[1];
	red[warp][g + 8][2 * t] = c0[2] + c1[2];
	red[warp][g + 8][2 * t + 1] = c0[3] + c1[3];
	__syncthreads();
	const int i = threadIdx.x / GBX_GEMV_MAX_M, r = threadIdx.x % GBX_GEMV_MAX_M;
	if (i >= GBX_GEMV_ROWS || r >= m) return;
	float v = 0.0f;
#pragma unroll
	for (int k = 0; k < NW; k++) v += red[k][i][r];
	const int c = n0 + i;
	if (xs) v = v * xs[r];
	if (ws) v = v * ws[c];
	if (bias) v = v + bias[c];
	y[(long long)r * n + c] = v;
}

// gbx_gemv: grid n / GBX_GEMV_ROWS, GBX_GEMV_THREADS threads; fmt is
// GBX_FMT_BF16, GBX_FMT_F16 or GBX_FMT_E4M3 (x's and W's); kb is a row's
// bytes (k·2 or k), a multiple of 64; x and w 16-byte aligned.
extern "C" __global__ void __launch_bounds__(GBX_GEMV_THREADS)
    gbx_gemv(const void *x, const void *w, int fmt, const float *xs, const float *ws, const float *bias, float *y,
             int m, int n, int kb) {
	gbx_pdl_weights_first(); // gbx_gemv_fmt waits
	switch (fmt) {
	case GBX_FMT_BF16: gbx_gemv_fmt<GBX_FMT_BF16>((const u8 *)x, (const u8 *)w, xs, ws, bias, y, m, n, kb); break;
	case GBX_FMT_F16: gbx_gemv_fmt<GBX_FMT_F16>((const u8 *)x, (const u8 *)w, xs, ws, bias, y, m, n, kb); break;
	case GBX_FMT_E4M3: gbx_gemv_fmt<GBX_FMT_E4M3>((const u8 *)x, (const u8 *)w, xs, ws, bias, y, m, n, kb); break;
	default: gbx_pdl();
	}
}
