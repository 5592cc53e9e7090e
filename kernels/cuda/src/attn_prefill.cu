// attn_prefill.cu: gbx_attn_prefill, causal attention of a prefill step's
// rows over a BF16 or E4M3 paged cache with the queries on the products' M
// side (FlashAttention-2's layout; docs/prefill-attention.md). A module of
// its own, loaded by the first step with a prefill chunk (not with
// Config.NoPrefillAttention).
//
// A block of GBX_ATTN_PF_WARPS = 4 warps (8 in _wg) takes one KV head and
// R = 16·warps / G consecutive rows of the launch (G query heads a KV
// head): product row pr =
// 16w + i of warp w is row pr / G, query head pr mod G (past R·G: padding,
// zero). The block's rows are taken a sequence at a time (a run of rows of
// one sequence); for each, the run's positions 0 … its last in tiles (the
// next tile's loads in flight while a tile's products run): K and V into
// shared memory as the cache holds them (E4M3 widened to F16), S = Q·Kᵀ,
// the online softmax per product row (positions past the row's own, and
// rows of the other sequences, weigh exp(−inf) = 0; a tile with none of a
// row's positions leaves its state exactly as it was), P to BF16 (F16) in
// the A fragments' layout the S accumulators already have, and O += P·V.
// Blocks are launched the heaviest first (a prompt's last rows). No splits:
// a row's sums run over its positions in one order that depends on its
// position alone (tiles start at multiples of the tile's positions), so its
// bits do not depend on the other rows of its block or launch (a chunk of a
// prompt gives each row the bits the whole prompt does). They are not the
// decode kernels' bits (their splits and warps sum in another order).
//
// The forms, each with bits of its own:
// - gbx_attn_prefill{64,128}[_e4m3] (compute capability 8.0+): tiles of one
//   cache block (16 positions), mma.sync m16n8k16 per warp, K's fragments
//   by ldmatrix and V's by ldmatrix.trans from rows padded to DIM + 8
//   elements, E4M3 staged in registers.
// - gbx_attn_prefill{64,128}[_e4m3]_wg (sm_90a; the default there): tiles
//   of GBX_ATTN_PFW_TILE = 64 positions, the block two warpgroups of 64
//   product rows each sharing the K and V tiles: S by wgmma m64n64k16 with
//   Q and K from shared memory (both K-major), O += P·V by wgmma with P from
//   registers and V as the cache holds it (MN-major, wgmma's transposed B),
//   all in the 128-byte swizzle; E4M3 copied in by cp.async and widened in
//   shared memory by the thread that copied it; the softmax's exponentials
//   by ex2.approx. (Q's A fragments held in registers across the tiles gave
//   wrong scores from the second tile on at head dim 64 on the H200, right
//   ones at 128; from shared memory both are right: docs/prefill-attention.md.)
//
// E4M3 (FP8) as gbx_attn_mma does it: K and V widened to F16 exactly, a
// query times 2^k (its largest magnitude in [2^14, 2^15)) in F16, a score
// times K's scale of its position and 2^−k; V's scales folded into the
// weights over 2^E, E the exponent of the largest V scale among the row's
// positions so far (O in units of 2^E, rescaled when E grows, multiplied
// out at the end): all per product row, so a row's bits stay its own.

#include "lm.cuh"
#include "rows.cuh"

static_assert(GBX_ATTN_PF_WARPS == 4, "GBX_ATTN_PF_WARPS warps are one warpgroup of 64 product rows (the _wg form takes two)");

// gbx_pf_pow2 is 2^e for −126 ≤ e ≤ 127 (attn_mma.cu's gbx_pow2).
__device__ __forceinline__ float gbx_pf_pow2(int e) { return __int_as_float((e + 127) << 23); }

// gbx_pf_widen stores the 8 E4M3 values of w0, w1 at shared address s as
// 8 F16 (16 bytes, exactly).
__device__ __forceinline__ void gbx_pf_widen(u32 s, u32 w0, u32 w1) {
	gbx_sts128(s, gbx_e4m3x2_f16<0>(w0), gbx_e4m3x2_f16<1>(w0), gbx_e4m3x2_f16<0>(w1), gbx_e4m3x2_f16<1>(w1));
}

