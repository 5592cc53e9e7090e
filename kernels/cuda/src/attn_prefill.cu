// attn_prefill.cu: gbx_attn_prefill, causal attention of a prefill step's
// rows over a BF16 or E4M3 paged cache with the queries on the products' M
// side (FlashAttention-2's layout; docs/prefill-attention.md). A module of
// its own, loaded only where it is asked for (Config.PrefillAttention).
//
// A block of GBX_ATTN_PF_WARPS warps takes one KV head and R = 16·W / G
// consecutive rows of the launch (G query heads a KV head): product row pr
// = 16w + i of warp w is row pr / G, query head pr mod G (past R·G:
// padding, zero). The block's rows are taken a sequence at a time (a run
// of rows of one sequence); for each, the KV blocks 0, 1, … up to the
// run's last position: K into shared memory as it is, V transposed, then
// per warp S = Q·Kᵀ (m16n8k16, two n-tiles of 8 positions, DIM/16
// k-steps), the online softmax per product row (positions past the row's
// own, and rows of the other sequences, weigh exp(−inf) = 0; a block with
// none of a row's positions leaves its state exactly as it was), P to
// BF16 in the A fragments' layout the S accumulators already have, and O
// += P·V (DIM/8 n-tiles). No splits: a row's sums run over its positions
// in one order that depends on its position alone, so its bits do not
// depend on the other rows of its block or launch (a chunk of a prompt
// gives each row the bits the whole prompt does). They are not the decode
// kernels' bits (their splits and warps sum in another order).
//
// E4M3 (FP8) as gbx_attn_mma does it: K and V widened to F16 exactly, a
// query times 2^k (its largest magnitude in [2^14, 2^15)) in F16, a score
// times K's scale of its position and 2^−k; V's scales folded into the
// weights over 2^E, E the exponent of the largest V scale among the row's
// positions so far (O in units of 2^E, rescaled when E grows, multiplied
// out at the end): all per product row, so a row's bits stay its own.

#include "lm.cuh"
#include "rows.cuh"

// gbx_pf_pow2 is 2^e for −126 ≤ e ≤ 127 (attn_mma.cu's gbx_pow2).
__device__ __forceinline__ float gbx_pf_pow2(int e) { return __int_as_float((e + 127) << 23); }

template <int DIM, bool FP8>
__device__ __forceinline__ void gbx_attn_prefill_t(const float *qkv, int stride, const void *cache,
                                                   const float *kvScale, int layer, int layers, int kvHeads, int G,
                                                   const int *pos, const int *seq, const int *btOff,
                                                   const int *blocks, int row0, int rows, float scale, float *out,
                                                   int outStride, void *yq, int fmt) {
	constexpr int W = GBX_ATTN_PF_WARPS, KS = DIM / 16, NO = DIM / 8, VS = GBX_KV_BLOCK + 2, ES = FP8 ? 1 : 2;
	const float NEG = __int_as_float(0xff800000); // -inf
	__shared__ __attribute__((aligned(16))) u16 ks[GBX_KV_BLOCK][DIM]; // K (BF16, or E4M3 as F16): position × dim
	__shared__ __attribute__((aligned(16))) u16 vt[DIM][VS];           // V transposed: dim × position
	__shared__ float kss[GBX_KV_BLOCK], vss[GBX_KV_BLOCK];             // E4M3: the positions' K and V scales
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int kh = blockIdx.x, R = 16 * W / G, b0 = row0 + blockIdx.y * R, b1 = gbx_imin(b0 + R, row0 + rows);
	// The lane's two product rows: g and g + 8 of the warp's 16.
	int prow[2], ph[2];
	bool pin[2];
#pragma unroll
	for (int h = 0; h < 2; h++) {
		const int pr = 16 * warp + g + 8 * h;
		prow[h] = b0 + pr / G, ph[h] = kh * G + pr % G;
		pin[h] = pr < R * G && prow[h] < b1;
	}
	// Q's A fragments: a0 rows g, dims 16k + 2t, +1; a1 row g + 8; a2, a3
	// dims + 8. qs[h]: the scores' scale of row h (E4M3: times 2^−k).
	u32 qa[KS][4];
	float qs[2] = {scale, scale};
	{
		float2 qv[KS][4];
		float amax[2] = {0.0f, 0.0f};
#pragma unroll
		for (int k = 0; k < KS; k++)
#pragma unroll
			for (int j = 0; j < 4; j++) {
				const int h = j & 1, d = 16 * k + 2 * t + 8 * (j >> 1);
				qv[k][j].x = qv[k][j].y = 0.0f;
				if (pin[h]) {
					const float *q = qkv + (long long)prow[h] * stride + (long long)ph[h] * DIM + d;
					qv[k][j].x = q[0], qv[k][j].y = q[1];
				}
				amax[h] = fmaxf(amax[h], fmaxf(fabsf(qv[k][j].x), fabsf(qv[k][j].y)));
			}
		float p2[2] = {1.0f, 1.0f};
		if (FP8) {
#pragma unroll
			for (int h = 0; h < 2; h++) {
				float a = fmaxf(amax[h], __shfl_xor_sync(0xffffffffu, amax[h], 1));
				a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, 2));
				// a's exponent ex (0: zero or subnormal; not finite: 255) and k = 141 − ex
				const int ex = (int)(__float_as_uint(a) >> 23), kq = ex == 0 || ex == 255 ? 0 : gbx_imin(126, 141 - ex);
				p2[h] = gbx_pf_pow2(kq), qs[h] = scale * gbx_pf_pow2(-kq);
			}
		}
