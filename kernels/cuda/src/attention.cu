// attention.cu: causal grouped-query attention over the paged KV cache, for
// prefill and decode alike: every row (query token) at position p attends
// to positions 0..p of its sequence, read from the cache (its own step's K
// and V were stored there first by gbx_lm_rope), as kernels/cpu's
// attention does.
//
// Flash-decoding: a row's context is cut into splits of S positions (S a
// function of the context length alone, abi.h); gbx_attn_partial computes,
// for one split of one row and one KV head, each of the KV head's query
// heads' running maximum m, sum l and unnormalised output o (an online
// softmax over tiles of GBX_ATTN_TILE positions), and gbx_attn_reduce
// combines a row's splits in order. Every sum has a fixed order, so a row's
// result is the same in any batch, in prefill and in decode. Scores,
// softmax and the weighted sum run in float (the CPU: double), with fmaf
// for the dot products.

#include "attn.cuh"

// gbx_ld8 loads 8 consecutive cache values at element off (a multiple of 8)
// as floats: E4M3 (unscaled) when FP8, otherwise F32 when f32, else BF16.
// The format is a template parameter for E4M3 so that the loops of the
// F32/BF16 instantiations stay as they were (a runtime three-way branch in
// the V loop made gbx_attn_partial 2.2× slower on the H200).
template <bool FP8>
__device__ __forceinline__ void gbx_ld8(const void *cache, int f32, long long off, float (&v)[8]) {
	if (!FP8 && f32) {
		const float4 a = *reinterpret_cast<const float4 *>((const float *)cache + off);
		const float4 b = *reinterpret_cast<const float4 *>((const float *)cache + off + 4);
		v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
		return;
	}
	if (FP8) {
		const uint2 u = *reinterpret_cast<const uint2 *>((const u8 *)cache + off);
#pragma unroll
		for (int k = 0; k < 8; k++) v[k] = e4m3f((u8)((k < 4 ? u.x : u.y) >> (8 * (k % 4))));
		return;
	}
	const uint4 u = *reinterpret_cast<const uint4 *>((const u16 *)cache + off);
	const u32 w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
	for (int k = 0; k < 4; k++) {
		v[2 * k] = __uint_as_float(w[k] << 16);
		v[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
	}
}

template <bool FP8>
__device__ __forceinline__ float gbx_ld1(const void *cache, int f32, long long off) {
	if (FP8) return e4m3f(((const u8 *)cache)[off]);
	return f32 ? ((const float *)cache)[off] : __uint_as_float((u32)((const u16 *)cache)[off] << 16);
}

// gbxAttnShared is gbx_attn_partial's shared memory, sized for the largest
// group (one buffer for every instantiation of gbx_attn_g).
struct gbxAttnShared {
	float q[GBX_ATTN_MAX_GROUP * GBX_ATTN_MAX_DIM]; // the row's query heads of the KV head
	float p[GBX_ATTN_MAX_GROUP * GBX_ATTN_TILE];   // a tile's scores, then weights
	float m[GBX_ATTN_MAX_GROUP], l[GBX_ATTN_MAX_GROUP], c[GBX_ATTN_MAX_GROUP];
	long long kb[GBX_ATTN_TILE / GBX_KV_BLOCK], vb[GBX_ATTN_TILE / GBX_KV_BLOCK]; // a tile's K and V block offsets
	long long sb[GBX_ATTN_TILE / GBX_KV_BLOCK];                                   // E4M3: its blocks' K scales
};

// gbx_attn_g is gbx_attn_partial for G query heads per KV head, an E4M3
// cache when FP8 (otherwise F32 when f32, else BF16).
template <int G, bool FP8>
__device__ __forceinline__ void gbx_attn_g(gbxAttnShared &sh, const float *qkv, int stride, const void *cache,
                                           int f32, const float *kvScale, int layer, int layers, int kvHeads, int dim, const int *pos, const int *seq,
                                           const int *btOff, const int *blocks, const int *split, int row0,
                                           float scale, float *partO, float *partML, int maxSplits, float *out,
                                           int outStride) {
	constexpr int NT = GBX_ATTN_THREADS, NW = NT / 32, TILE = GBX_ATTN_TILE;
	const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
	const int rc = blockIdx.z, r = row0 + rc, g = blockIdx.y, s = blockIdx.x;
	const int n = pos[r] + 1, S = split[r], ns = (n + S - 1) / S;
	if (s >= ns) return;
	const int j0 = s * S, j1 = gbx_imin(j0 + S, n);
	const int *bt = blocks + btOff[seq[r]];
	constexpr bool fp8 = FP8;
	// The G query heads of KV head g are contiguous: heads g·G .. g·G+G−1.
	const float *q = qkv + (long long)r * stride + (long long)g * G * dim;
	float *qs = sh.q, *ps = sh.p;
	for (int i = t; i < G * dim; i += NT) qs[i] = q[i];
	if (t < G) {
		sh.m[t] = __int_as_float(0xff800000) /* -inf */;
		sh.l[t] = 0.0f;
	}
	float acc[2][G];
#pragma unroll
	for (int k = 0; k < 2; k++)
#pragma unroll
		for (int h = 0; h < G; h++) acc[k][h] = 0.0f;
	__syncthreads();
	for (int tile = j0; tile < j1; tile += TILE) { // tile is a multiple of GBX_KV_BLOCK
		const int cnt = gbx_imin(TILE, j1 - tile);
		if (t < (cnt + GBX_KV_BLOCK - 1) / GBX_KV_BLOCK) {
			const long long blk = bt[tile / GBX_KV_BLOCK + t];
			sh.kb[t] = gbx_kv_off(blk, layer, layers, 0, g, kvHeads, 0, dim);
			sh.vb[t] = gbx_kv_off(blk, layer, layers, 1, g, kvHeads, 0, dim);
			sh.sb[t] = gbx_kv_soff(blk, layer, layers, 0, g, kvHeads, 0);
		}
		__syncthreads();
		// Scores: one position per thread.
		if (t < cnt) {
			const long long off = sh.kb[t / GBX_KV_BLOCK] + (long long)(t % GBX_KV_BLOCK) * dim;
			float sc[G];
#pragma unroll
			for (int h = 0; h < G; h++) sc[h] = 0.0f;
			for (int i = 0; i < dim; i += 8) {
				float kv[8];
				gbx_ld8<FP8>(cache, f32, off + i, kv);
#pragma unroll
				for (int h = 0; h < G; h++)
#pragma unroll
					for (int e = 0; e < 8; e++) sc[h] = fmaf(qs[h * dim + i + e], kv[e], sc[h]);
			}
			// E4M3: K's scale of the position.
			const float ks = fp8 ? kvScale[sh.sb[t / GBX_KV_BLOCK] + t % GBX_KV_BLOCK] : 1.0f;
#pragma unroll
			for (int h = 0; h < G; h++) ps[h * TILE + t] = sc[h] * ks * scale;
		}
		__syncthreads();
		// Online softmax: the tile's maximum, the new running maximum, the
		// weights exp(s − m) in place of the scores (E4M3: times V's scale
		// of the position), the running sum (of the weights alone).
		for (int h = warp; h < G; h += NW) {
			float mt = __int_as_float(0xff800000) /* -inf */;
			for (int j = lane; j < cnt; j += 32) mt = fmaxf(mt, ps[h * TILE + j]);
			for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
			const float mo = sh.m[h], mn = fmaxf(mo, mt);
			float sum = 0.0f;
			for (int j = lane; j < cnt; j += 32) {
				const float e = expf(ps[h * TILE + j] - mn);
				ps[h * TILE + j] = fp8 ? e * kvScale[sh.sb[j / GBX_KV_BLOCK] + kvHeads * GBX_KV_BLOCK + j % GBX_KV_BLOCK] : e;
				sum += e;
			}
			for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
			__syncwarp();
			if (lane == 0) {
				const float c = expf(mo - mn); // 0 on the first tile (mo = −inf)
				sh.c[h] = c;
				sh.l[h] = sh.l[h] * c + sum;
				sh.m[h] = mn;
			}
		}
		__syncthreads();
		// The weighted sum of V: each thread owns dims t and t + NT.
#pragma unroll
		for (int k = 0; k < 2; k++) {
			const int i = t + k * NT;
			if (i >= dim) continue;
#pragma unroll
			for (int h = 0; h < G; h++) acc[k][h] *= sh.c[h];
			// Unrolled for independent loads; each sum still runs over j in
			// order.
#pragma unroll 4
			for (int j = 0; j < cnt; j++) {
				const float v = gbx_ld1<FP8>(cache, f32, sh.vb[j / GBX_KV_BLOCK] + (long long)(j % GBX_KV_BLOCK) * dim + i);
#pragma unroll
				for (int h = 0; h < G; h++) acc[k][h] = fmaf(ps[h * TILE + j], v, acc[k][h]);
			}
		}
		__syncthreads();
	}
	const int H = kvHeads * G;
#pragma unroll
	for (int k = 0; k < 2; k++) {
		const int i = t + k * NT;
		if (i >= dim) continue;
#pragma unroll
		for (int h = 0; h < G; h++) {
			const int hq = g * G + h;
			if (ns == 1) out[(long long)r * outStride + (long long)hq * dim + i] = __fdiv_rn(acc[k][h], sh.l[h]);
			else partO[(((long long)rc * H + hq) * maxSplits + s) * dim + i] = acc[k][h];
		}
	}
	if (ns > 1 && t < G) {
		const long long b = ((long long)rc * H + g * G + t) * maxSplits + s;
		partML[2 * b] = sh.m[t];
		partML[2 * b + 1] = sh.l[t];
	}
}

// gbx_attn_partial: block (s, g, rc) attends row r = row0 + rc's query heads
// of KV head g (group of them, contiguous in qkv: row r's q at qkv + r·stride)
// over split s of its context (pos[r] + 1 positions, split[r] per split),
// reading the cache (cacheFmt F32, BF16 or E4M3 with its scales kvScale) of
// layer through the row's block table. E4M3: a score is the dot product of
// the query and the E4M3 values times K's scale; a weight times V's scale
// multiplies the E4M3 values of V. A row with one split writes its output to out (row stride
// outStride) directly: o / l. Otherwise it writes m, l (partML) and o
// (partO), indexed ((rc·heads + head)·maxSplits + s), for gbx_attn_reduce.
extern "C" __global__ void __launch_bounds__(GBX_ATTN_THREADS)
    gbx_attn_partial(const float *qkv, int stride, const void *cache, int cacheFmt, const float *kvScale, int layer,
                     int layers, int kvHeads, int group, int dim, const int *pos, const int *seq, const int *btOff, const int *blocks,
                     const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                     int outStride) {
	gbx_pdl();
	__shared__ gbxAttnShared sh;
	const int f32 = cacheFmt == GBX_FMT_F32;
#define GBX_ATTN_CASE(G)                                                                                              \
	case G:                                                                                                           \
		if (cacheFmt == GBX_FMT_E4M3)                                                                                 \
			gbx_attn_g<G, true>(sh, qkv, stride, cache, f32, kvScale, layer, layers, kvHeads, dim, pos, seq, btOff,     \
			                    blocks, split, row0, scale, partO, partML, maxSplits, out, outStride);                  \
		else                                                                                                          \
			gbx_attn_g<G, false>(sh, qkv, stride, cache, f32, kvScale, layer, layers, kvHeads, dim, pos, seq, btOff,    \
			                     blocks, split, row0, scale, partO, partML, maxSplits, out, outStride);                 \
		break;
	switch (group) {
		GBX_ATTN_CASE(1)
		GBX_ATTN_CASE(2)
		GBX_ATTN_CASE(3)
		GBX_ATTN_CASE(4)
		GBX_ATTN_CASE(5)
		GBX_ATTN_CASE(6)
		GBX_ATTN_CASE(7)
		GBX_ATTN_CASE(8)
		GBX_ATTN_CASE(9)
		GBX_ATTN_CASE(10)
		GBX_ATTN_CASE(11)
		GBX_ATTN_CASE(12)
		GBX_ATTN_CASE(13)
		GBX_ATTN_CASE(14)
		GBX_ATTN_CASE(15)
		GBX_ATTN_CASE(16)
	}
#undef GBX_ATTN_CASE
}

// gbx_attn_dec<DIM, GP> is gbx_attn_partial's fast form for a BF16 cache,
// head dims DIM of 64 or 128 and up to GP query heads per KV head (GP a
// power of two, 2 ≤ GP ≤ DIM/8; a group G < GP is padded with zero query
// heads whose results are dropped): same grid, arguments and outputs,
// GBX_ATTN_DEC_THREADS threads. It is built to keep as many bytes of the
// cache in flight as the memory system needs:
//
//   - A warp takes whole KV blocks (GBX_KV_BLOCK positions: K and V of a
//     head are each one contiguous run of 16·DIM values), warp w the
//     split's blocks w, w + NW, …, and issues every 16-byte load of the
//     block's K and V at once, before any math: lane l's i-th load is bytes
//     16·l + 512·i of the run, so each warp load instruction reads 512
//     contiguous bytes, and lane l holds dims (l mod LP)·8 … +8 of positions
//     PI·i + l/LP (LP = DIM/8 lanes per position, PI = 32/LP positions per
//     instruction).
//   - The lane's partial dot products (GP heads × NI = DIM/16 positions) are
//     summed over the LP lanes of a position by recursive halving: each
//     xor step sends half of the values still held and keeps the other
//     half, so log₂ LP steps leave GP/2 finished scores per lane, each
//     computed once (all of one head: lanes sub·GP/LP share head
//     sub/(LP/GP)) — DIM/8·GP/2 shuffles a block instead of a butterfly's
//     GP·NI·log₂ LP.
//   - The online softmax runs on the owners of the scores (one exp per
//     score); the block's weights go through a per-warp tile of shared
//     memory to the lanes holding V, which accumulate GP × 8 outputs in
//     float.
//
// At the end the PI position groups of a warp are added by shuffles, and
// the warps' states merged through shared memory in warp order. Every sum
// has a fixed order that depends on the split alone, so a row's result is
// the same in any batch. With yq, a row of one split is also written in
// fmt (TF32, BF16 or F16), the o projection's operand (the row's other
// splits: gbx_attn_reduce).
template <int DIM, int GP> struct gbxAttnDecShared {
	static constexpr int NW = GBX_ATTN_DEC_THREADS / 32;
	float q[GP * DIM];                  // the row's query heads of the KV head (zero past G)
	float p[NW][GBX_KV_BLOCK * GP];     // a warp's weights of its KV block, [position][head]
	float c[NW][GP];                    // a warp's corrections exp(m_old − m_new)
	float m[NW][GP], l[NW][GP];         // the warps' final states
	float M[GP], e[NW][GP], L[GP];      // their maxima, weights and merged sums (gbx_attn_warps_w)
	float acc[NW][GP * DIM];
};

// gbx_bf16x8 unpacks 8 BF16 values (16 bytes) into floats.
__device__ __forceinline__ void gbx_bf16x8(const u32 (&w)[4], float (&v)[8]) {
#pragma unroll
	for (int k = 0; k < 4; k++) {
		v[2 * k] = __uint_as_float(w[k] << 16);
		v[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
	}
}

template <int DIM, int GP>
__device__ __forceinline__ void gbx_attn_dec(const float *qkv, int stride, const void *cache, int layer, int layers,
                                             int kvHeads, int G, const int *pos, const int *seq, const int *btOff,
                                             const int *blocks, const int *split, int row0, float scale, float *partO,
                                             float *partML, int maxSplits, float *out, int outStride, void *yq,
                                             int fmt) {
	constexpr int NT = GBX_ATTN_DEC_THREADS, NW = NT / 32;
	constexpr int LP = DIM / 8, PI = 32 / LP, NI = DIM / 16, OWN = GP / 2, LPH = LP / GP;
	static_assert(GP >= 2 && GP <= LP && (GP & (GP - 1)) == 0, "GP: a power of two from 2 to DIM/8");
	static_assert(NI * PI == GBX_KV_BLOCK, "a warp's loads cover one KV block");
	const float NEG = __int_as_float(0xff800000); // -inf
	__shared__ gbxAttnDecShared<DIM, GP> sh;
	const int t = threadIdx.x, lane = t & 31, warp = t >> 5, sub = lane % LP, pr = lane / LP;
	const int rc = blockIdx.z, r = row0 + rc, g = blockIdx.y, s = blockIdx.x;
	const int n = pos[r] + 1, S = split[r], ns = (n + S - 1) / S;
	if (s >= ns) return;
	const int j0 = s * S, j1 = gbx_imin(j0 + S, n);
	const int *bt = blocks + btOff[seq[r]];
	{
		const float *q = qkv + (long long)r * stride + (long long)g * G * DIM;
		for (int i = t; i < GP * DIM; i += NT) sh.q[i] = i < G * DIM ? q[i] : 0.0f;
	}
	__syncthreads();
	// The lane's head after the halving, and its first instruction there.
	const int hOwn = sub / LPH, i0 = (OWN * sub) % NI;
	const bool leader = sub % LPH == 0 && pr == 0;
	float *pw = sh.p[warp], *cw = sh.c[warp];
	float acc[GP][8];
#pragma unroll
	for (int h = 0; h < GP; h++)
#pragma unroll
		for (int e = 0; e < 8; e++) acc[h][e] = 0.0f;
	float mh = NEG, lh = 0.0f; // the running maximum and sum of head hOwn
	const long long vOff = 2LL * kvHeads * GBX_KV_BLOCK * DIM; // bytes from K's run to V's
	for (int b = j0 / GBX_KV_BLOCK + warp; b * GBX_KV_BLOCK < j1; b += NW) {
		const char *kp = (const char *)cache + 2 * gbx_kv_off(bt[b], layer, layers, 0, g, kvHeads, 0, DIM) + 16 * lane;
		u32 kr[NI][4], vr[NI][4];
#pragma unroll
		for (int i = 0; i < NI; i++) gbx_ldg128(kr[i], kp + 512 * i);
#pragma unroll
		for (int i = 0; i < NI; i++) gbx_ldg128(vr[i], kp + vOff + 512 * i);
		const int valid = j1 - b * GBX_KV_BLOCK; // positions of the block in the split (≥ 1)
		// The lane's partial dot products, x[h·NI + i].
		float x[GP * NI];
#pragma unroll
		for (int h = 0; h < GP; h++) {
			const float4 qa = *reinterpret_cast<const float4 *>(&sh.q[h * DIM + sub * 8]);
			const float4 qb = *reinterpret_cast<const float4 *>(&sh.q[h * DIM + sub * 8 + 4]);
			const float q8[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
#pragma unroll
			for (int i = 0; i < NI; i++) {
				float k8[8];
				gbx_bf16x8(kr[i], k8);
				float a = 0.0f;
#pragma unroll
				for (int e = 0; e < 8; e++) a = fmaf(q8[e], k8[e], a);
				x[h * NI + i] = a;
			}
		}
		// Recursive halving over the position's lanes: at offset o the lane
		// keeps the lower half of its values (bit o clear) or the upper, and
		// adds its partner's copy of them.
#pragma unroll
		for (int o = LP / 2; o >= 1; o >>= 1) {
			const int half = GP * NI * o / LP;
			const bool up = lane & o;
#pragma unroll
			for (int c = 0; c < half; c++) {
				const float keep = up ? x[c + half] : x[c], send = up ? x[c] : x[c + half];
				x[c] = keep + __shfl_xor_sync(0xffffffffu, send, o);
			}
		}
		// x[u] is the score of head hOwn at instruction i0 + u: position
		// PI·(i0 + u) + pr.
		float mt = NEG;
#pragma unroll
		for (int u = 0; u < OWN; u++) {
			x[u] = PI * (i0 + u) + pr < valid ? x[u] * scale : NEG;
			mt = fmaxf(mt, x[u]);
		}
#pragma unroll
		for (int o = 1; o < LPH; o <<= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
#pragma unroll
		for (int o = LP; o < 32; o <<= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
		const float mn = fmaxf(mh, mt), cf = expf(mh - mn); // cf: 0 on the first block (mh = −inf)
		float ps = 0.0f;
#pragma unroll
		for (int u = 0; u < OWN; u++) {
			const float e = expf(x[u] - mn); // 0 past the split
			pw[(PI * (i0 + u) + pr) * GP + hOwn] = e;
			ps += e;
		}
#pragma unroll
		for (int o = 1; o < LPH; o <<= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);
#pragma unroll
		for (int o = LP; o < 32; o <<= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);
		lh = lh * cf + ps;
		mh = mn;
		if (leader) cw[hOwn] = cf;
		__syncwarp();
#pragma unroll
		for (int h = 0; h < GP; h++) {
			const float c = cw[h];
#pragma unroll
			for (int e = 0; e < 8; e++) acc[h][e] *= c;
		}
#pragma unroll
		for (int i = 0; i < NI; i++) {
			const int p = PI * i + pr;
			float v8[8];
			gbx_bf16x8(vr[i], v8);
			if (p >= valid) // past the split: the cache may hold anything there
#pragma unroll
				for (int e = 0; e < 8; e++) v8[e] = 0.0f;
#pragma unroll
			for (int h = 0; h < GP; h++) {
				const float w = pw[p * GP + h];
#pragma unroll
				for (int e = 0; e < 8; e++) acc[h][e] = fmaf(w, v8[e], acc[h][e]);
			}
		}
		__syncwarp(); // the weights are read before the next block writes them
	}
	// The warp's position groups (their weights share the warp's maximum).
#pragma unroll
	for (int o = LP; o < 32; o <<= 1)
#pragma unroll
		for (int h = 0; h < GP; h++)
#pragma unroll
			for (int e = 0; e < 8; e++) acc[h][e] += __shfl_xor_sync(0xffffffffu, acc[h][e], o);
	if (pr == 0)
#pragma unroll
		for (int h = 0; h < GP; h++)
#pragma unroll
			for (int e = 0; e < 8; e++) sh.acc[warp][h * DIM + sub * 8 + e] = acc[h][e];
	if (leader) sh.m[warp][hOwn] = mh, sh.l[warp][hOwn] = lh;
	__syncthreads();
	gbx_attn_warps_w<NW, GP>(&sh.m[0][0], &sh.l[0][0], G, sh.M, &sh.e[0][0], sh.L);
	__syncthreads();
	gbx_attn_warps_out<NW, DIM, GP, DIM, false>(sh.M, &sh.e[0][0], sh.L, &sh.acc[0][0], G, kvHeads, g, r, rc, s,
	                                            ns, maxSplits, out, outStride, yq, fmt, partO, partML);
}

// The entry points of gbx_attn_dec, one per shape (each with its own
// register budget), their parameters written out for the host's checks;
// kvScale, gbx_attn_mma's for an E4M3 cache, is unused (a BF16 cache).
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_dec64_2(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                     int kvHeads, int group,
                     const int *pos, const int *seq, const int *btOff, const int *blocks, const int *split, int row0,
                     float scale, float *partO, float *partML, int maxSplits, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_dec<64, 2>(qkv, stride, cache, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split, row0, scale,
	                     partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_dec64_4(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                     int kvHeads, int group,
                     const int *pos, const int *seq, const int *btOff, const int *blocks, const int *split, int row0,
                     float scale, float *partO, float *partML, int maxSplits, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_dec<64, 4>(qkv, stride, cache, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split, row0, scale,
	                     partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_dec64_8(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                     int kvHeads, int group,
                     const int *pos, const int *seq, const int *btOff, const int *blocks, const int *split, int row0,
                     float scale, float *partO, float *partML, int maxSplits, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_dec<64, 8>(qkv, stride, cache, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split, row0, scale,
	                     partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_dec128_2(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                     int kvHeads, int group,
                     const int *pos, const int *seq, const int *btOff, const int *blocks, const int *split, int row0,
                     float scale, float *partO, float *partML, int maxSplits, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_dec<128, 2>(qkv, stride, cache, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split, row0, scale,
	                     partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_dec128_4(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                     int kvHeads, int group,
                     const int *pos, const int *seq, const int *btOff, const int *blocks, const int *split, int row0,
                     float scale, float *partO, float *partML, int maxSplits, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_dec<128, 4>(qkv, stride, cache, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split, row0, scale,
	                     partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_dec128_8(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                     int kvHeads, int group,
                     const int *pos, const int *seq, const int *btOff, const int *blocks, const int *split, int row0,
                     float scale, float *partO, float *partML, int maxSplits, float *out, int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_dec<128, 8>(qkv, stride, cache, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split, row0, scale,
	                     partO, partML, maxSplits, out, outStride, yq, fmt);
}

// gbx_attn_reduce: block (h, rc) combines the splits of row r = row0 + rc,
// query head h (rows with one split were written by gbx_attn_partial or
// gbx_attn_dec): M = max m_s, L = Σ l_s·e_s, out = (Σ o_s·e_s) / L with
// e_s = exp(m_s − M), in split order; with yq, also out in fmt (TF32, BF16
// or F16: the o projection's operand, as gbx_row_out writes it).
extern "C" __global__ void gbx_attn_reduce(const int *pos, const int *split, int row0, int heads, int dim,
                                           const float *partO, const float *partML, int maxSplits, float *out,
                                           int outStride, void *yq, int fmt) {
	gbx_pdl();
	__shared__ float e[GBX_ATTN_MAX_SPLITS];
	__shared__ float L;
	const int rc = blockIdx.y, r = row0 + rc, h = blockIdx.x;
	const int n = pos[r] + 1, S = split[r], ns = (n + S - 1) / S;
	if (ns == 1) return;
	const long long base = ((long long)rc * heads + h) * maxSplits;
	if (threadIdx.x == 0) {
		float M = __int_as_float(0xff800000) /* -inf */;
		for (int s = 0; s < ns; s++) M = fmaxf(M, partML[2 * (base + s)]);
		float l = 0.0f;
		for (int s = 0; s < ns; s++) {
			e[s] = expf(partML[2 * (base + s)] - M);
			l = l + partML[2 * (base + s) + 1] * e[s];
		}
		L = l;
	}
	__syncthreads();
	for (int i = threadIdx.x; i < dim; i += blockDim.x) {
		float o = 0.0f;
		for (int s = 0; s < ns; s++) o = o + partO[(base + s) * dim + i] * e[s];
		const long long at = (long long)r * outStride + (long long)h * dim + i;
		out[at] = __fdiv_rn(o, L);
		if (yq) gbx_st(yq, fmt, at, out[at]);
	}
}