// gbx_pf_lane is a lane's share of its block: the block's rows [b0, b1) of
// KV head kh, and the lane's two product rows, g and g + 8 of its warp's
// 16: their row, query head, whether they are rows at all, and their
// positions and sequences (−1 where not).
struct gbx_pf_lane {
	int kh, b0, b1, prow[2], ph[2], p0[2], s0[2];
	bool pin[2];
};
__device__ __forceinline__ gbx_pf_lane gbx_pf_rows(int G, int row0, int rows, const int *pos, const int *seq) {
	gbx_pf_lane l;
	const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, R = (int)(blockDim.x / 2) / G; // 16 product rows a warp
	// The heaviest blocks (a prompt's last rows, the longest contexts) first.
	l.kh = blockIdx.x, l.b0 = row0 + (gridDim.y - 1 - blockIdx.y) * R, l.b1 = gbx_imin(l.b0 + R, row0 + rows);
#pragma unroll
	for (int h = 0; h < 2; h++) {
		const int pr = 16 * warp + g + 8 * h;
		l.prow[h] = l.b0 + pr / G, l.ph[h] = l.kh * G + pr % G;
		l.pin[h] = pr < R * G && l.prow[h] < l.b1;
		l.p0[h] = l.pin[h] ? pos[l.prow[h]] : -1, l.s0[h] = l.pin[h] ? seq[l.prow[h]] : -1;
	}
	return l;
}