#pragma unroll
		for (int k = 0; k < KS; k++)
#pragma unroll
			for (int j = 0; j < 4; j++) {
				const float p = p2[j & 1];
				qa[k][j] = FP8 ? gbx_f16x2(qv[k][j].x * p, qv[k][j].y * p) : gbx_bf16x2(qv[k][j].x, qv[k][j].y);
			}
	}
	int p0[2] = {pin[0] ? pos[prow[0]] : -1, pin[1] ? pos[prow[1]] : -1};
	int s0[2] = {pin[0] ? seq[prow[0]] : -1, pin[1] ? seq[prow[1]] : -1};
	float o[NO][4];
#pragma unroll
	for (int j = 0; j < NO; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
	float mh[2] = {NEG, NEG}, lh[2] = {0.0f, 0.0f};
	int eb[2] = {1, 1}; // E4M3: E's biased exponent per row (at least 1: V's scales are normal floats or below)
	const long long vOff = (long long)kvHeads * GBX_KV_BLOCK * DIM; // elements from K's run to V's
	const unsigned char *cb = (const unsigned char *)cache;
	// The block's runs of one sequence, in row order.
	for (int r = b0; r < b1;) {
		const int sq = seq[r];
		int last = pos[r], e = r + 1;
		while (e < b1 && seq[e] == sq) last = pos[e] > last ? pos[e] : last, e++;
		const int *bt = blocks + btOff[sq];
		const int nb = last / GBX_KV_BLOCK + 1;
		// cur[h]: whether the lane's product row h is of this run.
		const bool cur[2] = {s0[0] == sq && prow[0] >= r && prow[0] < e, s0[1] == sq && prow[1] >= r && prow[1] < e};
		for (int bi = 0; bi < nb; bi++) {
			const long long blk = bt[bi];
			const long long k0 = gbx_kv_off(blk, layer, layers, 0, kh, kvHeads, 0, DIM);
			// K as it is (E4M3: widened), V transposed; V past the run's
			// last position is zero (the cache may hold anything there).
			constexpr int CH = 16 / ES; // elements a 16-byte load
			for (int i = threadIdx.x; i < GBX_KV_BLOCK * DIM / CH; i += 32 * W) {
				const int p = i / (DIM / CH), d = CH * (i % (DIM / CH));
				const bool vin = GBX_KV_BLOCK * bi + p <= last;
				u32 kw[4], vw[4] = {0u, 0u, 0u, 0u};
				gbx_ldg128(kw, cb + ES * (k0 + p * DIM + d));
				if (vin) gbx_ldg128(vw, cb + ES * (k0 + vOff + p * DIM + d));
				u32 *kd = reinterpret_cast<u32 *>(&ks[p][d]);
				if (FP8) {
#pragma unroll
					for (int j = 0; j < 4; j++) {
						kd[2 * j] = gbx_e4m3x2_f16<0>(kw[j]), kd[2 * j + 1] = gbx_e4m3x2_f16<1>(kw[j]);
						const u32 v0 = gbx_e4m3x2_f16<0>(vw[j]), v1 = gbx_e4m3x2_f16<1>(vw[j]);
						vt[d + 4 * j][p] = (u16)v0, vt[d + 4 * j + 1][p] = (u16)(v0 >> 16);
						vt[d + 4 * j + 2][p] = (u16)v1, vt[d + 4 * j + 3][p] = (u16)(v1 >> 16);
					}
				} else {
#pragma unroll
					for (int j = 0; j < 4; j++) {
						kd[j] = kw[j];
						vt[d + 2 * j][p] = (u16)vw[j], vt[d + 2 * j + 1][p] = (u16)(vw[j] >> 16);
					}
				}
			}
			if (FP8 && threadIdx.x < GBX_KV_BLOCK) {
				const float *sp = kvScale + gbx_kv_soff(blk, layer, layers, 0, kh, kvHeads, threadIdx.x);
				kss[threadIdx.x] = sp[0], vss[threadIdx.x] = sp[kvHeads * GBX_KV_BLOCK];
			}
			__syncthreads();
			// S: sc[n] positions 8n + 2t, +1 of rows g (0, 1) and g + 8 (2, 3).
			float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
			for (int n = 0; n < 2; n++)
#pragma unroll
				for (int k = 0; k < KS; k++) {
					const u32 kb0 = *reinterpret_cast<const u32 *>(&ks[8 * n + g][16 * k + 2 * t]);
					const u32 kb1 = *reinterpret_cast<const u32 *>(&ks[8 * n + g][16 * k + 2 * t + 8]);
					if (FP8) gbx_mma_f16(sc[n], qa[k][0], qa[k][1], qa[k][2], qa[k][3], kb0, kb1);
					else gbx_mma(sc[n], qa[k][0], qa[k][1], qa[k][2], qa[k][3], kb0, kb1);
				}
			// in[n][j]: whether the position of x[n][j] is its row's.
			float x[2][4];
			bool in[2][4];
#pragma unroll
			for (int n = 0; n < 2; n++)
#pragma unroll
				for (int j = 0; j < 4; j++) {
					const int h = j >> 1, pb = 8 * n + 2 * t + (j & 1), p = GBX_KV_BLOCK * bi + pb;
					in[n][j] = cur[h] && p <= p0[h];
					x[n][j] = in[n][j] ? (FP8 ? sc[n][j] * kss[pb] : sc[n][j]) * qs[h] : NEG;
				}
			float cf[2];
#pragma unroll
			for (int h = 0; h < 2; h++) {
				float mt = fmaxf(fmaxf(x[0][2 * h], x[0][2 * h + 1]), fmaxf(x[1][2 * h], x[1][2 * h + 1]));
				mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
				mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
				// none: no position of the block is the row's; its state stays,
				// exactly (every lane of the warp runs the shuffles).
				const bool none = mt == NEG;
				const float mn = none ? mh[h] : fmaxf(mh[h], mt);
				cf[h] = none ? 1.0f : expf(mh[h] - mn); // 0 on the row's first block (mh = −inf)
#pragma unroll
				for (int n = 0; n < 2; n++)
#pragma unroll
					for (int c = 0; c < 2; c++) x[n][2 * h + c] = none ? 0.0f : expf(x[n][2 * h + c] - mn);
				float ps = (x[0][2 * h] + x[0][2 * h + 1]) + (x[1][2 * h] + x[1][2 * h + 1]);
				ps += __shfl_xor_sync(0xffffffffu, ps, 1);
				ps += __shfl_xor_sync(0xffffffffu, ps, 2);
				if (none) continue;
				lh[h] = lh[h] * cf[h] + ps;
				mh[h] = mn;
			}
			u32 pa0, pa1, pa2, pa3;
			if (FP8) {
				// The weights times V's scales over 2^(eb − 127), eb raised to the
				// exponent of the row's largest scale in the block first, O
				// rescaled with it.
#pragma unroll
				for (int h = 0; h < 2; h++) {
					float vm = 0.0f;
#pragma unroll
					for (int n = 0; n < 2; n++)
#pragma unroll
						for (int c = 0; c < 2; c++)
							if (in[n][2 * h + c]) vm = fmaxf(vm, vss[8 * n + 2 * t + c]);
					vm = fmaxf(vm, __shfl_xor_sync(0xffffffffu, vm, 1));
					vm = fmaxf(vm, __shfl_xor_sync(0xffffffffu, vm, 2));
					const int be = gbx_imin(253, (int)(__float_as_uint(vm) >> 23));
					if (be > eb[h]) { // O to units of 2^(be − 127) (0 where it would be below 2^-126 of them)
						cf[h] *= eb[h] - be >= -126 ? gbx_pf_pow2(eb[h] - be) : 0.0f;
						eb[h] = be;
					}
				}
#pragma unroll
				for (int n = 0; n < 2; n++)
#pragma unroll
					for (int j = 0; j < 4; j++)
						x[n][j] = in[n][j] ? x[n][j] * (vss[8 * n + 2 * t + (j & 1)] * gbx_pf_pow2(127 - eb[j >> 1])) : 0.0f;
				pa0 = gbx_f16x2(x[0][0], x[0][1]), pa1 = gbx_f16x2(x[0][2], x[0][3]);
				pa2 = gbx_f16x2(x[1][0], x[1][1]), pa3 = gbx_f16x2(x[1][2], x[1][3]);
			} else {
				// P in the A fragments: rows g, g + 8 of positions 2t, +1 (n-tile 0) and 8 + 2t, +1 (n-tile 1).
				pa0 = gbx_bf16x2(x[0][0], x[0][1]), pa1 = gbx_bf16x2(x[0][2], x[0][3]);
				pa2 = gbx_bf16x2(x[1][0], x[1][1]), pa3 = gbx_bf16x2(x[1][2], x[1][3]);
			}
#pragma unroll
			for (int j = 0; j < NO; j++) o[j][0] *= cf[0], o[j][1] *= cf[0], o[j][2] *= cf[1], o[j][3] *= cf[1];
#pragma unroll
			for (int j = 0; j < NO; j++) {
				const u32 vb0 = *reinterpret_cast<const u32 *>(&vt[8 * j + g][2 * t]);
				const u32 vb1 = *reinterpret_cast<const u32 *>(&vt[8 * j + g][2 * t + 8]);
				if (FP8) gbx_mma_f16(o[j], pa0, pa1, pa2, pa3, vb0, vb1);
				else gbx_mma(o[j], pa0, pa1, pa2, pa3, vb0, vb1);
			}
			__syncthreads(); // ks, vt and the scales read before the next block's
		}
		r = e;
	}
	// o[j]: row g dims 8j + 2t, +1 (0, 1), row g + 8 (2, 3).
#pragma unroll
	for (int h = 0; h < 2; h++) {
		if (!pin[h]) continue;
		const float ou = FP8 ? gbx_pf_pow2(eb[h] - 127) : 1.0f;
		const long long at = (long long)prow[h] * outStride + (long long)ph[h] * DIM;
#pragma unroll
		for (int j = 0; j < NO; j++)
#pragma unroll
			for (int c = 0; c < 2; c++) {
				const float v = __fdiv_rn(o[j][2 * h + c] * ou, lh[h]);
				out[at + 8 * j + 2 * t + c] = v;
				if (yq) gbx_st(yq, fmt, at + 8 * j + 2 * t + c, v);
			}
	}
}

// The entry points, a BF16 cache (kvScale unused) and an E4M3 one, by head
// dim: grid (KV heads, ⌈rows / R⌉), R = 16 · GBX_ATTN_PF_WARPS / G rows a
// block (G ≤ 16), 32 · GBX_ATTN_PF_WARPS threads; rows [row0, row0 + rows)
// of the step; out and, where yq is set, yq in fmt (the o projection's
// operand) as gbx_attn_mma writes them.
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS)
    gbx_attn_prefill64(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers, int kvHeads,
                       int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0, int rows,
                       float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                              rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS)
    gbx_attn_prefill128(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers, int kvHeads,
                        int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0, int rows,
                        float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                              rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS)
    gbx_attn_prefill64_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers, int kvHeads,
                            int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0, int rows,
                            float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                              rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS)
    gbx_attn_prefill128_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers, int kvHeads,
                             int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0, int rows,
                             float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                              rows, scale, out, outStride, yq, fmt);
}
