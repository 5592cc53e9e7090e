// attn_mma.cu: gbx_attn_mma, decode attention on the tensor cores (the
// default on compute capability 8.0 and above), over a BF16 or an E4M3
// cache. A module of its own: a compile failure here leaves the
// language-model module (attention.cu) untouched.

#include "attn.cuh"

// gbx_attn_mma<DIM, FP8, ROWS> is gbx_attn_dec on the tensor cores (ROWS:
// a prefill's rows grouped, below the entry points' comment): a BF16
// cache (FP8 false) or an E4M3 one with its scales kvScale (abi.h), head
// dims DIM of 64 or 128, up to 8 query heads per KV head, the same grid,
// arguments, outputs and warp/block split as gbx_attn_dec. Per KV block of
// 16 positions a warp runs, as mma.sync m16n8k16 with float accumulators
// (BF16 operands on a BF16 cache, F16 on an E4M3 one), S = K·Qᵀ (positions
// × query heads: DIM/16 k-steps) and Oᵀ += Vᵀ·Pᵀ (dims × heads: DIM/16
// tiles of 16 dims): the 16 positions and 16 dims are the mma's rows and
// the ≤ 8 heads its columns (those past the group are zero and ignored),
// so no row is padding. Lane (g, t) = (lane/4, lane mod 4) loads 16 bytes
// of K and of V per load at positions g and g+8 (nb = 0, 1): BF16, dims
// 32c + 8t … +8, word w dims 32c + 8t + 2w, +1; E4M3, dims 64c + 16t …
// +16, word w dims D … D+3 (D = 64c + 16t + 4w). K's words are the A
// fragments: BF16 as they are (k-step k takes words 2(k mod 2), +1 of load
// k/2), E4M3 widened by one cvt per byte pair (k-step k takes word k mod 4
// of load k/4, dims D, D+1 for k-slots 2t, 2t+1 and D+2, D+3 for 2t+8,
// 2t+9): each k-slot so stands for a dim fixed by the lane, and the
// query's B fragments take the same dims, so the dot product's terms are
// only permuted. A score fragment holds positions g, g+8 of heads 2t, 2t+1
// (E4M3: times K's scale of the position); the online softmax reduces them
// over the 8 lanes of a t. The weights, rounded to BF16 (E4M3: to F16,
// after the product with V's scale of the position over 2^E, below; the
// sum l takes them without it), are an 8×8 block (positions × heads) each,
// which movmatrix's transpose turns into Pᵀ's B fragments. Vᵀ's A
// fragments: BF16, a word of V is an 8×8 block (positions × 8 dims) whose
// transpose is one; E4M3, a word is an 8×8 block of byte pairs (positions
// × 16 dims), whose transpose gives lane (g, t) dims E, E+1 (E =
// gbx_attn_vdim(u, 0, g)) of positions 2t, 2t+1, which one prmt and two cvt
// turn into the fragments of rows g (dim E) and g+8 (dim E+1): a
// transpose, not two, for 16 dims. gbx_attn_vdim gives each output row's
// dim.
//
// E4M3's F16 operands are exact powers of two away from the values: a
// query head times 2^k (k so that its largest magnitude is in [2^14,
// 2^15), the scores' scale times 2^−k), and V's scale times the weight
// over 2^E, E the exponent of the largest scale of V at the column's row's
// positions among the blocks the warp has taken so far (the column's O in
// units of 2^E, rescaled when E grows, multiplied out before the merge; per
// column, so that a row's bits do not depend on the rows grouped with it),
// so neither overflows F16 and both keep F16's 11 bits where BF16 kept 8.
// Results differ from gbx_attn_dec's by that rounding (BF16, ~2⁻⁹; F16,
// ~2⁻¹²), not in summation order alone; every order is still fixed by the
// split.
//
// A warp loads a block's K and V when it starts on it (the _pf entry
// points: the next block's too, below): occupancy is what keeps loads in
// flight, and registers bound it. On the H200 (2026-12-02,
// TestAttnBench, 256 × 1k), loading the next block first (or two blocks at
// once) took 202 registers, two blocks an SM: 1.7 TB/s on an E4M3 cache,
// against 2.0 TB/s at 155 and three. The BF16 entry points are held to four
// blocks an SM (128 registers). The _ring entry points (RING, sm_90) keep a
// warp's next GBX_ATTN_RING_SLOTS blocks in flight as bulk copies into
// shared memory, which cost no registers and one thread's instructions:
// on an E4M3 cache 3.35–3.38 TB/s against 2.73–2.75 (2026-12-03, 256 × 1k).
template <int NL> struct kvBuf {
	u32 k[2][NL][4], v[2][NL][4]; // K and V at the block's positions g, g+8 (lane (g, t))
	float ks[2], vs[2];           // E4M3: their scales
};

