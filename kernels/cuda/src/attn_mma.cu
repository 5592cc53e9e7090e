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
// 16 positions a warp runs, as mma.sync m16n8k16 (BF16 operands, float
// accumulators), S = K·Qᵀ (positions × query heads: DIM/16 k-steps) and
// Oᵀ += Vᵀ·Pᵀ (dims × heads: DIM/16 tiles of 16 dims): the 16 positions and
// 16 dims are the mma's rows and the ≤ 8 heads its columns (those past the
// group are zero and ignored), so no row is padding. Lane (g, t) = (lane/4,
// lane mod 4) loads 16 bytes of K and of V per load at positions g and g+8
// (nb = 0, 1): BF16, dims 32c + 8t … +8, word w dims 32c + 8t + 2w, +1;
// E4M3, dims 64c + 16t … +16, word w dims D … D+3 (D = 64c + 16t + 4w),
// widened by gbx_e4m3x2_bf16 into pairs (D, D+2) and (D+1, D+3). K's words
// are the A fragments as they are (k-step k takes BF16 words 2(k mod 2),
// +1 of load k/2, or E4M3 word k mod 4 of load k/4, for k-slots 2t, 2t+1
// and 2t+8, 2t+9): each k-slot so stands for a dim fixed by the lane, and
// the query's B fragments take the same dims, so the dot product's terms
// are only permuted. A score fragment holds positions g, g+8 of heads 2t,
// 2t+1 (E4M3: times K's scale of the position); the online softmax
// reduces them over the 8 lanes of a t. The weights, rounded to BF16 (E4M3:
// after the product with V's scale of the position; the sum l takes them
// without it), are an 8×8 block (positions × heads) each, which movmatrix's
// transpose turns into Pᵀ's B fragments; a word of V (E4M3: each of its two
// BF16 pairs) is an 8×8 block (positions × 8 dims), whose transpose is an
// A fragment of Vᵀ (gbx_attn_vdim gives the dim of each of its rows). The query
// heads and P are rounded to BF16, so results differ from gbx_attn_dec's
// by BF16 rounding (~2⁻⁹), not in summation order alone; every order is
// still fixed by the split. A warp loads a block's K and V when it starts
// on it: occupancy is what keeps loads in flight, and registers bound it.
// On the H200 (2026-12-02, TestAttnBench, 256 × 1k), loading the next
// block first (or two blocks at once) took 202 registers, two blocks an
// SM: 1.7 TB/s on an E4M3 cache, against 2.0 TB/s at 155 and three. The
// BF16 entry points are held to four blocks an SM (128 registers): 3.4
// TB/s against 2.8; the E4M3 ones so held lose (1.9 against 2.1 TB/s).
template <int NL> struct kvBuf {
	u32 k[2][NL][4], v[2][NL][4]; // K and V at the block's positions g, g+8 (lane (g, t))
	float ks[2], vs[2];           // E4M3: their scales
};

// gbx_attn_vdim is the dim of row g (+8 with hi) of gbx_attn_mma's output tile u:
// BF16, of word 2(u mod 2) + hi of load u/2; E4M3, of pair hi of word u mod
// 4 of load u/4.
template <bool FP8> __device__ __forceinline__ int gbx_attn_vdim(int u, int hi, int g) {
	return FP8 ? 64 * (u / 4) + 16 * (g / 2) + 4 * (u % 4) + hi + 2 * (g % 2)
	           : 32 * (u / 2) + 8 * (g / 2) + 2 * (2 * (u % 2) + hi) + g % 2;
}

