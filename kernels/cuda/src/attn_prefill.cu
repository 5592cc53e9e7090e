// attn_prefill.cu: gbx_attn_prefill, causal attention of a prefill step's
// rows over a BF16 or E4M3 paged cache with the queries on the products' M
// side (FlashAttention-2's layout; docs/prefill-attention.md). A module of
// its own, loaded by the first step with a prefill chunk (not with
// Config.NoPrefillAttention).
//
// A block of GBX_ATTN_PF_WARPS warps takes one KV head and R = 16·W / G
// consecutive rows of the launch (G query heads a KV head): product row pr =
// 16w + i of warp w is row pr / G, query head pr mod G (past R·G: padding,
// zero). The block's rows are taken a sequence at a time (a run of rows of one
// sequence); for each, the KV blocks 0, 1, … up to the run's last position (a
// tile of one cache block's 16 positions, or of two in the _t2 entry points:
// the same sums, half the barriers; the next tile's loads in flight while a
// tile's products run): K and V into shared memory as the cache holds them
// (E4M3 widened to F16), then per warp and cache block S = Q·Kᵀ (m16n8k16, two
// n-tiles of 8 positions, DIM/16 k-steps, K's fragments by ldmatrix), the
// online softmax per product row (positions past the row's own, and rows of
// the other sequences, weigh exp(−inf) = 0; a block with none of a row's
// positions leaves its state exactly as it was), P to BF16 in the A fragments'
// layout the S accumulators already have, and O += P·V (DIM/8 n-tiles, V's
// fragments by ldmatrix.trans). Blocks are launched the heaviest first (a
// prompt's last rows). No splits: a row's sums run over its positions in one
// order that depends on its position alone, so its bits do not depend on the
// other rows of its block or launch (a chunk of a prompt gives each row the
// bits the whole prompt does). They are not the decode kernels' bits (their
// splits and warps sum in another order).
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

// gbx_pf_widen stores the 8 E4M3 values of w0, w1 at shared address s as
// 8 F16 (16 bytes, exactly).
__device__ __forceinline__ void gbx_pf_widen(u32 s, u32 w0, u32 w1) {
	gbx_sts128(s, gbx_e4m3x2_f16<0>(w0), gbx_e4m3x2_f16<1>(w0), gbx_e4m3x2_f16<0>(w1), gbx_e4m3x2_f16<1>(w1));
}