// gbx_attn_vdim is the dim of row g (+8 with hi) of gbx_attn_mma's output
// tile u: BF16, of word 2(u mod 2) + hi of load u/2; E4M3, of byte hi of
// the pair g mod 2 of word u mod 4 of load u/4 of lane g/2.
template <bool FP8> __device__ __forceinline__ int gbx_attn_vdim(int u, int hi, int g) {
	return FP8 ? 64 * (u / 4) + 16 * (g / 2) + 4 * (u % 4) + 2 * (g % 2) + hi
	           : 32 * (u / 2) + 8 * (g / 2) + 2 * (2 * (u % 2) + hi) + g % 2;
}

// gbx_pow2 is 2^e for −126 ≤ e ≤ 127.
__device__ __forceinline__ float gbx_pow2(int e) { return __int_as_float((e + 127) << 23); }

template <int DIM, bool FP8, bool ROWS, bool PF, bool RING = false>
__device__ __forceinline__ void gbx_attn_mma(const float *qkv, int stride, const void *cache, const float *kvScale,
                                             int layer, int layers, int kvHeads, int G, const int *pos, const int *seq,
                                             const int *btOff, const int *blocks, const int *split, int row0,
                                             float scale, float *partO, float *partML, int maxSplits, float *out,
                                             int outStride, void *yq, int fmt) {
	// ES: bytes per value; NL: 16-byte loads per position and lane; KS:
	// k-steps (of 16 dims); NO: output tiles (16 dims each); RS: the row
	// stride of so, whose dim d is at d + d/32 (with RS, no bank conflicts
	// beyond two ways as the lanes store their tiles).
	constexpr int NT = GBX_ATTN_DEC_THREADS, NW = NT / 32, GP = 8, ES = FP8 ? 1 : 2, NL = DIM * ES / 64;
	constexpr int KS = DIM / 16, NO = DIM / 16, RS = DIM + DIM / 32 + 1;
	const float NEG = __int_as_float(0xff800000); // -inf
	// so: the warps' outputs for the merge; with RING, in the dynamic
	// shared memory whose first bytes the warps' rings took until then.
	float(*so)[GP * RS];
	unsigned char *ring = nullptr;
	if constexpr (RING) {
		static_assert(FP8 && NW * GP * RS * 4 <= GBX_ATTN_RING_BYTES(DIM), "an E4M3 cache; the ring's memory holds so");
		GBX_DYN_SMEM(gbx_attn_ring_smem, GBX_ATTN_RING_BYTES(128));
		ring = gbx_attn_ring_smem;
		so = reinterpret_cast<float(*)[GP * RS]>(ring);
	} else {
		__shared__ float so_s[NW][GP * RS];
		so = so_s;
	}
	__shared__ float sm[NW][GP], sl[NW][GP], se[NW][GP], sM[GP], sL[GP];
	const int t = threadIdx.x, lane = t & 31, warp = t >> 5, g = lane >> 2, tq = lane & 3;
	const int kh = blockIdx.y, s = blockIdx.x;
	// The rows this block attends: rc alone, or, with ROWS and G ≤ GP/2, the nr =
	// GP/G rows lead … lead+nr−1 of the aligned group of the launch's rows
	// that holds rc, when they are one sequence's consecutive positions
	// with one split length (a prefill's rows): the block of lead takes
	// them all, their heads side by side in the products' GP columns
	// (column c: row c/G, head c mod G), and the others' blocks return.
	int lead = blockIdx.z, nr = 1;
	if (ROWS && G <= GP / 2) {
		const int RP = GP / G, l0 = lead - lead % RP, a = row0 + l0;
		bool all = l0 + RP <= (int)gridDim.z;
		for (int j = 1; all && j < RP; j++) all = seq[a + j] == seq[a] && pos[a + j] == pos[a] + j && split[a + j] == split[a];
		if (all) {
			if (lead != l0) return;
			nr = RP;
		}
	}
	// n0: the first row's context; the last row's, n0 + nr − 1, is the
	// longest: the block's splits and KV blocks are its.
	const int r = row0 + lead, n0 = pos[r] + 1, S = split[r], nLast = n0 + nr - 1;
	if (s >= (nLast + S - 1) / S) return;
	const int j0 = s * S, j1 = gbx_imin(j0 + S, nLast);
	const int *bt = blocks + btOff[seq[r]];
	// j1c[h]: the split's end for the row of the lane's column 2t + h (a
	// column past the rows: the first row's, as its query is zero).
	int j1c[2];
#pragma unroll
	for (int h = 0; h < 2; h++) j1c[h] = gbx_imin(j0 + S, n0 + (2 * tq + h < nr * G ? (2 * tq + h) / G : 0));
	// qb[k]: query head g's B fragments b0, b1 of k-step k, dims q0, q0+1 and
	// q0+2, q0+3 (BF16: q0 = 32(k/2) + 8t + 4(k mod 2); E4M3: q0 = 64(k/4) +
	// 16t + 4(k mod 4), times 2^k of the head) of column g's row; zero past
	// the rows' heads. qs[h]: the scores' scale for the lane's column 2t + h.
	u32 qb[KS][2];
	float qs[2] = {scale, scale};
	{
		const float *q = qkv + (long long)(r + g / G) * stride + (long long)(kh * G + g % G) * DIM;
		float4 a[KS];
		float amax = 0.0f;
#pragma unroll
		for (int k = 0; k < KS; k++) {
			const int q0 = FP8 ? 64 * (k / 4) + 16 * tq + 4 * (k % 4) : 32 * (k / 2) + 8 * tq + 4 * (k % 2);
			a[k] = {0.0f, 0.0f, 0.0f, 0.0f};
			if (g < nr * G) a[k] = *reinterpret_cast<const float4 *>(q + q0);
			amax = fmaxf(amax, fmaxf(fmaxf(fabsf(a[k].x), fabsf(a[k].y)), fmaxf(fabsf(a[k].z), fabsf(a[k].w))));
		}
		float p2 = 1.0f; // 2^k
		if (FP8) {
			amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
			amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
			// amax's exponent ex (0: zero or subnormal; not finite: 255) and k = 141 − ex
			const int ex = (int)(__float_as_uint(amax) >> 23), kq = ex == 0 || ex == 255 ? 0 : gbx_imin(126, 141 - ex);
			p2 = gbx_pow2(kq);
#pragma unroll
			for (int h = 0; h < 2; h++) qs[h] = scale * gbx_pow2(-__shfl_sync(0xffffffffu, kq, 4 * (2 * tq + h)));
		}
#pragma unroll
		for (int k = 0; k < KS; k++) {
			if (FP8) {
				qb[k][0] = gbx_f16x2(a[k].x * p2, a[k].y * p2);
				qb[k][1] = gbx_f16x2(a[k].z * p2, a[k].w * p2);
			} else {
				qb[k][0] = gbx_bf16x2(a[k].x, a[k].y);
				qb[k][1] = gbx_bf16x2(a[k].z, a[k].w);
			}
		}
	}
	// o[u]: tile u's outputs, heads 2t, 2t+1 at dims vdim(u, 0, g) (o[u][0],
	// o[u][1]) and vdim(u, 1, g) (o[u][2], o[u][3]) (E4M3: in units of
	// 2^(eb[h] − 127), h = 0, 1 for heads 2t, 2t+1); mh, lh: heads 2t and
	// 2t+1's running maxima and sums.
	float o[NO][4];
#pragma unroll
	for (int i = 0; i < NO; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
	float mh[2] = {NEG, NEG}, lh[2] = {0.0f, 0.0f};
	int eb[2] = {1, 1}; // E4M3: E's biased exponent per column (at least 1: V's scales are normal floats or below)
	const long long vOff = (long long)ES * kvHeads * GBX_KV_BLOCK * DIM; // bytes from K's run to V's
	// The split's KV blocks bi = 0 … nblk−1 (block first + bi of the
	// sequence). Lane i < 32 reads block i's table entry here, beside the
	// query, so that a block's address is a shuffle and not a load in series
	// with its K and V (a split of more than 32 blocks, past 32k positions,
	// loads the rest).
	const int first = j0 / GBX_KV_BLOCK, nblk = (j1 - 1) / GBX_KV_BLOCK - first + 1;
	const int btl = lane < nblk ? bt[first + lane] : 0;
	auto load = [&](kvBuf<NL> &kb, int bi) {
		const int e = __shfl_sync(0xffffffffu, btl, bi & 31);
		const long long blk = bi < 32 ? e : bt[first + bi];
		const char *kp = (const char *)cache + ES * (gbx_kv_off(blk, layer, layers, 0, kh, kvHeads, 0, DIM) + g * DIM) + 16 * tq;
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
#pragma unroll
			for (int c = 0; c < NL; c++) gbx_ldg128(kb.k[nb][c], kp + ES * 8 * nb * DIM + 64 * c);
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
#pragma unroll
			for (int c = 0; c < NL; c++) gbx_ldg128(kb.v[nb][c], kp + vOff + ES * 8 * nb * DIM + 64 * c);
		if (FP8) {
			const float *sp = kvScale + gbx_kv_soff(blk, layer, layers, 0, kh, kvHeads, g);
			kb.ks[0] = sp[0], kb.ks[1] = sp[8];
			kb.vs[0] = sp[kvHeads * GBX_KV_BLOCK], kb.vs[1] = sp[kvHeads * GBX_KV_BLOCK + 8];
		} else {
			kb.ks[0] = kb.ks[1] = kb.vs[0] = kb.vs[1] = 1.0f;
		}
	};
	// attend adds block bi, held in cur, to the warp's state.
	auto attend = [&](kvBuf<NL> &cur, int bi) {
		const u32(&kr)[2][NL][4] = cur.k;
		u32(&vr)[2][NL][4] = cur.v;
		// The block's positions in the split: for the last row (≥ 1), and
		// for the rows of the lane's columns (≤ 0 where the block is past
		// a row's end).
		const int b0 = (first + bi) * GBX_KV_BLOCK, valid = j1 - b0, vc[2] = {j1c[0] - b0, j1c[1] - b0};
		// S: sc = scores of positions g (sc[0], sc[1]) and g+8 (sc[2], sc[3]),
		// heads 2t and 2t+1.
		float sc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
		for (int k = 0; k < KS; k++) {
			if (FP8) {
				const u32 w0 = kr[0][k / 4][k % 4], w1 = kr[1][k / 4][k % 4];
				gbx_mma_f16(sc, gbx_e4m3x2_f16<0>(w0), gbx_e4m3x2_f16<0>(w1), gbx_e4m3x2_f16<1>(w0),
				            gbx_e4m3x2_f16<1>(w1), qb[k][0], qb[k][1]);
			} else {
				gbx_mma(sc, kr[0][k / 2][2 * (k % 2)], kr[1][k / 2][2 * (k % 2)], kr[0][k / 2][2 * (k % 2) + 1],
				        kr[1][k / 2][2 * (k % 2) + 1], qb[k][0], qb[k][1]);
			}
		}
		float x[4];
#pragma unroll
		for (int i = 0; i < 4; i++) x[i] = g + 8 * (i / 2) < vc[i % 2] ? sc[i] * cur.ks[i / 2] * qs[i % 2] : NEG;
		float cf[2];
#pragma unroll
		for (int h = 0; h < 2; h++) {
			float mt = fmaxf(x[h], x[2 + h]);
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 4));
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 8));
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 16));
			const float mn = fmaxf(mh[h], mt);
			if (ROWS && mt == NEG) { // none of the block is the column's row's: its state stays, exactly
				cf[h] = 1.0f;
				x[h] = x[2 + h] = 0.0f;
			} else {
				cf[h] = expf(mh[h] - mn); // 0 on the first block (mh = −inf)
				x[h] = expf(x[h] - mn), x[2 + h] = expf(x[2 + h] - mn); // 0 past the split
			}
			float ps = x[h] + x[2 + h];
			ps += __shfl_xor_sync(0xffffffffu, ps, 4);
			ps += __shfl_xor_sync(0xffffffffu, ps, 8);
			ps += __shfl_xor_sync(0xffffffffu, ps, 16);
			lh[h] = lh[h] * cf[h] + ps;
			mh[h] = mn;
		}
		u32 pb0, pb1;
		if (FP8) {
			// The weights times V's scales over 2^(eb − 127) (0 past the
			// column's row's end, whatever the scale there), eb raised to the
			// exponent of the column's largest scale in the block first, O
			// rescaled with it: per column, as a row alone sees its positions.
			float f[2] = {1.0f, 1.0f};
#pragma unroll
			for (int h = 0; h < 2; h++) {
				if (!ROWS && h == 1) { // a row a block: both columns' positions are the row's
					f[1] = f[0], eb[1] = eb[0];
					break;
				}
				float vm = fmaxf(g < vc[h] ? cur.vs[0] : 0.0f, g + 8 < vc[h] ? cur.vs[1] : 0.0f);
				vm = fmaxf(vm, __shfl_xor_sync(0xffffffffu, vm, 4));
				vm = fmaxf(vm, __shfl_xor_sync(0xffffffffu, vm, 8));
				vm = fmaxf(vm, __shfl_xor_sync(0xffffffffu, vm, 16));
				const int be = gbx_imin(253, (int)(__float_as_uint(vm) >> 23));
				if (be > eb[h]) { // O to units of 2^(be − 127) (0 where it would be below 2^-126 of them)
					f[h] = eb[h] - be >= -126 ? gbx_pow2(eb[h] - be) : 0.0f;
					eb[h] = be;
				}
			}
			cf[0] *= f[0], cf[1] *= f[1];
#pragma unroll
			for (int i = 0; i < 4; i++) x[i] = g + 8 * (i / 2) < vc[i % 2] ? x[i] * (cur.vs[i / 2] * gbx_pow2(127 - eb[i % 2])) : 0.0f;
			pb0 = gbx_movmatrix_t(gbx_f16x2(x[0], x[1])), pb1 = gbx_movmatrix_t(gbx_f16x2(x[2], x[3]));
		} else {
			pb0 = gbx_movmatrix_t(gbx_bf16x2(x[0], x[1])), pb1 = gbx_movmatrix_t(gbx_bf16x2(x[2], x[3]));
		}
		// V past the split may hold anything: zero the positions g (+8) there
		// (a shorter row's weights are 0 from its end on).
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
			if (8 * nb + g >= valid)