template <int DIM, bool FP8, bool ROWS>
__device__ __forceinline__ void gbx_attn_mma(const float *qkv, int stride, const void *cache, const float *kvScale,
                                             int layer, int layers, int kvHeads, int G, const int *pos, const int *seq,
                                             const int *btOff, const int *blocks, const int *split, int row0,
                                             float scale, float *partO, float *partML, int maxSplits, float *out,
                                             int outStride, void *yq, int fmt) {
	// ES: bytes per value; NL: 16-byte loads per position and lane; KS:
	// k-steps (of 16 dims); NO: output tiles (16 dims each).
	constexpr int NT = GBX_ATTN_DEC_THREADS, NW = NT / 32, GP = 8, ES = FP8 ? 1 : 2, NL = DIM * ES / 64;
	constexpr int KS = DIM / 16, NO = DIM / 16;
	const float NEG = __int_as_float(0xff800000); // -inf
	__shared__ float so[NW][GP * DIM];
	__shared__ float sm[NW][GP], sl[NW][GP];
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
	// qb[k]: query head g's B fragments b0, b1 of k-step k, from dims q0 …
	// q0+3 (BF16: q0 = 32(k/2) + 8t + 4(k mod 2), b0 = dims q0, q0+1, b1 =
	// q0+2, q0+3; E4M3: q0 = 64(k/4) + 16t + 4(k mod 4), b0 = q0, q0+2, b1 =
	// q0+1, q0+3) of column g's row; zero past the rows' heads.
	u32 qb[KS][2];
	{
		const float *q = qkv + (long long)(r + g / G) * stride + (long long)(kh * G + g % G) * DIM;
#pragma unroll
		for (int k = 0; k < KS; k++) {
			const int q0 = FP8 ? 64 * (k / 4) + 16 * tq + 4 * (k % 4) : 32 * (k / 2) + 8 * tq + 4 * (k % 2);
			float4 a = {0.0f, 0.0f, 0.0f, 0.0f};
			if (g < nr * G) a = *reinterpret_cast<const float4 *>(q + q0);
			qb[k][0] = FP8 ? gbx_bf16x2(a.x, a.z) : gbx_bf16x2(a.x, a.y);
			qb[k][1] = FP8 ? gbx_bf16x2(a.y, a.w) : gbx_bf16x2(a.z, a.w);
		}
	}
	// o[u]: tile u's outputs, heads 2t, 2t+1 at dims vdim(u, 0, g) (o[u][0],
	// o[u][1]) and vdim(u, 1, g) (o[u][2], o[u][3]); mh, lh: heads 2t and
	// 2t+1's running maxima and sums.
	float o[NO][4];
#pragma unroll
	for (int i = 0; i < NO; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
	float mh[2] = {NEG, NEG}, lh[2] = {0.0f, 0.0f};
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
			u32 a0, a1, a2, a3;
			if (FP8) {
				const u32 w0 = kr[0][k / 4][k % 4], w1 = kr[1][k / 4][k % 4];
				a0 = gbx_e4m3x2_bf16<0>(w0), a1 = gbx_e4m3x2_bf16<0>(w1);
				a2 = gbx_e4m3x2_bf16<1>(w0), a3 = gbx_e4m3x2_bf16<1>(w1);
			} else {
				a0 = kr[0][k / 2][2 * (k % 2)], a1 = kr[1][k / 2][2 * (k % 2)];
				a2 = kr[0][k / 2][2 * (k % 2) + 1], a3 = kr[1][k / 2][2 * (k % 2) + 1];
			}
			gbx_mma(sc, a0, a1, a2, a3, qb[k][0], qb[k][1]);
		}
		float x[4];
#pragma unroll
		for (int i = 0; i < 4; i++) x[i] = g + 8 * (i / 2) < vc[i % 2] ? sc[i] * cur.ks[i / 2] * scale : NEG;
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
		if (FP8) { // the weights times V's scales (0 past the split, whatever the scale there)
#pragma unroll
			for (int i = 0; i < 4; i++) x[i] = g + 8 * (i / 2) < vc[i % 2] ? x[i] * cur.vs[i / 2] : 0.0f;
		}
		const u32 pb0 = gbx_movmatrix_t(gbx_bf16x2(x[0], x[1])), pb1 = gbx_movmatrix_t(gbx_bf16x2(x[2], x[3]));
		// V past the split may hold anything: zero the positions g (+8) there
		// (a shorter row's weights are 0 from its end on).
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
			if (8 * nb + g >= valid)
#pragma unroll
				for (int c = 0; c < NL; c++) vr[nb][c][0] = vr[nb][c][1] = vr[nb][c][2] = vr[nb][c][3] = 0u;
#pragma unroll
		for (int u = 0; u < NO; u++) {
			u32 a[4]; // rows g and g+8 (hi) of positions 2t, 2t+1 (nb 0) and 8+2t, 9+2t (nb 1)
#pragma unroll
			for (int nb = 0; nb < 2; nb++)
#pragma unroll
				for (int hi = 0; hi < 2; hi++) {
					u32 w;
					if (FP8) {
						const u32 raw = vr[nb][u / 4][u % 4];
						w = hi ? gbx_e4m3x2_bf16<1>(raw) : gbx_e4m3x2_bf16<0>(raw);
					} else {
						w = vr[nb][u / 2][2 * (u % 2) + hi];
					}
					a[2 * nb + hi] = gbx_movmatrix_t(w);
				}
			float (&oc)[4] = o[u];
			oc[0] *= cf[0], oc[1] *= cf[1], oc[2] *= cf[0], oc[3] *= cf[1];
			gbx_mma(oc, a[0], a[1], a[2], a[3], pb0, pb1);
		}
	};
	// A warp takes blocks warp, warp + NW, ….
	for (int bi = warp; bi < nblk; bi += NW) {
		kvBuf<NL> kb;
		load(kb, bi);
		attend(kb, bi);
	}
	// The warps, in order, through shared memory (a warp without a block:
	// m = −inf, weight 0).