// gbx_pf_q loads the lane's Q A fragments (a0 rows g, dims 16k + 2t, +1; a1
// row g + 8; a2, a3 dims + 8; zero for padding rows) and qs[h], the scores'
// scale of row h (E4M3: times 2^−k).
template <int DIM, bool FP8>
__device__ __forceinline__ void gbx_pf_q(const float *qkv, int stride, const gbx_pf_lane &l, float scale, u32 (&qa)[DIM / 16][4],
                                         float (&qs)[2]) {
	constexpr int KS = DIM / 16;
	const int t = threadIdx.x & 3;
	float2 qv[KS][4];
	float amax[2] = {0.0f, 0.0f};
	qs[0] = qs[1] = scale;
#pragma unroll
	for (int k = 0; k < KS; k++)
#pragma unroll
		for (int j = 0; j < 4; j++) {
			const int h = j & 1, d = 16 * k + 2 * t + 8 * (j >> 1);
			qv[k][j].x = qv[k][j].y = 0.0f;
			if (l.pin[h]) {
				const float *q = qkv + (long long)l.prow[h] * stride + (long long)l.ph[h] * DIM + d;
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

// gbx_pf_state is a lane's online softmax of its two product rows: the
// running maximum and sum, and (E4M3) E's biased exponent (at least 1: V's
// scales are normal floats or below).
struct gbx_pf_state {
	float mh[2], lh[2];
	int eb[2];
};

// gbx_pf_exp is e^x, or (FAST) 2^x by ex2.approx: the scores then carry
// log2(e) in their scale.
template <bool FAST>
__device__ __forceinline__ float gbx_pf_exp(float x) {
	if constexpr (FAST) return gbx_ex2(x);
	else return expf(x);
}

// gbx_pf_mask scales the lane's raw scores x[n][j] of a tile (positions p0
// + 8n + 2t + (j & 1), rows g (j < 2) and g + 8) to the softmax's (E4M3:
// times K's scale ksc[8n + 2t + (j & 1)]; times qs) and sets in[n][j],
// whether the position is the row's (its run's, at most its own): −inf
// where not. FULL says every position of the tile is every row's: the
// same values, no tests, in[n][j] the constant true (which then folds
// gbx_pf_weights' tests away).
template <int NN, bool FP8, bool FULL = false>
__device__ __forceinline__ void gbx_pf_mask(float (&x)[NN][4], bool (&in)[NN][4], const bool (&cur)[2], const gbx_pf_lane &l, int p0,
                                            const float *ksc, const float (&qs)[2]) {
	const float NEG = __int_as_float(0xff800000); // -inf
	const int t = threadIdx.x & 3;
#pragma unroll
	for (int n = 0; n < NN; n++)
#pragma unroll
		for (int j = 0; j < 4; j++) {
			const int h = j >> 1, pb = 8 * n + 2 * t + (j & 1);
			in[n][j] = FULL || (cur[h] && p0 + pb <= l.p0[h]);
			x[n][j] = in[n][j] ? (FP8 ? x[n][j] * ksc[pb] : x[n][j]) * qs[h] : NEG;
		}
}

// gbx_pf_weights is one tile's softmax step of the lane's two product rows:
// x[n][j] the scaled scores of positions 8n + 2t + (j & 1) of the tile, rows
// g (j < 2) and g + 8, −inf where in[n][j] is false (not the row's). x
// becomes the weights (E4M3: times V's scale vsc[8n + 2t + (j & 1)] over
// 2^(eb − 127), eb raised first to the exponent of the row's largest scale
// in the tile: vmt where every position is the row's (FULL), the tile's
// largest), and cf[h] what row h's O is to be multiplied by before the
// tile's products are added. A row with none of the tile's positions keeps
// its state exactly (every lane of the warp runs the shuffles).
template <int NN, bool FP8, bool FAST = false, bool FULL = false>
__device__ __forceinline__ void gbx_pf_weights(float (&x)[NN][4], const bool (&in)[NN][4], const float *vsc, gbx_pf_state &st,
                                               float (&cf)[2], float vmt = 0.0f) {
	const float NEG = __int_as_float(0xff800000); // -inf
	const int t = threadIdx.x & 3;
#pragma unroll
	for (int h = 0; h < 2; h++) {
		float mt = NEG;
#pragma unroll
		for (int n = 0; n < NN; n++) mt = fmaxf(mt, fmaxf(x[n][2 * h], x[n][2 * h + 1]));
		mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
		mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
		const bool none = mt == NEG;
		const float mn = none ? st.mh[h] : fmaxf(st.mh[h], mt);
		cf[h] = none || mn == st.mh[h] ? 1.0f : gbx_pf_exp<FAST>(st.mh[h] - mn); // 0 on the row's first tile (mh = −inf)
#pragma unroll
		for (int n = 0; n < NN; n++)
#pragma unroll
			for (int c = 0; c < 2; c++) x[n][2 * h + c] = none ? 0.0f : gbx_pf_exp<FAST>(x[n][2 * h + c] - mn);
		float ps = 0.0f;
#pragma unroll
		for (int n = 0; n < NN; n += 2)
			ps += (x[n][2 * h] + x[n][2 * h + 1]) + (x[n + 1][2 * h] + x[n + 1][2 * h + 1]);
		ps += __shfl_xor_sync(0xffffffffu, ps, 1);
		ps += __shfl_xor_sync(0xffffffffu, ps, 2);
		if (none) continue;
		st.lh[h] = st.lh[h] * cf[h] + ps;
		st.mh[h] = mn;
	}
	if (!FP8) return;
#pragma unroll
	for (int h = 0; h < 2; h++) {
		float vm = vmt;
		if (!FULL) {
#pragma unroll
			for (int n = 0; n < NN; n++)
#pragma unroll
				for (int c = 0; c < 2; c++)
					if (in[n][2 * h + c]) vm = fmaxf(vm, vsc[8 * n + 2 * t + c]);
			vm = fmaxf(vm, __shfl_xor_sync(0xffffffffu, vm, 1));
			vm = fmaxf(vm, __shfl_xor_sync(0xffffffffu, vm, 2));
		}
		const int be = gbx_imin(253, (int)(__float_as_uint(vm) >> 23));
		if (be > st.eb[h]) { // O to units of 2^(be − 127) (0 where it would be below 2^-126 of them)
			cf[h] *= st.eb[h] - be >= -126 ? gbx_pf_pow2(st.eb[h] - be) : 0.0f;
			st.eb[h] = be;
		}
	}
#pragma unroll
	for (int n = 0; n < NN; n++)
#pragma unroll
		for (int j = 0; j < 4; j++)
			x[n][j] = in[n][j] ? x[n][j] * (vsc[8 * n + 2 * t + (j & 1)] * gbx_pf_pow2(127 - st.eb[j >> 1])) : 0.0f;
}

// gbx_pf_pa packs weights x[n0], x[n0 + 1] (16 positions) as an A fragment.
template <bool FP8, int NN>
__device__ __forceinline__ void gbx_pf_pa(u32 (&pa)[4], const float (&x)[NN][4], int n0) {
#pragma unroll
	for (int i = 0; i < 4; i++) {
		const float *v = &x[n0 + (i >> 1)][2 * (i & 1)];
		pa[i] = FP8 ? gbx_f16x2(v[0], v[1]) : gbx_bf16x2(v[0], v[1]);
	}
}

// gbx_pf_store writes the lane's rows of O (o[j]: row g dims 8j + 2t, +1
// in 0, 1, row g + 8 in 2, 3) over their sums: out and, where yq is set,
// yq in fmt (the o projection's operand) as gbx_attn_mma writes them.
template <int DIM, bool FP8>
__device__ __forceinline__ void gbx_pf_store(const float (&o)[DIM / 8][4], const gbx_pf_lane &l, const gbx_pf_state &st,
                                             float *out, int outStride, void *yq, int fmt) {
	const int t = threadIdx.x & 3;
#pragma unroll
	for (int h = 0; h < 2; h++) {
		if (!l.pin[h]) continue;
		const float ou = FP8 ? gbx_pf_pow2(st.eb[h] - 127) : 1.0f;
		const long long at = (long long)l.prow[h] * outStride + (long long)l.ph[h] * DIM;
#pragma unroll
		for (int j = 0; j < DIM / 8; j++)
#pragma unroll
			for (int c = 0; c < 2; c++) {
				const float v = __fdiv_rn(o[j][2 * h + c] * ou, st.lh[h]);
				out[at + 8 * j + 2 * t + c] = v;
				if (yq) gbx_st(yq, fmt, at + 8 * j + 2 * t + c, v);
			}
	}
}

// gbx_pf_run is the block's next run of rows of one sequence from row r:
// its end e, its first and last positions, and whether each of the lane's
// product rows is of it.
__device__ __forceinline__ int gbx_pf_run(const gbx_pf_lane &l, int r, const int *pos, const int *seq, int &first, int &last,
                                          bool (&cur)[2]) {
	const int sq = seq[r];
	int e = r + 1;
	first = last = pos[r];
	while (e < l.b1 && seq[e] == sq) first = pos[e] < first ? pos[e] : first, last = pos[e] > last ? pos[e] : last, e++;
#pragma unroll
	for (int h = 0; h < 2; h++) cur[h] = l.s0[h] == sq && l.prow[h] >= r && l.prow[h] < e;
	return e;
}

// gbx_attn_prefill_t is the mma.sync form: tiles of one cache block.
template <int DIM, bool FP8>
__device__ __forceinline__ void gbx_attn_prefill_t(const float *qkv, int stride, const void *cache,
                                                   const float *kvScale, int layer, int layers, int kvHeads, int G,
                                                   const int *pos, const int *seq, const int *btOff,
                                                   const int *blocks, int row0, int rows, float scale, float *out,
                                                   int outStride, void *yq, int fmt) {
	constexpr int W = GBX_ATTN_PF_WARPS, KS = DIM / 16, NO = DIM / 8, P = GBX_KV_BLOCK, LD = DIM + 8, ES = FP8 ? 1 : 2;
	constexpr int CPR = DIM / 8, NCH = P * CPR / (32 * W); // 8-element chunks a position's row, a thread's a tile (K and V each)
	static_assert(P * CPR % (32 * W) == 0 && P <= 32 * W, "a tile's chunks are shared evenly by the block's threads");
	const float NEG = __int_as_float(0xff800000); // -inf
	// Two slots of a tile: K and V (BF16, or E4M3 widened to F16) as the
	// cache holds them, position × dim, rows padded to DIM + 8 elements so
	// that ldmatrix's 8 rows fall in distinct banks.
	__shared__ __attribute__((aligned(16))) u16 ks[2][P][LD], vs[2][P][LD];
	__shared__ float kss[2][P], vss[2][P]; // E4M3: the positions' K and V scales
	const int lane = threadIdx.x & 31;
	const gbx_pf_lane l = gbx_pf_rows(G, row0, rows, pos, seq);
	u32 qa[KS][4];
	float qs[2];
	gbx_pf_q<DIM, FP8>(qkv, stride, l, scale, qa, qs);
	float o[NO][4];
#pragma unroll
	for (int j = 0; j < NO; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
	gbx_pf_state st = {{NEG, NEG}, {0.0f, 0.0f}, {1, 1}};
	const long long vOff = (long long)kvHeads * P * DIM; // elements from K's run to V's
	const unsigned char *cb = (const unsigned char *)cache;
	// fetch starts cache block bi (of nb) into slot sl, a thread's NCH
	// chunks of K and of V, V past the run's last position zero (the cache
	// may hold anything there): BF16 by cp.async, E4M3 into registers (kr,
	// vr and the scales) that put widens into the slot once the block
	// before it is done.
	u32 kr[NCH][2], vr[NCH][2];
	float ksr = 0.0f, vsr = 0.0f;
	auto fetch = [&](const int *bt, int bi, int last, int sl) {
#pragma unroll
		for (int c = 0; c < NCH; c++) {
			const int i = threadIdx.x + 32 * W * c, p = i / CPR, d = 8 * (i % CPR);
			const bool vin = P * bi + p <= last;
			const long long k0 = gbx_kv_off(bt[bi], layer, layers, 0, l.kh, kvHeads, p, DIM) + d;
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
		if (FP8 && threadIdx.x < P) {
			const float *sp = kvScale + gbx_kv_soff(bt[bi], layer, layers, 0, l.kh, kvHeads, threadIdx.x);
			ksr = sp[0], vsr = sp[kvHeads * P];
		}
		if (!FP8) gbx_cp_commit();
	};
	auto put = [&](int sl) {
		if (!FP8) {
			gbx_cp_wait<0>();
			return;
		}
#pragma unroll
		for (int c = 0; c < NCH; c++) {
			const int i = threadIdx.x + 32 * W * c, p = i / CPR, d = 8 * (i % CPR);
			gbx_pf_widen(gbx_smem_addr(&ks[sl][p][d]), kr[c][0], kr[c][1]);
			gbx_pf_widen(gbx_smem_addr(&vs[sl][p][d]), vr[c][0], vr[c][1]);
		}
		if (threadIdx.x < P) kss[sl][threadIdx.x] = ksr, vss[sl][threadIdx.x] = vsr;
	};
	// The block's runs of one sequence, in row order; a run's blocks in
	// order, the next one's loads in flight while this one's products run
	// (one barrier a block: a slot is written only after every warp is past
	// the block that read it last).
	for (int r = l.b0; r < l.b1;) {
		int first, last;
		bool cur[2];
		const int e = gbx_pf_run(l, r, pos, seq, first, last, cur);
		const int *bt = blocks + btOff[seq[r]];
		const int nb = last / P + 1;
		fetch(bt, 0, last, 0);
		put(0);
		__syncthreads();
		for (int bi = 0; bi < nb; bi++) {
			const int sl = bi & 1, mi = lane >> 3, mr = lane & 7; // ldmatrix: the lane's matrix and row
			if (bi + 1 < nb) fetch(bt, bi + 1, last, sl ^ 1);
			// S: sc[n] positions 8n + 2t, +1 of rows g (0, 1) and g + 8 (2, 3);
			// K's B fragments two k-steps an ldmatrix (matrix mi: dims 8 mi on).
			float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
			for (int n = 0; n < 2; n++)
#pragma unroll
				for (int k2 = 0; k2 < KS / 2; k2++) {
					u32 kb[4];
					gbx_ldsm_x4(kb, gbx_smem_addr(&ks[sl][8 * n + mr][32 * k2 + 8 * mi]));
#pragma unroll
					for (int h = 0; h < 2; h++) {
						const int k = 2 * k2 + h;
						if (FP8) gbx_mma_f16(sc[n], qa[k][0], qa[k][1], qa[k][2], qa[k][3], kb[2 * h], kb[2 * h + 1]);
						else gbx_mma(sc[n], qa[k][0], qa[k][1], qa[k][2], qa[k][3], kb[2 * h], kb[2 * h + 1]);
					}
				}
			bool in[2][4];
			gbx_pf_mask<2, FP8>(sc, in, cur, l, P * bi, kss[sl], qs);
			float cf[2];
			gbx_pf_weights<2, FP8>(sc, in, vss[sl], st, cf);
			u32 pa[4];
			gbx_pf_pa<FP8>(pa, sc, 0);
#pragma unroll
			for (int j = 0; j < NO; j++) o[j][0] *= cf[0], o[j][1] *= cf[0], o[j][2] *= cf[1], o[j][3] *= cf[1];
			// O += P·V: V's B fragments two n-tiles an ldmatrix.trans (matrix mi:
			// positions 8 (mi & 1) on, dims 8 (mi >> 1) on).
#pragma unroll
			for (int j2 = 0; j2 < NO / 2; j2++) {
				u32 vb[4];
				gbx_ldsm_x4_t(vb, gbx_smem_addr(&vs[sl][8 * (mi & 1) + mr][16 * j2 + 8 * (mi >> 1)]));
#pragma unroll
				for (int h = 0; h < 2; h++) {
					if (FP8) gbx_mma_f16(o[2 * j2 + h], pa[0], pa[1], pa[2], pa[3], vb[2 * h], vb[2 * h + 1]);
					else gbx_mma(o[2 * j2 + h], pa[0], pa[1], pa[2], pa[3], vb[2 * h], vb[2 * h + 1]);
				}
			}
			if (bi + 1 < nb) put(sl ^ 1);
			__syncthreads(); // the slot read, the next one written
		}
		r = e;
	}
	gbx_pf_store<DIM, FP8>(o, l, st, out, outStride, yq, fmt);
}

// gbx_pf_tile is a tile's softmax step in the warpgroup form: the raw
// scores x to weights (gbx_pf_mask, gbx_pf_weights with the fast
// exponentials), FULL where every position of the tile is every row's
// (vmt then the tile's largest V scale).
template <bool FP8, bool FULL>
__device__ __forceinline__ void gbx_pf_tile(float (&x)[8][4], const bool (&cur)[2], const gbx_pf_lane &l, int p0, const float *ksc,
                                            const float *vsc, float vmt, const float (&qs)[2], gbx_pf_state &st, float (&cf)[2]) {
	bool in[8][4];
	gbx_pf_mask<8, FP8, FULL>(x, in, cur, l, p0, ksc, qs);
	gbx_pf_weights<8, FP8, true, FULL>(x, in, vsc, st, cf, vmt);
}

// gbx_attn_prefill_wg_t is the warpgroup form (sm_90a; elsewhere it traps):
// two warpgroups a block, each its 64 product rows, sharing the K and V
// tiles: tiles of TP = 64 positions (4 cache blocks) in smem, 1,024-byte
// aligned: slot sl's K tile at 2·HALF·sl and its V tile HALF on, each DIM /
// 64 atoms of 64 dims (TP rows of 128 bytes, 16-byte chunks swizzled); the
// block's 128 product rows of Q at 4·HALF, laid out as a tile; E4M3's copy
// (K's TP × DIM bytes, then V's) after Q. The softmax's exponentials by
// ex2.approx (log2 e in the scores' scale); tiles whose every position is
// every row's (all but a run's last one or two) take gbx_pf_tile's FULL
// path, with no masks' tests; a warp whose rows' maxima (and E4M3 V
// exponents) did not move skips O's rescaling by 1; the next tile's copies
// are issued behind S's wgmmas.
template <int DIM, bool FP8>
__device__ __forceinline__ void gbx_attn_prefill_wg_t(const float *qkv, int stride, const void *cache,
                                                      const float *kvScale, int layer, int layers, int kvHeads, int G,
                                                      const int *pos, const int *seq, const int *btOff,
                                                      const int *blocks, int row0, int rows, float scale, float *out,
                                                      int outStride, void *yq, int fmt, unsigned char *smem) {
#if GBX_WGMMA
	constexpr int KS = DIM / 16, NO = DIM / 8, NA = DIM / 64, P = GBX_KV_BLOCK, TP = GBX_ATTN_PFW_TILE, NB = TP / P;
	constexpr int TH = 256, PR = 128; // threads, product rows
	constexpr int ES = FP8 ? 1 : 2, CPR = ES * DIM / 16, NCH = TP * CPR / TH; // 16-byte chunks a position's cache row, a thread's a tile
	constexpr u32 HALF = NA * TP * 128;
	static_assert(TP * CPR % TH == 0 && TP <= TH && TP == 64 && HALF % 1024 == 0, "a tile's chunks are shared evenly by the block's threads");
	const float NEG = __int_as_float(0xff800000); // -inf
	// E4M3: the positions' scales (rks, rvs: as copied), the largest V
	// scale of each half of a slot's tile.
	__shared__ float kss[2][TP], vss[2][TP], rks[TP], rvs[TP], vmx[2][2];
	const u32 base = (gbx_smem_addr(smem) + 1023u) & ~1023u, qt = base + 4 * HALF, raw = qt + PR * DIM * 2;
	// swz is the byte offset in a tile of position p, dims d … d + 7.
	auto swz = [](int p, int d) -> u32 {
		const u32 o = (u32)((d >> 6) * TP * 128 + p * 128 + 2 * (d & 63));
		return o ^ (((o >> 7) & 7) << 4);
	};
	const int t = threadIdx.x & 3, pr0 = 16 * (threadIdx.x >> 5) + (threadIdx.x & 31) / 4;
	const gbx_pf_lane l = gbx_pf_rows(G, row0, rows, pos, seq);
	float qs[2];
	{
		// Q into shared memory as the K tiles are laid out (product rows for
		// positions): the A operand of S, read by the wgmmas as they run.
		u32 qa[KS][4];
		gbx_pf_q<DIM, FP8>(qkv, stride, l, scale, qa, qs);
		qs[0] *= 1.44269504f, qs[1] *= 1.44269504f; // log2 e
#pragma unroll
		for (int k = 0; k < KS; k++)
#pragma unroll
			for (int j = 0; j < 4; j++) {
				const int d = 16 * k + 2 * t + 8 * (j >> 1);
				u32 off = (u32)((d >> 6) * PR * 128 + (pr0 + 8 * (j & 1)) * 128 + 2 * (d & 63));
				off ^= ((off >> 7) & 7) << 4;
				gbx_sts32(qt + off, qa[k][j]);
			}
	}
	// The wgmmas' descriptors: this warpgroup's Q, slot 0's K and V (moved
	// on by gbx_wg_desc_add).
	const unsigned long long dq = gbx_wg_desc(qt + (threadIdx.x >> 7) * 64 * 128), dk = gbx_wg_desc(base),
	                         dv = gbx_wg_desc_mn(base + HALF, TP * 128);
	float o[NO][4];
#pragma unroll
	for (int j = 0; j < NO; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
	gbx_pf_state st = {{NEG, NEG}, {0.0f, 0.0f}, {1, 1}};
	const long long vOff = (long long)kvHeads * P * DIM; // elements from K's run to V's
	const unsigned char *cb = (const unsigned char *)cache;
	// fetch starts tile ti of a run (nb cache blocks, positions to last)
	// into slot sl, a thread's NCH chunks of K and of V: BF16 by cp.async
	// into the slot, V past last zero (the cache may hold anything there);
	// E4M3 by cp.async as the cache holds it, which put widens (a thread
	// the chunks it copied itself), V past last zero there.
	auto fetch = [&](const int *bt, int nb, int ti, int last, int sl) {
		const u32 kt = base + 2 * HALF * sl, vt = kt + HALF;
#pragma unroll
		for (int c = 0; c < NCH; c++) {
			const int i = threadIdx.x + TH * c, p = i / CPR, d = 16 / ES * (i % CPR), bi = NB * ti + p / P;
			const bool vin = TP * ti + p <= last;
			if (bi >= nb) { // positions no row has: K masked, V zero
				if (!FP8) gbx_sts128(vt + swz(p, d), 0u, 0u, 0u, 0u);
				continue;
			}
			const unsigned char *kg = cb + ES * (gbx_kv_off(bt[bi], layer, layers, 0, l.kh, kvHeads, p % P, DIM) + d), *vg = kg + ES * vOff;
			if (FP8) {
				gbx_cp16(raw + p * DIM + d, kg);
				if (vin) gbx_cp16(raw + TP * DIM + p * DIM + d, vg);
			} else {
				gbx_cp16(kt + swz(p, d), kg);
				if (vin) gbx_cp16(vt + swz(p, d), vg);
				else gbx_sts128(vt + swz(p, d), 0u, 0u, 0u, 0u);
			}
		}
		if (FP8 && threadIdx.x < TP && NB * ti + threadIdx.x / P < nb) {
			const float *sp = kvScale + gbx_kv_soff(bt[NB * ti + threadIdx.x / P], layer, layers, 0, l.kh, kvHeads, threadIdx.x % P);
			gbx_cp4(gbx_smem_addr(&rks[threadIdx.x]), sp);
			gbx_cp4(gbx_smem_addr(&rvs[threadIdx.x]), sp + kvHeads * P);
		}
		gbx_cp_commit();
	};
	auto put = [&](int nb, int ti, int last, int sl) {
		gbx_cp_wait<0>();
		if (FP8) {
			const u32 kt = base + 2 * HALF * sl, vt = kt + HALF;
#pragma unroll
			for (int c = 0; c < NCH; c++) {
				const int i = threadIdx.x + TH * c, p = i / CPR, d = 16 * (i % CPR);
				const bool kin = NB * ti + p / P < nb, vin = kin && TP * ti + p <= last;
				u32 w[4] = {0u, 0u, 0u, 0u};
				if (kin) gbx_lds128(w, raw + p * DIM + d);
				gbx_pf_widen(kt + swz(p, d), w[0], w[1]);
				gbx_pf_widen(kt + swz(p, d + 8), w[2], w[3]);
				w[0] = w[1] = w[2] = w[3] = 0u;
				if (vin) gbx_lds128(w, raw + TP * DIM + p * DIM + d);
				gbx_pf_widen(vt + swz(p, d), w[0], w[1]);
				gbx_pf_widen(vt + swz(p, d + 8), w[2], w[3]);
			}
			if (threadIdx.x < TP) { // warps 0 and 1, whole
				const bool in = NB * ti + threadIdx.x / P < nb;
				const float vsc = in ? rvs[threadIdx.x] : 0.0f;
				kss[sl][threadIdx.x] = in ? rks[threadIdx.x] : 0.0f, vss[sl][threadIdx.x] = vsc;
				float m = vsc;
#pragma unroll
				for (int x = 16; x > 0; x >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, x));
				if ((threadIdx.x & 31) == 0) vmx[sl][threadIdx.x >> 5] = m;
			}
		}
		gbx_fence_async_smem(); // the tile's stores and copies, before the wgmmas that read it
	};
	for (int r = l.b0; r < l.b1;) {
		int first, last;
		bool cur[2];
		const int e = gbx_pf_run(l, r, pos, seq, first, last, cur);
		const int *bt = blocks + btOff[seq[r]];
		const int nb = last / P + 1, nt = last / TP + 1;
		fetch(bt, nb, 0, last, 0);
		put(nb, 0, last, 0);
		__syncthreads();
		for (int ti = 0; ti < nt; ti++) {
			const int sl = ti & 1;
			const u32 so = 2 * HALF * sl; // the slot's offset
			// S = Q·Kᵀ: sc[n] positions 8n + 2t, +1 of rows g (0, 1) and g + 8
			// (2, 3); k-step k at atom k / 4, 32 bytes a step within it (the
			// first one overwriting sc).
			float sc[8][4];
#pragma unroll
			for (int n = 0; n < 8; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
			gbx_wg_pin(sc);
			gbx_wg_fence();
#pragma unroll
			for (int k = 0; k < KS; k++)
				gbx_wgmma64_ss<FP8>(sc, gbx_wg_desc_add(dq, (k >> 2) * PR * 128 + (k & 3) * 32), gbx_wg_desc_add(dk, so + (k >> 2) * TP * 128 + (k & 3) * 32), k > 0);
			gbx_wg_commit();
			// The next tile's copies, issued while S's wgmmas run (they touch
			// neither its registers nor the slot it reads).
			if (ti + 1 < nt) fetch(bt, nb, ti + 1, last, sl ^ 1);
			gbx_wg_wait<0>();
			gbx_wg_pin(sc);
			float cf[2];
			if (r == l.b0 && e == l.b1 && TP * ti + TP - 1 <= first)
				gbx_pf_tile<FP8, true>(sc, cur, l, TP * ti, kss[sl], vss[sl], FP8 ? fmaxf(vmx[sl][0], vmx[sl][1]) : 0.0f, qs, st, cf);
			else
				gbx_pf_tile<FP8, false>(sc, cur, l, TP * ti, kss[sl], vss[sl], 0.0f, qs, st, cf);
			u32 pa[4][4];
#pragma unroll
			for (int kk = 0; kk < 4; kk++) gbx_pf_pa<FP8>(pa[kk], sc, 2 * kk);
			if (__any_sync(0xffffffffu, cf[0] != 1.0f || cf[1] != 1.0f))
#pragma unroll
				for (int j = 0; j < NO; j++) o[j][0] *= cf[0], o[j][1] *= cf[0], o[j][2] *= cf[1], o[j][3] *= cf[1];
			// O += P·V: k-step kk the tile's positions 16kk on (2,048 bytes a
			// step), V's atom a dims 64a on.
			gbx_wg_pin(o);
			gbx_wg_pin_a(pa);
			gbx_wg_fence();
#pragma unroll
			for (int kk = 0; kk < 4; kk++)
#pragma unroll
				for (int a = 0; a < NA; a++)
					gbx_wgmma64_rt<FP8>(*reinterpret_cast<float(*)[8][4]>(&o[8 * a][0]), pa[kk][0], pa[kk][1], pa[kk][2], pa[kk][3],
					                    gbx_wg_desc_add(dv, so + a * TP * 128 + kk * 2048), 1);
			gbx_wg_commit();
			gbx_wg_wait<0>();
			gbx_wg_pin(o);
			if (ti + 1 < nt) put(nb, ti + 1, last, sl ^ 1);
			__syncthreads(); // the slot read, the next one written
		}
		r = e;
	}
	gbx_pf_store<DIM, FP8>(o, l, st, out, outStride, yq, fmt);
#else
	__trap();
#endif
}

// The entry points, a BF16 cache (kvScale unused) and an E4M3 one, by head
// dim, of the mma.sync form (R = 64 / G rows a block, 32 ·
// GBX_ATTN_PF_WARPS threads) and the warpgroup one (_wg; sm_90a; R = 128 /
// G, twice the threads, GBX_ATTN_PFW_SMEM of dynamic shared memory): grid
// (KV heads, ⌈rows / R⌉), G ≤ 16; rows [row0, row0 + rows) of the step; out
// and, where yq is set, yq in fmt (the o projection's operand) as
// gbx_attn_mma writes them.
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill64(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                       int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0,
                       int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                              rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill128(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                        int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0,
                        int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                               rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill64_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                            int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks,
                            int row0, int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<64, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                             rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(32 * GBX_ATTN_PF_WARPS, 3)
    gbx_attn_prefill128_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                             int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks,
                             int row0, int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_prefill_t<128, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                              rows, scale, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(64 * GBX_ATTN_PF_WARPS, 1)
    gbx_attn_prefill64_wg(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                         int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks, int row0,
                         int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	GBX_DYN_SMEM(gbx_pfw_smem64, GBX_ATTN_PFW_SMEM_64);
	gbx_attn_prefill_wg_t<64, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                 rows, scale, out, outStride, yq, fmt, gbx_pfw_smem64);
}
extern "C" __global__ void __launch_bounds__(64 * GBX_ATTN_PF_WARPS, 1)
    gbx_attn_prefill128_wg(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                          int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks,
                          int row0, int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	GBX_DYN_SMEM(gbx_pfw_smem128, GBX_ATTN_PFW_SMEM_128);
	gbx_attn_prefill_wg_t<128, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                  rows, scale, out, outStride, yq, fmt, gbx_pfw_smem128);
}
extern "C" __global__ void __launch_bounds__(64 * GBX_ATTN_PF_WARPS, 1)
    gbx_attn_prefill64_e4m3_wg(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                              int kvHeads, int G, const int *pos, const int *seq, const int *btOff, const int *blocks,
                              int row0, int rows, float scale, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	GBX_DYN_SMEM(gbx_pfw_smem64e, GBX_ATTN_PFW_SMEM_64_E4M3);
	gbx_attn_prefill_wg_t<64, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                rows, scale, out, outStride, yq, fmt, gbx_pfw_smem64e);
}
extern "C" __global__ void __launch_bounds__(64 * GBX_ATTN_PF_WARPS, 1)
    gbx_attn_prefill128_e4m3_wg(const float *qkv, int stride, const void *cache, const float *kvScale, int layer,
                               int layers, int kvHeads, int G, const int *pos, const int *seq, const int *btOff,
                               const int *blocks, int row0, int rows, float scale, float *out, int outStride, void *yq,
                               int fmt) {
	gbx_pdl();
	GBX_DYN_SMEM(gbx_pfw_smem128e, GBX_ATTN_PFW_SMEM_128_E4M3);
	gbx_attn_prefill_wg_t<128, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, G, pos, seq, btOff, blocks, row0,
	                                 rows, scale, out, outStride, yq, fmt, gbx_pfw_smem128e);
}