#pragma unroll
				for (int c = 0; c < NL; c++) vr[nb][c][0] = vr[nb][c][1] = vr[nb][c][2] = vr[nb][c][3] = 0u;
		// O's rescale, skipped where every column's factor is 1 (the maxima
		// and eb unchanged: most blocks, once a split's first few are in).
		if (__any_sync(0xffffffffu, cf[0] != 1.0f || cf[1] != 1.0f))
#pragma unroll
			for (int u = 0; u < NO; u++) o[u][0] *= cf[0], o[u][1] *= cf[1], o[u][2] *= cf[0], o[u][3] *= cf[1];
#pragma unroll
		for (int u = 0; u < NO; u++) {
			u32 a[4]; // rows g and g+8 (hi) of positions 2t, 2t+1 (nb 0) and 8+2t, 9+2t (nb 1)
			if (FP8) {
#pragma unroll
				for (int nb = 0; nb < 2; nb++) {
					// bytes: dim E of positions 2t, 2t+1, then dim E+1 of them
					const u32 w = gbx_prmt(gbx_movmatrix_t(vr[nb][u / 4][u % 4]), 0u, 0x3120u);
					a[2 * nb] = gbx_e4m3x2_f16<0>(w), a[2 * nb + 1] = gbx_e4m3x2_f16<1>(w);
				}
				gbx_mma_f16(o[u], a[0], a[1], a[2], a[3], pb0, pb1);
			} else {
#pragma unroll
				for (int nb = 0; nb < 2; nb++)
#pragma unroll
					for (int hi = 0; hi < 2; hi++) a[2 * nb + hi] = gbx_movmatrix_t(vr[nb][u / 2][2 * (u % 2) + hi]);
				gbx_mma(o[u], a[0], a[1], a[2], a[3], pb0, pb1);
			}
		}
	};
	// A warp takes blocks warp, warp + NW, …; with PF it loads each one
	// before it attends the one before (two buffers, taken in turn); with
	// RING (an E4M3 cache) its lane 0 keeps the next GBX_ATTN_RING_SLOTS
	// blocks' bulk copies into the warp's slots in flight (a barrier a
	// slot), and the warp reads a block's words from its slot as load would
	// from the cache.
	if constexpr (RING) {
		constexpr int R = GBX_ATTN_RING_SLOTS, KB = GBX_KV_BLOCK * DIM, SLOT = GBX_ATTN_RING_SLOT(DIM);
		const u32 s0 = gbx_smem_addr(ring) + warp * R * SLOT, b0 = gbx_smem_addr(ring) + NW * R * SLOT + warp * R * 8;
		if (lane == 0) {
			for (int i = 0; i < R; i++) gbx_mbar_init(b0 + 8 * i, 1);
			gbx_mbar_init_fence();
		}
		__syncwarp();
		// issue copies block bi into slot i (lane 0; the table's shuffle is
		// the warp's).
		auto issue = [&](int i, int bi) {
			const int e = __shfl_sync(0xffffffffu, btl, bi & 31);
			if (lane != 0) return;
			const long long blk = bi < 32 ? e : bt[first + bi];
			const char *kp = (const char *)cache + gbx_kv_off(blk, layer, layers, 0, kh, kvHeads, 0, DIM);
			const float *sp = kvScale + gbx_kv_soff(blk, layer, layers, 0, kh, kvHeads, 0);
			const u32 sl = s0 + i * SLOT, bar = b0 + 8 * i;
			gbx_mbar_expect(bar, SLOT);
			gbx_bulk_g2s(sl, kp, KB, bar);
			gbx_bulk_g2s(sl + KB, kp + vOff, KB, bar);
			gbx_bulk_g2s(sl + 2 * KB, sp, 4 * GBX_KV_BLOCK, bar);
			gbx_bulk_g2s(sl + 2 * KB + 4 * GBX_KV_BLOCK, sp + kvHeads * GBX_KV_BLOCK, 4 * GBX_KV_BLOCK, bar);
		};
		for (int i = 0; i < R && warp + i * NW < nblk; i++) issue(i, warp + i * NW);
		for (int n = 0, bi = warp; bi < nblk; n++, bi += NW) {
			const int i = n % R;
			const u32 sl = s0 + i * SLOT;
			gbx_mbar_wait(b0 + 8 * i, (n / R) & 1);
			kvBuf<NL> kb;
			const u32 kw = sl + g * DIM + 16 * tq;
#pragma unroll
			for (int nb = 0; nb < 2; nb++)
#pragma unroll
				for (int c = 0; c < NL; c++) {
					gbx_lds128(kb.k[nb][c], kw + 8 * nb * DIM + 64 * c);
					gbx_lds128(kb.v[nb][c], kw + KB + 8 * nb * DIM + 64 * c);
				}
#pragma unroll
			for (int nb = 0; nb < 2; nb++) {
				kb.ks[nb] = __uint_as_float(gbx_lds32(sl + 2 * KB + 4 * (g + 8 * nb)));
				kb.vs[nb] = __uint_as_float(gbx_lds32(sl + 2 * KB + 4 * GBX_KV_BLOCK + 4 * (g + 8 * nb)));
			}
			attend(kb, bi);
			// The slot is free once every lane has its words (attend used them).
			if (bi + R * NW < nblk) {
				__syncwarp();
				issue(i, bi + R * NW);
			}
		}
		__syncthreads(); // every warp's ring read before so, over it, is written
	} else if (PF) {
		kvBuf<NL> ka, kb;
		if (warp < nblk) load(ka, warp);
		for (int bi = warp; bi < nblk; bi += 2 * NW) {
			if (bi + NW < nblk) load(kb, bi + NW);
			attend(ka, bi);
			if (bi + NW >= nblk) break;
			if (bi + 2 * NW < nblk) load(ka, bi + 2 * NW);
			attend(kb, bi + NW);
		}
	} else {
		for (int bi = warp; bi < nblk; bi += NW) {
			kvBuf<NL> kb;
			load(kb, bi);
			attend(kb, bi);
		}
	}
	// The warps, in order, through shared memory (a warp without a block:
	// m = −inf, weight 0).
	const float ou[2] = {FP8 ? gbx_pow2(eb[0] - 127) : 1.0f, FP8 ? gbx_pow2(eb[1] - 127) : 1.0f};