#pragma unroll
	for (int u = 0; u < NO; u++)
#pragma unroll
		for (int hi = 0; hi < 2; hi++) {
			const int d = gbx_attn_vdim<FP8>(u, hi, g);
			so[warp][2 * tq * DIM + d] = o[u][2 * hi];
			so[warp][(2 * tq + 1) * DIM + d] = o[u][2 * hi + 1];
		}
	if (g == 0) sm[warp][2 * tq] = mh[0], sm[warp][2 * tq + 1] = mh[1], sl[warp][2 * tq] = lh[0], sl[warp][2 * tq + 1] = lh[1];
	__syncthreads();
	for (int j = 0; j < nr; j++) { // row j's heads are columns jG …; a split past its end it lacks
		const int ns = (n0 + j + S - 1) / S;
		if (s < ns)
			gbx_attn_warps_out<NW, DIM, GP>(&sm[0][j * G], &sl[0][j * G], &so[0][j * G * DIM], G, kvHeads, kh, r + j, lead + j,
			                                s, ns, maxSplits, out, outStride, yq, fmt, partO, partML);
	}
}

// The entry points: a BF16 cache (kvScale unused; four blocks an SM) and an
// E4M3 cache, by head dim; the _rows ones group a prefill's rows (ROWS,
// above), the others attend a row a block. A row's results are the same
// bits from either, so the host picks the _rows ones for steps that feed a
// sequence several rows: their grouping costs registers (an E4M3 block
// took 114 against 96 on the H200, one block an SM fewer) and a decode
// step has nothing to group.
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 4)
    gbx_attn_mma64(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                   int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                   const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                   int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, false, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 4)
    gbx_attn_mma128(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                    int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                    const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                    int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, false, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma64_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                        int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                        const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                        int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, true, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma128_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                         int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                         const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                         int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, true, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 4)
    gbx_attn_mma64_rows(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                        int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                        const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                        int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, false, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS, 4)
    gbx_attn_mma128_rows(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                         int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                         const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                         int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, false, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma64_e4m3_rows(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                             int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                             const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                             int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, true, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma128_e4m3_rows(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                              int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                              const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                              int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, true, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks,
	                              split, row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
