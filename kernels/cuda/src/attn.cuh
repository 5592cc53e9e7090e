// attn.cuh: what the decode-attention kernels (attention.cu's gbx_attn_dec,
// attn_mma.cu's gbx_attn_mma) share: their block's last step.
#ifndef GBX_ATTN_CUH
#define GBX_ATTN_CUH

#include "lm.cuh"
#include "rows.cuh"

// gbx_attn_warps_out merges the NW warps' states of one split, in warp
// order, and writes the block's results: m, l [NW·GP] (head h of warp w at
// w·GP + h) and o [NW·GP·DIM] (its unnormalised output, dim d at
// (w·GP + h)·DIM + d), in shared memory and complete (the caller
// synchronised). A warp without a KV block (m = −inf) weighs 0. Heads
// 0 … G−1 of KV head g of row r = row0 + rc, split s of ns: with one split,
// o / l to out (row stride outStride; with yq, also in fmt, the o
// projection's operand); otherwise o, m and l to partO and partML, indexed
// ((rc·heads + head)·maxSplits + s), for gbx_attn_reduce.
template <int NW, int DIM, int GP>
__device__ __forceinline__ void gbx_attn_warps_out(const float *m, const float *l, const float *o, int G, int kvHeads,
                                                   int g, int r, int rc, int s, int ns, int maxSplits, float *out,
                                                   int outStride, void *yq, int fmt, float *partO, float *partML) {
	const float NEG = __int_as_float(0xff800000); // -inf
	const int H = kvHeads * G;
	for (int k = threadIdx.x; k < G * DIM; k += blockDim.x) {
		const int h = k / DIM, d = k % DIM, hq = g * G + h;
		float M = NEG;
#pragma unroll
		for (int w = 0; w < NW; w++) M = fmaxf(M, m[w * GP + h]);
		float L = 0.0f, acc = 0.0f;
#pragma unroll
		for (int w = 0; w < NW; w++) {
			const float e = m[w * GP + h] == NEG ? 0.0f : expf(m[w * GP + h] - M);
			L = L + l[w * GP + h] * e;
			acc = acc + o[(w * GP + h) * DIM + d] * e;
		}
		if (ns == 1) {
			const long long at = (long long)r * outStride + (long long)hq * DIM + d;
			const float v = __fdiv_rn(acc, L);
			out[at] = v;
			if (yq) gbx_st(yq, fmt, at, v);
			continue;
		}
		const long long b = ((long long)rc * H + hq) * maxSplits + s;
		partO[b * DIM + d] = acc;
		if (d == 0) partML[2 * b] = M, partML[2 * b + 1] = L;
	}
}

#endif