#pragma unroll
	for (int u = 0; u < NO; u++)
#pragma unroll
		for (int hi = 0; hi < 2; hi++) {
			const int d = gbx_attn_vdim<FP8>(u, hi, g), od = d + d / 32;
			so[warp][2 * tq * RS + od] = o[u][2 * hi] * ou[0];
			so[warp][(2 * tq + 1) * RS + od] = o[u][2 * hi + 1] * ou[1];
		}
	if (g == 0) sm[warp][2 * tq] = mh[0], sm[warp][2 * tq + 1] = mh[1], sl[warp][2 * tq] = lh[0], sl[warp][2 * tq + 1] = lh[1];
	__syncthreads();
	gbx_attn_warps_w<NW, GP>(&sm[0][0], &sl[0][0], nr * G, sM, &se[0][0], sL);
	__syncthreads();
	for (int j = 0; j < nr; j++) { // row j's heads are columns jG …; a split past its end it lacks
		const int ns = (n0 + j + S - 1) / S;
		if (s < ns)
			gbx_attn_warps_out<NW, DIM, GP, RS, true>(&sM[j * G], &se[0][j * G], &sL[j * G], &so[0][j * G * RS], G,
			                                         kvHeads, kh, r + j, lead + j, s, ns, maxSplits, out, outStride, yq,
			                                         fmt, partO, partML);
	}
}