template <int DIM, bool FP8, int TB>
__device__ __forceinline__ void gbx_attn_prefill_t(const float *qkv, int stride, const void *cache,
                                                   const float *kvScale, int layer, int layers, int kvHeads, int G,
                                                   const int *pos, const int *seq, const int *btOff,
                                                   const int *blocks, int row0, int rows, float scale, float *out,
                                                   int outStride, void *yq, int fmt) {
	constexpr int W = GBX_ATTN_PF_WARPS, KS = DIM / 16, NO = DIM / 8, P = GBX_KV_BLOCK, TP = TB * P, LD = DIM + 8, ES = FP8 ? 1 : 2;
	constexpr int CPR = DIM / 8, NCH = TP * CPR / (32 * W); // 8-element chunks a position's row, a thread's a tile (K and V each)
	static_assert(TP * CPR % (32 * W) == 0 && TP <= 32 * W, "a tile's chunks are shared evenly by the block's threads");
	const float NEG = __int_as_float(0xff800000); // -inf
	// Two slots of a tile (TB cache blocks, TP positions): K and V (BF16, or
	// E4M3 widened to F16) as the cache holds them, position × dim, rows
	// padded to DIM + 8 elements so that ldmatrix's 8 rows fall in distinct
	// banks.
	__shared__ __attribute__((aligned(16))) u16 ks[2][TP][LD], vs[2][TP][LD];
	__shared__ float kss[2][TP], vss[2][TP]; // E4M3: the positions' K and V scales
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	// The heaviest tiles (a prompt's last rows, the longest contexts) first.
	const int kh = blockIdx.x, R = 16 * W / G, b0 = row0 + (gridDim.y - 1 - blockIdx.y) * R, b1 = gbx_imin(b0 + R, row0 + rows);
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
	const long long vOff = (long long)kvHeads * P * DIM; // elements from K's run to V's
	const unsigned char *cb = (const unsigned char *)cache;
	// fetch starts tile ti of a run (cache blocks bt[TB·ti] on, nb of them
	// in all) into slot sl, a thread's NCH chunks of K and of V, V past the
	// run's last position zero (the cache may hold anything there; a block
	// past nb is not read): BF16 by cp.async, E4M3 into registers (kr, vr
	// and the scales) that put widens into the slot once the tile before it
	// is done.
	u32 kr[NCH][2], vr[NCH][2];
	float ksr = 0.0f, vsr = 0.0f;
	// E4M3 in tiles of two blocks (A8) holds no registers across the
	// products instead: fetch copies the tile in as it is by cp.async, 16
	// bytes a chunk (rk, rv and the scales, rks, rvs), and put widens into
	// the slot what each thread copied itself (no barrier between).
	constexpr bool A8 = FP8 && TB > 1;
	constexpr int RCPR = DIM / 16, RNCH = TP * RCPR / (32 * W);
	static_assert(!A8 || TP * RCPR % (32 * W) == 0, "an E4M3 tile's chunks are shared evenly by the block's threads");
	__shared__ __attribute__((aligned(16))) unsigned char rk[A8 ? TP : 1][A8 ? DIM : 16], rv[A8 ? TP : 1][A8 ? DIM : 16];
	__shared__ float rks[A8 ? TP : 1], rvs[A8 ? TP : 1];
	auto fetch = [&](const int *bt, int nb, int ti, int last, int sl) {
		if (A8) {
#pragma unroll
			for (int c = 0; c < RNCH; c++) {
				const int i = threadIdx.x + 32 * W * c, p = i / RCPR, d = 16 * (i % RCPR), bi = TB * ti + p / P;
				if (bi >= nb) continue; // positions no row has: K masked, V zero (put)
				const unsigned char *kg = cb + gbx_kv_off(bt[bi], layer, layers, 0, kh, kvHeads, p % P, DIM) + d;
				gbx_cp16(gbx_smem_addr(&rk[p][d]), kg);
				if (TP * ti + p <= last) gbx_cp16(gbx_smem_addr(&rv[p][d]), kg + vOff);
			}
			if (threadIdx.x < TP && TB * ti + threadIdx.x / P < nb) {
				const float *sp =
				    kvScale + gbx_kv_soff(bt[TB * ti + threadIdx.x / P], layer, layers, 0, kh, kvHeads, threadIdx.x % P);
				gbx_cp4(gbx_smem_addr(&rks[threadIdx.x]), sp);
				gbx_cp4(gbx_smem_addr(&rvs[threadIdx.x]), sp + kvHeads * P);
			}
			gbx_cp_commit();
			return;
		}
#pragma unroll
		for (int c = 0; c < NCH; c++) {
			const int i = threadIdx.x + 32 * W * c, p = i / CPR, d = 8 * (i % CPR), bi = TB * ti + p / P;
			const bool vin = TP * ti + p <= last;
			if (bi >= nb) { // positions no row has: K masked, V zero
				if (FP8) kr[c][0] = kr[c][1] = vr[c][0] = vr[c][1] = 0u;
				else gbx_sts128(gbx_smem_addr(&vs[sl][p][d]), 0u, 0u, 0u, 0u);
				continue;
			}
			const long long k0 = gbx_kv_off(bt[bi], layer, layers, 0, kh, kvHeads, p % P, DIM) + d;
			const unsigned char *kg = cb + ES * k0, *vg = kg + ES * vOff;
			if (FP8) {
				const uint2 kw = *reinterpret_cast<const uint2 *>(kg);
				kr[c][0] = kw.x, kr[c][1] = kw.y, vr[c][0] = vr[c][1] = 0u;
				if (vin) {
					const uint2 vw = *reinterpret_cast<const uint2 *>(vg);
					vr[c][0] = vw.x, vr[c][1] = vw.y;
				}
			} else {
				gbx_cp16(gbx_smem_addr(&ks[sl][p][d]), kg);
				if (vin) gbx_cp16(gbx_smem_addr(&vs[sl][p][d]), vg);
				else gbx_sts128(gbx_smem_addr(&vs[sl][p][d]), 0u, 0u, 0u, 0u);
			}
		}
		if (FP8 && threadIdx.x < TP) {
			const int bi = TB * ti + threadIdx.x / P;
			ksr = vsr = 0.0f;
			if (bi < nb) {
				const float *sp = kvScale + gbx_kv_soff(bt[bi], layer, layers, 0, kh, kvHeads, threadIdx.x % P);
				ksr = sp[0], vsr = sp[kvHeads * P];
			}
		}
		if (!FP8) gbx_cp_commit();
	};
	auto put = [&](int ti, int last, int sl) {
		if (!FP8 || A8) gbx_cp_wait<0>();
		if (!FP8) return;
		if (A8) {
#pragma unroll
			for (int c = 0; c < RNCH; c++) {
				const int i = threadIdx.x + 32 * W * c, p = i / RCPR, d = 16 * (i % RCPR);
				u32 w[4];
				gbx_lds128(w, gbx_smem_addr(&rk[p][d]));
				gbx_pf_widen(gbx_smem_addr(&ks[sl][p][d]), w[0], w[1]);
				gbx_pf_widen(gbx_smem_addr(&ks[sl][p][d + 8]), w[2], w[3]);
				w[0] = w[1] = w[2] = w[3] = 0u;
				if (TP * ti + p <= last) gbx_lds128(w, gbx_smem_addr(&rv[p][d]));
				gbx_pf_widen(gbx_smem_addr(&vs[sl][p][d]), w[0], w[1]);
				gbx_pf_widen(gbx_smem_addr(&vs[sl][p][d + 8]), w[2], w[3]);
			}
			if (threadIdx.x < TP) kss[sl][threadIdx.x] = rks[threadIdx.x], vss[sl][threadIdx.x] = rvs[threadIdx.x];
			return;
		}
#pragma unroll
		for (int c = 0; c < NCH; c++) {
			const int i = threadIdx.x + 32 * W * c, p = i / CPR, d = 8 * (i % CPR);
			gbx_pf_widen(gbx_smem_addr(&ks[sl][p][d]), kr[c][0], kr[c][1]);
			gbx_pf_widen(gbx_smem_addr(&vs[sl][p][d]), vr[c][0], vr[c][1]);
		}
		if (threadIdx.x < TP) kss[sl][threadIdx.x] = ksr, vss[sl][threadIdx.x] = vsr;
	};
	// The block's runs of one sequence, in row order; a run's tiles in
	// order, the next one's loads in flight while this one's products run
	// (one barrier a tile: a slot is written only after every warp is past
	// the tile that read it last).
	for (int r = b0; r < b1;) {
		const int sq = seq[r];
		int last = pos[r], e = r + 1;
		while (e < b1 && seq[e] == sq) last = pos[e] > last ? pos[e] : last, e++;
		const int *bt = blocks + btOff[sq];
		const int nb = last / P + 1, nt = (nb + TB - 1) / TB;
		// cur[h]: whether the lane's product row h is of this run.
		const bool cur[2] = {s0[0] == sq && prow[0] >= r && prow[0] < e, s0[1] == sq && prow[1] >= r && prow[1] < e};
		fetch(bt, nb, 0, last, 0);
		put(0, last, 0);
		__syncthreads();
		for (int ti = 0; ti < nt; ti++) {
			const int sl = ti & 1, mi = lane >> 3, mr = lane & 7; // ldmatrix: the lane's matrix and row
			if (ti + 1 < nt) fetch(bt, nb, ti + 1, last, sl ^ 1);
			// The tile's cache blocks one after the other (u: rows P·u on of
			// the slot), each as a tile of its own would be: the same bits
			// whatever TB.
#pragma unroll
			for (int u = 0; u < TB; u++) {
				const int bi = TB * ti + u;
				if (bi >= nb) break;
				// S: sc[n] positions 8n + 2t, +1 of rows g (0, 1) and g + 8 (2, 3);
				// K's B fragments two k-steps an ldmatrix (matrix mi: dims 8 mi on).
				float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
				for (int n = 0; n < 2; n++)
#pragma unroll
					for (int k2 = 0; k2 < KS / 2; k2++) {
						u32 kb[4];
						gbx_ldsm_x4(kb, gbx_smem_addr(&ks[sl][P * u + 8 * n + mr][32 * k2 + 8 * mi]));
#pragma unroll
						for (int h = 0; h < 2; h++) {
							const int k = 2 * k2 + h;
							if (FP8) gbx_mma_f16(sc[n], qa[k][0], qa[k][1], qa[k][2], qa[k][3], kb[2 * h], kb[2 * h + 1]);
							else gbx_mma(sc[n], qa[k][0], qa[k][1], qa[k][2], qa[k][3], kb[2 * h], kb[2 * h + 1]);
						}
					}
				// in[n][j]: whether the position of x[n][j] is its row's.
				float x[2][4];
				bool in[2][4];
#pragma unroll
				for (int n = 0; n < 2; n++)
#pragma unroll
					for (int j = 0; j < 4; j++) {
						const int h = j >> 1, pb = 8 * n + 2 * t + (j & 1), p = P * bi + pb;
						in[n][j] = cur[h] && p <= p0[h];
						x[n][j] = in[n][j] ? (FP8 ? sc[n][j] * kss[sl][P * u + pb] : sc[n][j]) * qs[h] : NEG;
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
								if (in[n][2 * h + c]) vm = fmaxf(vm, vss[sl][P * u + 8 * n + 2 * t + c]);
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
							x[n][j] = in[n][j] ? x[n][j] * (vss[sl][P * u + 8 * n + 2 * t + (j & 1)] * gbx_pf_pow2(127 - eb[j >> 1])) : 0.0f;
					pa0 = gbx_f16x2(x[0][0], x[0][1]), pa1 = gbx_f16x2(x[0][2], x[0][3]);
					pa2 = gbx_f16x2(x[1][0], x[1][1]), pa3 = gbx_f16x2(x[1][2], x[1][3]);
				} else {
					// P in the A fragments: rows g, g + 8 of positions 2t, +1 (n-tile 0) and 8 + 2t, +1 (n-tile 1).
					pa0 = gbx_bf16x2(x[0][0], x[0][1]), pa1 = gbx_bf16x2(x[0][2], x[0][3]);
					pa2 = gbx_bf16x2(x[1][0], x[1][1]), pa3 = gbx_bf16x2(x[1][2], x[1][3]);
				}
#pragma unroll
				for (int j = 0; j < NO; j++) o[j][0] *= cf[0], o[j][1] *= cf[0], o[j][2] *= cf[1], o[j][3] *= cf[1];
				// O += P·V: V's B fragments two n-tiles an ldmatrix.trans (matrix mi:
				// positions 8 (mi & 1) on, dims 8 (mi >> 1) on).
#pragma unroll
				for (int j2 = 0; j2 < NO / 2; j2++) {
					u32 vb[4];
					gbx_ldsm_x4_t(vb, gbx_smem_addr(&vs[sl][P * u + 8 * (mi & 1) + mr][16 * j2 + 8 * (mi >> 1)]));
#pragma unroll
					for (int h = 0; h < 2; h++) {
						if (FP8) gbx_mma_f16(o[2 * j2 + h], pa0, pa1, pa2, pa3, vb[2 * h], vb[2 * h + 1]);
						else gbx_mma(o[2 * j2 + h], pa0, pa1, pa2, pa3, vb[2 * h], vb[2 * h + 1]);
					}
				}
			}
			if (ti + 1 < nt) put(ti + 1, last, sl ^ 1);
			__syncthreads(); // the slot read, the next one written
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
// dim, tiles of one cache block and (_t2) of two: grid (KV heads, ⌈rows /
// R⌉), R = 16 · GBX_ATTN_PF_WARPS / G rows a block (G ≤ 16), 32 ·
// GBX_ATTN_PF_WARPS threads; rows [row0, row0 + rows) of the step; out and,
// where yq is set, yq in fmt (the o projection's operand) as gbx_attn_mma
// writes them.
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill64(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                       int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0,
                       int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64, false, 1>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                 rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill128(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                        int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0,
                        int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128, false, 1>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                  rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill64_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                            int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks,
                            int row0, int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64, true, 1>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill128_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                             int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks,
                             int row0, int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128, true, 1>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                 rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill64_t2(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                          int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0,
                          int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64, false, 2>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                 rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill128_t2(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                           int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks,
                           int row0, int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128, false, 2>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                  rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill64_e4m3_t2(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                               int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks,
                               int row0, int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64, true, 2>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill128_e4m3_t2(const float *qkv, int stride, const void *cache, const float *kvScale, int layer,
                                int layers, int kvHeads, int G, const int *pos, const int *seq, const int *btOff,
                                const int *blocks, int row0, int rows, float scale, float *out, int outStride, void *yq,
                                int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128, true, 2>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                 rows, scale, out, outStride, yq, fmt);
}
