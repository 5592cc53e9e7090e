// attn_prefill.cu: gbx_attn_prefill, causal attention of a prefill step's
// rows over a BF16 paged cache with the queries on the products' M side
// (FlashAttention-2's layout; docs/prefill-attention.md). A module of its
// own, loaded only where it is asked for (LMBench.AttnPrefill).
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

#include "lm.cuh"
#include "rows.cuh"

template <int DIM>
__device__ __forceinline__ void gbx_attn_prefill_t(const float *qkv, int stride, const u16 *cache, int layer, int layers,
                                                   int kvHeads, int G, const int *pos, const int *seq,
                                                   const int *btOff, const int *blocks, int row0, int rows,
                                                   float scale, float *out, int outStride, void *yq, int fmt) {
	constexpr int W = GBX_ATTN_PF_WARPS, KS = DIM / 16, NO = DIM / 8, VS = GBX_KV_BLOCK + 2;
	const float NEG = __int_as_float(0xff800000); // -inf
	__shared__ __attribute__((aligned(16))) u16 ks[GBX_KV_BLOCK][DIM]; // K: position × dim
	__shared__ __attribute__((aligned(16))) u16 vt[DIM][VS];           // V transposed: dim × position
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
	// dims + 8.
	u32 qa[KS][4];
#pragma unroll
	for (int k = 0; k < KS; k++)
#pragma unroll
		for (int j = 0; j < 4; j++) {
			const int h = j & 1, d = 16 * k + 2 * t + 8 * (j >> 1);
			float x0 = 0.0f, x1 = 0.0f;
			if (pin[h]) {
				const float *q = qkv + (long long)prow[h] * stride + (long long)ph[h] * DIM + d;
				x0 = q[0], x1 = q[1];
			}
			qa[k][j] = gbx_bf16x2(x0, x1);
		}
	int p0[2] = {pin[0] ? pos[prow[0]] : -1, pin[1] ? pos[prow[1]] : -1};
	int s0[2] = {pin[0] ? seq[prow[0]] : -1, pin[1] ? seq[prow[1]] : -1};
	float o[NO][4];
#pragma unroll
	for (int j = 0; j < NO; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
	float mh[2] = {NEG, NEG}, lh[2] = {0.0f, 0.0f};
	const long long vOff = (long long)kvHeads * GBX_KV_BLOCK * DIM; // elements from K's run to V's
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
			const u16 *kp = cache + gbx_kv_off(blk, layer, layers, 0, kh, kvHeads, 0, DIM);
			// K as it is, V transposed; V past the run's last position is
			// zero (the cache may hold anything there).
			for (int i = threadIdx.x; i < GBX_KV_BLOCK * DIM / 8; i += 32 * W) {
				const int p = i / (DIM / 8), d = 8 * (i % (DIM / 8));
				u32 kw[4], vw[4];
				gbx_ldg128(kw, kp + p * DIM + d);
				u32 *kd = reinterpret_cast<u32 *>(&ks[p][d]);
				kd[0] = kw[0], kd[1] = kw[1], kd[2] = kw[2], kd[3] = kw[3];
				if (GBX_KV_BLOCK * bi + p <= last) gbx_ldg128(vw, kp + vOff + p * DIM + d);
				else vw[0] = vw[1] = vw[2] = vw[3] = 0u;
#pragma unroll
				for (int j = 0; j < 4; j++) vt[d + 2 * j][p] = (u16)vw[j], vt[d + 2 * j + 1][p] = (u16)(vw[j] >> 16);
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
					gbx_mma(sc[n], qa[k][0], qa[k][1], qa[k][2], qa[k][3], kb0, kb1);
				}
			float x[2][4];
#pragma unroll
			for (int n = 0; n < 2; n++)
#pragma unroll
				for (int j = 0; j < 4; j++) {
					const int h = j >> 1, p = GBX_KV_BLOCK * bi + 8 * n + 2 * t + (j & 1);
					x[n][j] = cur[h] && p <= p0[h] ? sc[n][j] * scale : NEG;
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
#pragma unroll
			for (int j = 0; j < NO; j++) o[j][0] *= cf[0], o[j][1] *= cf[0], o[j][2] *= cf[1], o[j][3] *= cf[1];
			// P in the A fragments: rows g, g + 8 of positions 2t, +1 (n-tile 0) and 8 + 2t, +1 (n-tile 1).
			const u32 pa0 = gbx_bf16x2(x[0][0], x[0][1]), pa1 = gbx_bf16x2(x[0][2], x[0][3]);
			const u32 pa2 = gbx_bf16x2(x[1][0], x[1][1]), pa3 = gbx_bf16x2(x[1][2], x[1][3]);
#pragma unroll
			for (int j = 0; j < NO; j++) {
				const u32 vb0 = *reinterpret_cast<const u32 *>(&vt[8 * j + g][2 * t]);
				const u32 vb1 = *reinterpret_cast<const u32 *>(&vt[8 * j + g][2 * t + 8]);
				gbx_mma(o[j], pa0, pa1, pa2, pa3, vb0, vb1);
			}
			__syncthreads(); // ks and vt read before the next block's
		}
		r = e;
	}
	// o[j]: row g dims 8j + 2t, +1 (0, 1), row g + 8 (2, 3).
#pragma unroll
	for (int h = 0; h < 2; h++) {
		if (!pin[h]) continue;
		const long long at = (long long)prow[h] * outStride + (long long)ph[h] * DIM;
#pragma unroll
		for (int j = 0; j < NO; j++)
#pragma unroll
			for (int c = 0; c < 2; c++) {
				const float v = __fdiv_rn(o[j][2 * h + c], lh[h]);
				out[at + 8 * j + 2 * t + c] = v;
				if (yq) gbx_st(yq, fmt, at + 8 * j + 2 * t + c, v);
			}
	}
}

// The entry points, by head dim: grid (KV heads, ⌈rows / R⌉), R = 16 ·
// GBX_ATTN_PF_WARPS / G rows a block (G ≤ 16), 32 · GBX_ATTN_PF_WARPS
// threads; rows [row0, row0 + rows) of the step; out and, where yq is
// set, yq in fmt (the o projection's operand) as gbx_attn_mma writes them.
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS)
    gbx_attn_prefill64(const float *qkv, int stride, const void *cache, int layer, int layers, int kvHeads, int G,
                       const int *pos, const int *seq, const int *btOff, const int *blocks, int row0, int rows,
                       float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64>(qkv, stride, (const u16 *)cache, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                       rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS)
    gbx_attn_prefill128(const float *qkv, int stride, const void *cache, int layer, int layers, int kvHeads, int G,
                        const int *pos, const int *seq, const int *btOff, const int *blocks, int row0, int rows,
                        float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128>(qkv, stride, (const u16 *)cache, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                        rows, scale, out, outStride, yq, fmt);
}
