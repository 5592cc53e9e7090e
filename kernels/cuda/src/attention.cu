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

#include "lm.cuh"
#include "rows.cuh"

// gbx_ld8 loads 8 consecutive cache values at element off (a multiple of 8)
// as floats.
__device__ __forceinline__ void gbx_ld8(const void *cache, int f32, long long off, float (&v)[8]) {
	if (f32) {
		const float4 a = *reinterpret_cast<const float4 *>((const float *)cache + off);
		const float4 b = *reinterpret_cast<const float4 *>((const float *)cache + off + 4);
		v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
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

__device__ __forceinline__ float gbx_ld1(const void *cache, int f32, long long off) {
	return f32 ? ((const float *)cache)[off] : __uint_as_float((u32)((const u16 *)cache)[off] << 16);
}

// gbxAttnShared is gbx_attn_partial's shared memory, sized for the largest
// group (one buffer for every instantiation of gbx_attn_g).
struct gbxAttnShared {
	float q[GBX_ATTN_MAX_GROUP * GBX_ATTN_MAX_DIM]; // the row's query heads of the KV head
	float p[GBX_ATTN_MAX_GROUP * GBX_ATTN_TILE];   // a tile's scores, then weights
	float m[GBX_ATTN_MAX_GROUP], l[GBX_ATTN_MAX_GROUP], c[GBX_ATTN_MAX_GROUP];
	long long kb[GBX_ATTN_TILE / GBX_KV_BLOCK], vb[GBX_ATTN_TILE / GBX_KV_BLOCK]; // a tile's K and V block offsets
};

// gbx_attn_g is gbx_attn_partial for G query heads per KV head.
template <int G>
__device__ __forceinline__ void gbx_attn_g(gbxAttnShared &sh, const float *qkv, int stride, const void *cache, int f32,
                                           int layer, int layers, int kvHeads, int dim, const int *pos, const int *seq,
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
				gbx_ld8(cache, f32, off + i, kv);
#pragma unroll
				for (int h = 0; h < G; h++)
#pragma unroll
					for (int e = 0; e < 8; e++) sc[h] = fmaf(qs[h * dim + i + e], kv[e], sc[h]);
			}
#pragma unroll
			for (int h = 0; h < G; h++) ps[h * TILE + t] = sc[h] * scale;
		}
		__syncthreads();
		// Online softmax: the tile's maximum, the new running maximum, the
		// weights exp(s − m) in place of the scores, the running sum.
		for (int h = warp; h < G; h += NW) {
			float mt = __int_as_float(0xff800000) /* -inf */;
			for (int j = lane; j < cnt; j += 32) mt = fmaxf(mt, ps[h * TILE + j]);
			for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
			const float mo = sh.m[h], mn = fmaxf(mo, mt);
			float sum = 0.0f;
			for (int j = lane; j < cnt; j += 32) {
				const float e = expf(ps[h * TILE + j] - mn);
				ps[h * TILE + j] = e;
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
				const float v = gbx_ld1(cache, f32, sh.vb[j / GBX_KV_BLOCK] + (long long)(j % GBX_KV_BLOCK) * dim + i);
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
// reading the cache (BF16, or F32 when f32) of layer through the row's
// block table. A row with one split writes its output to out (row stride
// outStride) directly: o / l. Otherwise it writes m, l (partML) and o
// (partO), indexed ((rc·heads + head)·maxSplits + s), for gbx_attn_reduce.
extern "C" __global__ void __launch_bounds__(GBX_ATTN_THREADS)
    gbx_attn_partial(const float *qkv, int stride, const void *cache, int f32, int layer, int layers, int kvHeads,
                     int group, int dim, const int *pos, const int *seq, const int *btOff, const int *blocks,
                     const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                     int outStride) {
	__shared__ gbxAttnShared sh;
#define GBX_ATTN_CASE(G)                                                                                              \
	case G:                                                                                                           \
		gbx_attn_g<G>(sh, qkv, stride, cache, f32, layer, layers, kvHeads, dim, pos, seq, btOff, blocks, split, row0, scale, \
		              partO, partML, maxSplits, out, outStride);                                                       \
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

// gbx_attn_split is gbx_attn_partial's fast form, for head dims whose eighth
// divides 32 (8 … 256) and up to GBX_ATTN_SPLIT_MAX_GROUP query heads per
// KV head: same grid, arguments and outputs, GBX_ATTN_SPLIT_THREADS
// threads. A position is read by dim/8 neighbouring lanes, 8 values (16
// bytes of bf16) each, so every load of K and V is a wide, coalesced one;
// the block is cut into "streams" of dim/8 lanes, each running its own
// online softmax over U positions at a time (stream k takes positions
// j0 + (k + it·streams)·U …), the query heads in registers. The streams'
// states are then combined in a fixed tree: within a warp by shuffles (a
// symmetric combination, the same on both lanes), then across warps
// through shared memory, lower warp first. Which position a stream takes
// depends on the split alone, so a row's result is the same in any batch.
// With yq, a row of one split is also written in fmt (TF32, BF16 or F16),
// the o projection's operand (the row's other splits: gbx_attn_reduce).

// gbxAttnState is one stream's online-softmax state for G heads: running
// maximum m, sum l and unnormalised output acc over its 8 dims.
template <int G> struct gbxAttnState {
	float m[G], l[G], acc[G][8];
};

// gbx_attn_merge folds b into a: a ← a·e_a + b·e_b, e = exp(m − max). An
// empty state (m = −inf) weighs 0. It is symmetric: merging a into b
// gives the same bits.
template <int G> __device__ __forceinline__ void gbx_attn_merge(gbxAttnState<G> &a, const float (&bm)[G], const float (&bl)[G], const float (&bacc)[G][8]) {
#pragma unroll
	for (int h = 0; h < G; h++) {
		const float M = fmaxf(a.m[h], bm[h]);
		const float ea = a.m[h] == __int_as_float(0xff800000) ? 0.0f : expf(a.m[h] - M);
		const float eb = bm[h] == __int_as_float(0xff800000) ? 0.0f : expf(bm[h] - M);
		a.l[h] = a.l[h] * ea + bl[h] * eb;
#pragma unroll
		for (int e = 0; e < 8; e++) a.acc[h][e] = a.acc[h][e] * ea + bacc[h][e] * eb;
		a.m[h] = M;
	}
}

template <int G, int U>
__device__ __forceinline__ void gbx_attn_lanes(float *sh, const float *qkv, int stride, const void *cache, int f32,
                                               int layer, int layers, int kvHeads, int dim, const int *pos,
                                               const int *seq, const int *btOff, const int *blocks, const int *split,
                                               int row0, float scale, float *partO, float *partML, int maxSplits,
                                               float *out, int outStride, void *yq, int fmt) {
	constexpr int NT = GBX_ATTN_SPLIT_THREADS, NW = NT / 32;
	const float NEG = __int_as_float(0xff800000); // -inf
	const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
	const int LP = dim >> 3, sub = lane & (LP - 1), st = t / LP, streams = NT / LP;
	const int rc = blockIdx.z, r = row0 + rc, g = blockIdx.y, s = blockIdx.x;
	const int n = pos[r] + 1, S = split[r], ns = (n + S - 1) / S;
	if (s >= ns) return;
	const int j0 = s * S, j1 = gbx_imin(j0 + S, n);
	const int *bt = blocks + btOff[seq[r]];
	const long long vOff = (long long)kvHeads * GBX_KV_BLOCK * dim; // V's offset from K in a block
	float q[G][8];
	{
		const float *qr = qkv + (long long)r * stride + (long long)g * G * dim + sub * 8;
#pragma unroll
		for (int h = 0; h < G; h++) {
			const float4 a = *reinterpret_cast<const float4 *>(qr + h * dim);
			const float4 b = *reinterpret_cast<const float4 *>(qr + h * dim + 4);
			q[h][0] = a.x, q[h][1] = a.y, q[h][2] = a.z, q[h][3] = a.w;
			q[h][4] = b.x, q[h][5] = b.y, q[h][6] = b.z, q[h][7] = b.w;
		}
	}
	gbxAttnState<G> st8;
#pragma unroll
	for (int h = 0; h < G; h++) {
		st8.m[h] = NEG, st8.l[h] = 0.0f;
#pragma unroll
		for (int e = 0; e < 8; e++) st8.acc[h][e] = 0.0f;
	}
	// Every thread runs every step (shuffles need whole warps); positions
	// past j1 are masked.
	for (int c0 = j0; c0 < j1; c0 += streams * U) {
		const int jb = c0 + st * U;
		float kv[U][8];
		long long vo[U];
#pragma unroll
		for (int u = 0; u < U; u++) {
			const int j = jb + u;
			if (j < j1) {
				const long long ko = gbx_kv_off(bt[j / GBX_KV_BLOCK], layer, layers, 0, g, kvHeads, j % GBX_KV_BLOCK, dim) + sub * 8;
				vo[u] = ko + vOff;
				gbx_ld8(cache, f32, ko, kv[u]);
			} else {
				vo[u] = -1;
#pragma unroll
				for (int e = 0; e < 8; e++) kv[u][e] = 0.0f;
			}
		}
		float sc[U][G];
#pragma unroll
		for (int u = 0; u < U; u++)
#pragma unroll
			for (int h = 0; h < G; h++) {
				float a = 0.0f;
#pragma unroll
				for (int e = 0; e < 8; e++) a = fmaf(q[h][e], kv[u][e], a);
				sc[u][h] = a;
			}
		// V's loads go out before the reduction's shuffles.
		float vv[U][8];
#pragma unroll
		for (int u = 0; u < U; u++) {
			if (vo[u] >= 0) gbx_ld8(cache, f32, vo[u], vv[u]);
			else
#pragma unroll
				for (int e = 0; e < 8; e++) vv[u][e] = 0.0f;
		}
		// The dot products over the stream's lanes (an xor butterfly: every
		// lane ends with the same sum).
		for (int o = LP >> 1; o > 0; o >>= 1)
#pragma unroll
			for (int u = 0; u < U; u++)
#pragma unroll
				for (int h = 0; h < G; h++) sc[u][h] += __shfl_xor_sync(0xffffffffu, sc[u][h], o);
#pragma unroll
		for (int h = 0; h < G; h++) {
			float mt = NEG;
#pragma unroll
			for (int u = 0; u < U; u++) {
				sc[u][h] *= scale;
				if (vo[u] >= 0) mt = fmaxf(mt, sc[u][h]);
			}
			if (mt == NEG) continue; // no position of this step (the same for the stream's lanes)
			const float mn = fmaxf(st8.m[h], mt), c = expf(st8.m[h] - mn); // 0 on the first step
			st8.l[h] *= c;
#pragma unroll
			for (int e = 0; e < 8; e++) st8.acc[h][e] *= c;
#pragma unroll
			for (int u = 0; u < U; u++) {
				if (vo[u] < 0) continue;
				const float p = expf(sc[u][h] - mn);
				st8.l[h] += p;
#pragma unroll
				for (int e = 0; e < 8; e++) st8.acc[h][e] = fmaf(p, vv[u][e], st8.acc[h][e]);
			}
			st8.m[h] = mn;
		}
	}
	// The warp's streams, by shuffles.
	for (int o = LP; o < 32; o <<= 1) {
		float bm[G], bl[G], bacc[G][8];
#pragma unroll
		for (int h = 0; h < G; h++) {
			bm[h] = __shfl_xor_sync(0xffffffffu, st8.m[h], o);
			bl[h] = __shfl_xor_sync(0xffffffffu, st8.l[h], o);
#pragma unroll
			for (int e = 0; e < 8; e++) bacc[h][e] = __shfl_xor_sync(0xffffffffu, st8.acc[h][e], o);
		}
		gbx_attn_merge<G>(st8, bm, bl, bacc);
	}
	// The warps, by halves through shared memory: sh holds NW/2 states of
	// G·(dim + 2) floats.
	const int per = G * (dim + 2);
	for (int half = NW / 2; half > 0; half >>= 1) {
		if (warp >= half && warp < 2 * half && lane < LP) {
			float *w = sh + (warp - half) * per;
#pragma unroll
			for (int h = 0; h < G; h++) {
#pragma unroll
				for (int e = 0; e < 8; e++) w[h * dim + sub * 8 + e] = st8.acc[h][e];
				if (sub == 0) w[G * dim + 2 * h] = st8.m[h], w[G * dim + 2 * h + 1] = st8.l[h];
			}
		}
		__syncthreads();
		if (warp < half) {
			const float *w = sh + warp * per;
			float bm[G], bl[G], bacc[G][8];
#pragma unroll
			for (int h = 0; h < G; h++) {
				bm[h] = w[G * dim + 2 * h], bl[h] = w[G * dim + 2 * h + 1];
#pragma unroll
				for (int e = 0; e < 8; e++) bacc[h][e] = w[h * dim + sub * 8 + e];
			}
			gbx_attn_merge<G>(st8, bm, bl, bacc);
		}
		__syncthreads();
	}
	if (warp != 0 || lane >= LP) return;
	const int H = kvHeads * G;
#pragma unroll
	for (int h = 0; h < G; h++) {
		const int hq = g * G + h;
		float *o;
		if (ns == 1) {
			const long long i0 = (long long)r * outStride + (long long)hq * dim + sub * 8;
#pragma unroll
			for (int e = 0; e < 8; e++) {
				const float v = __fdiv_rn(st8.acc[h][e], st8.l[h]);
				out[i0 + e] = v;
				if (yq) gbx_st(yq, fmt, i0 + e, v);
			}
			continue;
		}
		const long long b = ((long long)rc * H + hq) * maxSplits + s;
		o = partO + b * dim + sub * 8;
#pragma unroll
		for (int e = 0; e < 8; e++) o[e] = st8.acc[h][e];
		if (sub == 0) partML[2 * b] = st8.m[h], partML[2 * b + 1] = st8.l[h];
	}
}

extern "C" __global__ void __launch_bounds__(GBX_ATTN_SPLIT_THREADS)
    gbx_attn_split(const float *qkv, int stride, const void *cache, int f32, int layer, int layers, int kvHeads,
                   int group, int dim, const int *pos, const int *seq, const int *btOff, const int *blocks,
                   const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                   int outStride, void *yq, int fmt) {
	__shared__ float sh[GBX_ATTN_SPLIT_THREADS / 64 * GBX_ATTN_SPLIT_MAX_GROUP * (GBX_ATTN_MAX_DIM + 2)];
#define GBX_ATTN_CASE(G, U)                                                                                           \
	case G:                                                                                                           \
		gbx_attn_lanes<G, U>(sh, qkv, stride, cache, f32, layer, layers, kvHeads, dim, pos, seq, btOff, blocks, split,  \
		                     row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);                          \
		break;
	switch (group) {
		GBX_ATTN_CASE(1, 4)
		GBX_ATTN_CASE(2, 4)
		GBX_ATTN_CASE(3, 4)
		GBX_ATTN_CASE(4, 4)
		GBX_ATTN_CASE(5, 2)
		GBX_ATTN_CASE(6, 2)
		GBX_ATTN_CASE(7, 2)
		GBX_ATTN_CASE(8, 2)
	}
#undef GBX_ATTN_CASE
}

// gbx_attn_reduce: block (h, rc) combines the splits of row r = row0 + rc,
// query head h (rows with one split were written by gbx_attn_partial or
// gbx_attn_split): M = max m_s, L = Σ l_s·e_s, out = (Σ o_s·e_s) / L with
// e_s = exp(m_s − M), in split order; with yq, also out in fmt (TF32, BF16
// or F16: the o projection's operand, as gbx_row_out writes it).
extern "C" __global__ void gbx_attn_reduce(const int *pos, const int *split, int row0, int heads, int dim,
                                           const float *partO, const float *partML, int maxSplits, float *out,
                                           int outStride, void *yq, int fmt) {
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
