// attn.cuh: what the decode-attention kernels (attention.cu's gbx_attn_dec,
// attn_mma.cu's gbx_attn_mma) share: their block's last step.
#ifndef GBX_ATTN_CUH
#define GBX_ATTN_CUH

#include "lm.cuh"
#include "rows.cuh"

// gbx_attn_warps_w weighs the NW warps' states of one split for the merge:
// for each column c < nc (a query head) of m, l [NW·GP] (column c of warp w
// at w·GP + c), in shared memory and complete (the caller synchronised),
// M[c], the column's maximum of m over the warps, e[w·GP + c] = exp(m − M)
// (0 for a warp without a KV block, m = −inf), and L[c] = Σ_w l · e in warp
// order: a thread a column, once, where each output element would take NW
// exponentials. The caller synchronises before gbx_attn_warps_out reads them.
template <int NW, int GP>
__device__ __forceinline__ void gbx_attn_warps_w(const float *m, const float *l, int nc, float *M, float *e, float *L) {
	const float NEG = __int_as_float(0xff800000); // -inf
	for (int c = threadIdx.x; c < nc; c += blockDim.x) {
		float mx = NEG;
#pragma unroll
		for (int w = 0; w < NW; w++) mx = fmaxf(mx, m[w * GP + c]);
		float s = 0.0f;
#pragma unroll
		for (int w = 0; w < NW; w++) {
			const float x = m[w * GP + c] == NEG ? 0.0f : expf(m[w * GP + c] - mx);
			e[w * GP + c] = x;
			s = s + l[w * GP + c] * x;
		}
		M[c] = mx, L[c] = s;
	}
}

// gbx_attn_warps_out merges the NW warps' states of one split, in warp
// order, and writes the block's results: the maxima M, weights e and sums
// L of gbx_attn_warps_w (head h of warp w at w·GP + h) and o, the warps'
// unnormalised outputs (dim d of head h of warp w at (w·GP + h)·RS + d, +
// d/32 with SKEW: a layout the writer picks against bank conflicts), in
// shared memory and complete. Heads 0 … G−1 of KV head g of row r = row0 +
// rc, split s of ns: with one split, o / L to out (row stride outStride;
// with yq, also in fmt, the o projection's operand); otherwise o, M and L to
// partO and partML, indexed ((rc·heads + head)·maxSplits + s), for
// gbx_attn_reduce.
template <int NW, int DIM, int GP, int RS, bool SKEW>
__device__ __forceinline__ void gbx_attn_warps_out(const float *M, const float *e, const float *L, const float *o, int G,
                                                   int kvHeads, int g, int r, int rc, int s, int ns, int maxSplits,
                                                   float *out, int outStride, void *yq, int fmt, float *partO,
                                                   float *partML) {
	const int H = kvHeads * G;
	for (int k = threadIdx.x; k < G * DIM; k += blockDim.x) {
		const int h = k / DIM, d = k % DIM, hq = g * G + h, od = d + (SKEW ? d / 32 : 0);
		float acc = 0.0f;
#pragma unroll
		for (int w = 0; w < NW; w++) acc = acc + o[(w * GP + h) * RS + od] * e[w * GP + h];
		if (ns == 1) {
			const long long at = (long long)r * outStride + (long long)hq * DIM + d;
			const float v = __fdiv_rn(acc, L[h]);
			out[at] = v;
			if (yq) gbx_st(yq, fmt, at, v);
			continue;
		}
		const long long b = ((long long)rc * H + hq) * maxSplits + s;
		partO[b * DIM + d] = acc;
		if (d == 0) partML[2 * b] = M[h], partML[2 * b + 1] = L[h];
	}
}

#endif