// The entry points: a BF16 cache (kvScale unused; four blocks an SM) and an
// E4M3 cache, by head dim; the _rows ones group a prefill's rows (ROWS,
// above), the others attend a row a block. A row's results are the same
// bits from either, so the host picks the _rows ones for steps that feed a
// sequence several rows: their grouping costs registers (an E4M3 block
// took 122 against 96 on the H200, one block an SM fewer) and a decode
// step has nothing to group. The _pf ones (PF: a warp's next KV block
// loaded before it attends the current one, two in registers) give the
// plain ones' bits; the host picks them for launches of few blocks, which
// leave SMs idle whatever their occupancy. The _ring ones (below) give
// them too; the host picks them for large launches on an E4M3 cache.
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 4)
    gbx_attn_mma64(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                   int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                   const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                   int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, false, false, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 4)
    gbx_attn_mma128(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                    int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                    const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                    int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, false, false, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma64_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                        int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                        const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                        int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, true, false, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma128_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                         int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                         const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                         int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, true, false, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 4)
    gbx_attn_mma64_rows(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                        int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                        const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                        int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, false, true, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 4)
    gbx_attn_mma128_rows(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                         int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                         const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                         int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, false, true, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma64_e4m3_rows(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                             int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                             const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                             int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, true, true, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma128_e4m3_rows(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                              int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                              const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                              int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, true, true, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 2)
    gbx_attn_mma64_pf(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                      int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                      const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                      int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, false, false, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 2)
    gbx_attn_mma128_pf(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                       int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                       const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                       int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, false, false, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
// The _ring entry points, for an E4M3 cache on compute capability 9.0 and
// above (elsewhere the plain kernel's code: the host takes them there
// only). Five blocks an SM: 96 registers (ptxas, no spills), 34 KB of
// shared memory each. On the H200 a BF16 form (8 KB a KV block, three blocks
// an SM by shared memory) read no faster than the plain BF16 kernel at
// large batches and slower at long single sequences; there is none.
#if GBX_BULK
#define GBX_ATTN_RING true
#else
#define GBX_ATTN_RING false
#endif
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 5)
    gbx_attn_mma64_e4m3_ring(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                             int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                             const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                             int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, true, false, false, GBX_ATTN_RING>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos,
	                                                  seq, btOff, blocks, split, row0, scale, partO, partML, maxSplits,
	                                                  out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 5)
    gbx_attn_mma128_e4m3_ring(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                              int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                              const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                              int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, true, false, false, GBX_ATTN_RING>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos,
	                                                  seq, btOff, blocks, split, row0, scale, partO, partML, maxSplits,
	                                                  out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 3)
    gbx_attn_mma64_e4m3_pf(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                           int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                           const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                           int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, true, false, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 3)
    gbx_attn_mma128_e4m3_pf(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                            int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                            const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                            int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, true, false, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
