// lm.cu: the element-wise and per-row ops of a causal language model's
// step, following kernels/cpu/lm*.go operation by operation (module lm,
// compiled with -fmad=false: each float result is the IEEE operation the
// CPU performs; statistics in double, rounded once):
//
//	gbx_lm_convert   a stored tensor (F32, BF16, F16) to a weight format
//	gbx_lm_fill      random values (benchmarks)
//	gbx_lm_embed     the embedding lookup
//	gbx_lm_norm      residual add + RMSNorm, written as a linear's operand
//	gbx_lm_rope      per-head q/k RMSNorm, RoPE, K and V into the cache
//	gbx_lm_silu_rows SiLU(gate)·up, written as a linear's operand
//
// (A linear's operand from rows of floats is gbx_quant_rows of fp8.cu, and
// what a GEMM leaves undone gbx_scale_bias of epilogue.cu: both are shared
// with tensor models, in module ops.)

#include "lm.cuh"
#include "rows.cuh"

// gbx_lm_convert: dst[i] = src[i] for n values, src stored as srcFmt (F32,
// BF16 or F16, widened exactly), dst as dstFmt (F32, TF32, BF16 or F16,
// rounded): a checkpoint tensor uploaded as stored, converted in place on
// the device (convertLM's RoundTF32/RoundBF16/RoundFP16 of the widened
// value).
extern "C" __global__ void gbx_lm_convert(const void *src, int srcFmt, void *dst, int dstFmt, long long n) {
	gbx_pdl();
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride)
		gbx_st(dst, dstFmt, i, gbx_ld(src, srcFmt, i));
}

// gbx_hash is a 32-bit integer hash (lowbias32, Chris Wellons).
__device__ __forceinline__ u32 gbx_hash(u32 x) {
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

// gbx_lm_fill: n values of dst in fmt, uniform in [lo, hi) from seed (F32,
// BF16, F16 rounded; E4M3 the saturating encoding of the value; U8 a random
// byte, lo and hi ignored). For benchmarks: weights and caches of the right
// size and rough scale, built on the device.
extern "C" __global__ void gbx_lm_fill(void *dst, int fmt, long long n, unsigned seed, float lo, float hi) {
	gbx_pdl();
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
		u32 h = gbx_hash((u32)i ^ gbx_hash(seed ^ (u32)(i >> 32) * 0x9e3779b9u));
		if (fmt == GBX_FMT_U8) {
			((u8 *)dst)[i] = (u8)(h >> 24);
			continue;
		}
		float v = lo + (hi - lo) * ((float)(h >> 8) * 0x1p-24f);
		if (fmt == GBX_FMT_E4M3) ((u8 *)dst)[i] = (u8)(f2e4m3x2(v, 0.0f) & 0xff);
		else gbx_st(dst, fmt, i, v);
	}
}

// gbx_lm_embed: row b of x = the embedding of tokens[b], from table [vocab,
// hidden] stored as fmt (one block per row).
extern "C" __global__ void __launch_bounds__(1024) gbx_lm_embed(const void *table, int fmt, const int *tokens, float *x, int hidden) {
	gbx_pdl();
	long long t = tokens[blockIdx.x];
	float *xr = x + (long long)blockIdx.x * hidden;
	for (int i = threadIdx.x; i < hidden; i += blockDim.x) xr[i] = gbx_ld(table, fmt, t * hidden + i);
}

// gbx_lm_norm_regs is gbx_lm_norm's row (xr, its delta dr, the norm's
// output yr) for a block of GBX_SUM_LANES threads and at most NV·blockDim
// columns, held in registers (gbx_row_out_regs): every load of a thread
// first, then the stores. Thread t is lane t and holds elements t, t +
// blockDim, … in that order: the same sums, the same bits.
template <int NV>
__device__ __forceinline__ void gbx_lm_norm_regs(float *xr, const float *dr, const float *dxs, float dxr,
                                                 const float *dws, const float *dbias, const float *__restrict__ w,
                                                 float *yr, void *yq, int fmt, float *xs, int cols, double eps,
                                                 int margin, double *sg) {
	float v[NV], wv[NV];
#pragma unroll
	for (int j = 0; j < NV; j++) {
		const int i = threadIdx.x + j * blockDim.x;
		v[j] = wv[j] = 0.0f;
		if (i < cols) {
			v[j] = xr[i];
			if (dr) v[j] = v[j] + gbx_epi(dr[i], dxs, dxr, dws, dbias, i);
			wv[j] = w[i];
		}
	}
	double acc[GBX_SUM_SLOTS] = {};
#pragma unroll
	for (int j = 0; j < NV; j++) {
		const int i = threadIdx.x + j * blockDim.x;
		if (i < cols) {
			if (dr) xr[i] = v[j];
			acc[0] += (double)v[j] * (double)v[j];
		}
	}
	const double ss = blockSumLanes(acc, sg);
	const double inv = 1.0 / sqrt(ss / (double)cols + eps);
#pragma unroll
	for (int j = 0; j < NV; j++) {
		const int i = threadIdx.x + j * blockDim.x;
		v[j] = (float)((double)v[j] * inv * (double)wv[j]);
		if (i < cols) yr[i] = v[j];
	}
	gbx_row_out_regs(v, yr, cols, yq, blockIdx.x, fmt, xs, margin);
}

// gbx_lm_norm: for each block b, the row r = rowIdx[b] (rowIdx NULL: r = b)
// of the residual stream x [*, cols]: x[r] += delta[r] (float; delta may be
// NULL), then yf[b] = RMSNorm(x[r])·w (rmsNormRow of kernels/cpu: Σx² in
// double, x·inv·w in double rounded once), then yq[b] = yf[b] in fmt
// (gbx_row_out; yq may be yf for F32). delta is the output of the linear
// layer before, whose epilogue (gbx_epi: dxs[r], dws, dbias; each may be
// NULL) is applied here on load. dxs may be xs itself (the row's scale is
// read before the row's new one is written), but only with rowIdx NULL.
template <bool SMALL>
__device__ __forceinline__ void gbx_lm_norm_t(float *x, const float *delta, const float *dxs, const float *dws,
                                              const float *dbias, const float *__restrict__ w, const int *rowIdx,
                                              float *yf, void *yq, int fmt, float *xs, int cols, double eps,
                                              int margin) {
	__shared__ double sg[33];
	const long long r = rowIdx ? rowIdx[blockIdx.x] : blockIdx.x;
	float *xr = x + r * cols;
	const float *dr = delta ? delta + r * cols : 0;
	const float dxr = dxs ? dxs[r] : 1.0f;
	float *yr = yf + (long long)blockIdx.x * cols;
	const bool regs = SMALL && blockDim.x == GBX_SUM_LANES;
	if (regs && cols <= 4 * GBX_SUM_LANES) {
		gbx_lm_norm_regs<4>(xr, dr, dxs, dxr, dws, dbias, w, yr, yq, fmt, xs, cols, eps, margin, sg);
		return;
	}
	if (regs && cols <= 8 * GBX_SUM_LANES) {
		gbx_lm_norm_regs<8>(xr, dr, dxs, dxr, dws, dbias, w, yr, yq, fmt, xs, cols, eps, margin, sg);
		return;
	}
	// Σx² over blockSumLanes' lanes, lane l adding elements l, l +
	// GBX_SUM_LANES, … (a thread holds lanes t, t + blockDim, …): the same
	// sum whatever the block's size, which perRowLM picks by the step's row
	// count, so a row's norm does not depend on the rows beside it.
	double acc[GBX_SUM_SLOTS];
#pragma unroll
	for (int k = 0; k < GBX_SUM_SLOTS; k++) {
		acc[k] = 0;
		const int l = threadIdx.x + k * blockDim.x;
		if (l >= GBX_SUM_LANES) continue;
		for (int i = l; i < cols; i += GBX_SUM_LANES) {
			float v = xr[i];
			if (dr) {
				v = v + gbx_epi(dr[i], dxs, dxr, dws, dbias, i);
				xr[i] = v;
			}
			acc[k] += (double)v * (double)v;
		}
	}
	static_assert(GBX_LM_THREADS >= 256 && GBX_SUM_LANES % GBX_LM_THREADS == 0, "blockSumLanes' block sizes");
	const double ss = blockSumLanes(acc, sg);
	const double inv = 1.0 / sqrt(ss / (double)cols + eps);
	for (int i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = (float)((double)xr[i] * inv * (double)w[i]);
	gbx_row_out(yr, cols, yq, blockIdx.x, fmt, xs, margin);
}

// gbx_lm_norm and gbx_lm_norm_small (a step of at most GBX_REGS_MAX_ROWS
// rows: a row in registers, gbx_lm_norm_regs) are gbx_lm_norm_t, two
// kernels so that each has its own registers.
extern "C" __global__ void __launch_bounds__(1024) gbx_lm_norm(float *x, const float *delta, const float *dxs, const float *dws,
                                       const float *dbias, const float *__restrict__ w, const int *rowIdx, float *yf,
                                       void *yq, int fmt, float *xs, int cols, double eps, int margin) {
	gbx_pdl();
	gbx_lm_norm_t<false>(x, delta, dxs, dws, dbias, w, rowIdx, yf, yq, fmt, xs, cols, eps, margin);
}
extern "C" __global__ void __launch_bounds__(1024)
    gbx_lm_norm_small(float *x, const float *delta, const float *dxs, const float *dws, const float *dbias,
                      const float *__restrict__ w, const int *rowIdx, float *yf, void *yq, int fmt, float *xs, int cols,
                      double eps, int margin) {
	gbx_pdl();
	gbx_lm_norm_t<true>(x, delta, dxs, dws, dbias, w, rowIdx, yf, yq, fmt, xs, cols, eps, margin);
}

// gbx_rope_head is gbx_lm_rope's work on one head of dim = 32·NJ values
// (64, 128, 256), held in registers (lane l: elements l, l + 32, …; the
// rotation's pairs i, i + dim/2 in the same lane), with gbx_lm_rope's bits:
// each lane's loads first, then the stores (the general loop waits a round
// trip an element behind a store that may alias the next load).
struct gbx_rope_head {
	float *x;
	bool isQ, isK, epi;
	const float *exs;
	float exr;
	const float *ews, *ebias;
	long long col0;
	const float *nw8; // the head's norm weights, or NULL
	double eps;
	const float *cs, *sn;
	void *cache;
	int cacheFmt;
	float *kvScale;
	long long off, soff; // K and V heads: the cache's value and scale offsets

	template <int NJ>
	__device__ __forceinline__ void run(int lane) const {
		constexpr int D = 32 * NJ, HJ = NJ / 2;
		const bool rope = isQ || isK;
		float v[NJ], nl[NJ];
#pragma unroll
		for (int j = 0; j < NJ; j++) {
			v[j] = x[lane + 32 * j];
			nl[j] = rope && nw8 ? nw8[lane + 32 * j] : 0.0f;
		}
		if (epi) {
#pragma unroll
			for (int j = 0; j < NJ; j++) v[j] = gbx_epi(v[j], exs, exr, ews, ebias, col0 + lane + 32 * j);
		}
		if (rope) {
			double inv = 0;
			if (nw8) {
				double ss = 0;
#pragma unroll
				for (int j = 0; j < NJ; j++) ss += (double)v[j] * (double)v[j];
				for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
				inv = 1.0 / sqrt(ss / (double)D + eps);
			}
#pragma unroll
			for (int j = 0; j < HJ; j++) {
				float a = v[j], b = v[j + HJ];
				if (nw8) {
					a = (float)((double)a * inv * (double)nl[j]);
					b = (float)((double)b * inv * (double)nl[j + HJ]);
				}
				const float c = cs[lane + 32 * j], s = sn[lane + 32 * j];
				v[j] = a * c - b * s;
				v[j + HJ] = b * c + a * s;
			}
		}
		if (epi || rope) {
#pragma unroll
			for (int j = 0; j < NJ; j++) x[lane + 32 * j] = v[j];
		}
		if (isQ) return;
		if (cacheFmt == GBX_FMT_E4M3) {
			float m = 0.0f;
#pragma unroll
			for (int j = 0; j < NJ; j++) m = fmaxf(m, fabsf(v[j])); // NaN skipped, as Amax
			for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
			const float sc = fp8Scale(m, 0);
			if (lane == 0) kvScale[soff] = sc;
#pragma unroll
			for (int j = 0; j < NJ; j++) ((u8 *)cache)[off + lane + 32 * j] = e4m3q(v[j], sc);
		} else {
#pragma unroll
			for (int j = 0; j < NJ; j++) gbx_st(cache, cacheFmt, off + lane + 32 * j, v[j]);
		}
	}
};

// gbx_lm_rope: blocks (r, y) for row r of qkv [rows, stride] (q heads, then
// k heads, then v heads, dim values each; dim at most GBX_ATTN_MAX_DIM), at
// position pos[r] of sequence seq[r], whose block table is
// blocks[btOff[seq[r]]...]; the gridDim.y blocks of a row share its heads
// (a step of few rows spreads a row over many SMs). One warp per head:
// q and k heads get the per-head RMSNorm (qNorm, kNorm; NULL for none) and
// RoPE in place (qkRope of kernels/cpu: angle = invFreq[i]·pos in float,
// cos and sin in double rounded to float, each product rounded before the
// sum); k and v heads are then stored at the row's position in the cache,
// as cacheFmt: F32, BF16 (rounded), or E4M3 with the head's scale in
// kvScale (abi.h: s = FP8Scale(amax of the head's dim values, 0), the
// values E4M3(x / s), an IEEE division, saturating; the amax a max, so the
// same in any order). The q/k/v projection's epilogue (gbx_epi: exs[r],
// ews, ebias by column; each may be NULL) is applied to each head first.
template <bool SMALL>
__device__ __forceinline__ void gbx_lm_rope_t(float *qkv, int stride, const float *exs, const float *ews,
                                              const float *ebias, const float *__restrict__ qNorm,
                                              const float *__restrict__ kNorm, double eps,
                                              const float *__restrict__ invFreq, const int *pos, const int *seq,
                                              const int *btOff, const int *blocks, void *cache, int cacheFmt,
                                              float *kvScale, int layer, int layers, int heads, int kvHeads, int dim) {
	__shared__ float cs[GBX_ATTN_MAX_DIM / 2], sn[GBX_ATTN_MAX_DIM / 2];
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	const int r = blockIdx.x, p = pos[r], half = dim / 2;
	const long long blk = blocks[btOff[seq[r]] + p / GBX_KV_BLOCK];
	const int slot = p % GBX_KV_BLOCK;
	float *row = qkv + (long long)r * stride;
	const bool epi = exs || ews || ebias;
	const float exr = exs ? exs[r] : 1.0f;
	// The row's angles, shared by every head (ropeAngles of kernels/cpu).
	for (int i = threadIdx.x; i < half; i += blockDim.x) {
		const double ang = (double)(invFreq[i] * (float)p);
		cs[i] = (float)cos(ang);
		sn[i] = (float)sin(ang);
	}
	__syncthreads();
	for (int h = blockIdx.y * nw + warp; h < heads + 2 * kvHeads; h += gridDim.y * nw) {
		float *x = row + (long long)h * dim;
		const bool isQ = h < heads, isK = !isQ && h < heads + kvHeads;
		const int kv = isK ? 0 : 1, g = isK ? h - heads : h - heads - kvHeads;
		if (SMALL && (dim == 64 || dim == 128 || dim == 256)) {
			gbx_rope_head regs = {x, isQ, isK, epi, exs, exr, ews, ebias, (long long)h * dim, isQ ? qNorm : kNorm, eps, cs, sn,
			                      cache, cacheFmt, kvScale, isQ ? 0 : gbx_kv_off(blk, layer, layers, kv, g, kvHeads, slot, dim),
			                      isQ ? 0 : gbx_kv_soff(blk, layer, layers, kv, g, kvHeads, slot)};
			if (dim == 64) regs.run<2>(lane);
			else if (dim == 128) regs.run<4>(lane);
			else regs.run<8>(lane);
			continue;
		}
		if (epi) {
			for (int i = lane; i < dim; i += 32) x[i] = gbx_epi(x[i], exs, exr, ews, ebias, (long long)h * dim + i);
			__syncwarp();
		}
		if (isQ || isK) {
			const float *nw8 = isQ ? qNorm : kNorm;
			double inv = 0;
			if (nw8) {
				double ss = 0;
				for (int i = lane; i < dim; i += 32) ss += (double)x[i] * (double)x[i];
				for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
				inv = 1.0 / sqrt(ss / (double)dim + eps);
			}
			__syncwarp();
			for (int i = lane; i < half; i += 32) {
				float a = x[i], b = x[i + half];
				if (nw8) {
					a = (float)((double)a * inv * (double)nw8[i]);
					b = (float)((double)b * inv * (double)nw8[i + half]);
				}
				const float c = cs[i], s = sn[i];
				x[i] = a * c - b * s;
				x[i + half] = b * c + a * s;
			}
			__syncwarp();
		}
		if (!isQ) {
			const long long off = gbx_kv_off(blk, layer, layers, kv, g, kvHeads, slot, dim);
			if (cacheFmt == GBX_FMT_E4M3) {
				float m = 0.0f;
				for (int i = lane; i < dim; i += 32) m = fmaxf(m, fabsf(x[i])); // NaN skipped, as Amax
				for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
				const float sc = fp8Scale(m, 0);
				if (lane == 0) kvScale[gbx_kv_soff(blk, layer, layers, kv, g, kvHeads, slot)] = sc;
				for (int i = lane; i < dim; i += 32) ((u8 *)cache)[off + i] = e4m3q(x[i], sc);
			} else {
				for (int i = lane; i < dim; i += 32) gbx_st(cache, cacheFmt, off + i, x[i]);
			}
		}
	}
}

// gbx_lm_rope and gbx_lm_rope_small (a step of at most GBX_REGS_MAX_ROWS
// rows: heads of 64, 128, 256 in registers, gbx_rope_head) are
// gbx_lm_rope_t, two kernels so that each has its own registers.
extern "C" __global__ void gbx_lm_rope(float *qkv, int stride, const float *exs, const float *ews, const float *ebias,
                                       const float *__restrict__ qNorm, const float *__restrict__ kNorm, double eps,
                                       const float *__restrict__ invFreq, const int *pos, const int *seq, const int *btOff,
                                       const int *blocks, void *cache, int cacheFmt, float *kvScale, int layer, int layers,
                                       int heads, int kvHeads, int dim) {
	gbx_pdl();
	gbx_lm_rope_t<false>(qkv, stride, exs, ews, ebias, qNorm, kNorm, eps, invFreq, pos, seq, btOff, blocks, cache, cacheFmt,
	                     kvScale, layer, layers, heads, kvHeads, dim);
}
extern "C" __global__ void gbx_lm_rope_small(float *qkv, int stride, const float *exs, const float *ews, const float *ebias,
                                             const float *__restrict__ qNorm, const float *__restrict__ kNorm, double eps,
                                             const float *__restrict__ invFreq, const int *pos, const int *seq,
                                             const int *btOff, const int *blocks, void *cache, int cacheFmt, float *kvScale,
                                             int layer, int layers, int heads, int kvHeads, int dim) {
	gbx_pdl();
	gbx_lm_rope_t<true>(qkv, stride, exs, ews, ebias, qNorm, kNorm, eps, invFreq, pos, seq, btOff, blocks, cache, cacheFmt,
	                    kvScale, layer, layers, heads, kvHeads, dim);
}

// gbx_silu_cols is gbx_lm_silu_rows' columns [c0, c1) of row r, NB a
// thread at a time (loads first), the operand too where st; it returns the
// thread's amax of them.
template <int NB>
__device__ __forceinline__ float gbx_silu_cols(const float *g, const float *u, const float *exs, float exr,
                                               const float *ews, const float *ebias, float *a, void *yq, int fmt,
                                               long long r, int inter, int c0, int c1, bool st) {
	const int bd = blockDim.x;
	float m = 0.0f;
	for (int c = c0 + threadIdx.x; c < c1; c += NB * bd) {
		float gl[NB], ul[NB];
#pragma unroll
		for (int j = 0; j < NB; j++) {
			const int cj = c + j * bd;
			gl[j] = cj < c1 ? gbx_epi(g[cj], exs, exr, ews, ebias, cj) : 0.0f;
			ul[j] = cj < c1 ? gbx_epi(u[cj], exs, exr, ews, ebias, (long long)inter + cj) : 0.0f;
		}
#pragma unroll
		for (int j = 0; j < NB; j++) {
			const int cj = c + j * bd;
			if (cj >= c1) break;
			const double gv = (double)gl[j];
			const float v = (float)(gv / (1.0 + exp(-gv))) * ul[j];
			a[cj] = v;
			if (st) gbx_st(yq, fmt, r * inter + cj, v);
			m = fmaxf(m, fabsf(v)); // NaN skipped, as Amax
		}
	}
	return m;
}

// gbx_lm_silu_rows: row b of act [rows, inter] = float(SiLU(g))·u for the
// gate g = gu[b, c] and up u = gu[b, inter + c] (gu [rows, 2·inter]): SiLU
// in double rounded once, then the float product, as kernels/cpu's layer;
// then the row written as the down projection's operand yq in fmt
// (gbx_row_out; fp8: the row's scale in xs[b]). Blocks (b, y): with one
// block per row (gridDim.y 1) the block does all of it; with several (a
// step of few rows, where one block per row leaves the GPU idle) block y
// takes the columns [y·C, (y+1)·C), C = ⌈inter / gridDim.y⌉, and writes
// their operand too, except for fp8, whose scale needs the whole row: there
// it writes its columns' amax to amax[b·gridDim.y + y] and
// gbx_lm_quant_cols writes the operand. The gate/up projection's epilogue
// (gbx_epi: exs[b], ews, ebias by column of gu; each may be NULL) is
// applied on load; exs may be xs itself (read before xs[b] is written).
template <bool SMALL>
__device__ __forceinline__ void gbx_lm_silu_rows_t(const float *gu, const float *exs, const float *ews,
                                                   const float *ebias, float *act, void *yq, int fmt, float *xs,
                                                   float *amax, int inter, int margin) {
	__shared__ float sm[33];
	const long long r = blockIdx.x;
	const float *g = gu + r * 2 * inter, *u = g + inter;
	const float exr = exs ? exs[r] : 1.0f;
	float *a = act + r * inter;
	const int ny = gridDim.y, chunk = (inter + ny - 1) / ny, c0 = blockIdx.y * chunk, c1 = gbx_imin(c0 + chunk, inter);
	const bool fp8 = fmt == GBX_FMT_E4M3 || fmt == GBX_FMT_E4M3_F32;
	// SMALL (a step of at most GBX_REGS_MAX_ROWS rows, split over blocks):
	// GBX_ROW_BATCH columns a thread at a time, their loads before their
	// stores (which may alias them), one memory round trip a batch.
	float m = SMALL ? gbx_silu_cols<GBX_ROW_BATCH>(g, u, exs, exr, ews, ebias, a, yq, fmt, r, inter, c0, c1, ny > 1 && !fp8)
	                : gbx_silu_cols<1>(g, u, exs, exr, ews, ebias, a, yq, fmt, r, inter, c0, c1, ny > 1 && !fp8);
	if (ny == 1) {
		gbx_row_out(a, inter, yq, r, fmt, xs, margin);
		return;
	}
	if (!fp8) return;
	m = blockAmax(m, sm);
	if (threadIdx.x == 0) amax[r * ny + blockIdx.y] = m;
}

// gbx_lm_silu_rows and gbx_lm_silu_rows_small are gbx_lm_silu_rows_t, two
// kernels so that each has its own registers.
extern "C" __global__ void __launch_bounds__(1024)
    gbx_lm_silu_rows(const float *gu, const float *exs, const float *ews, const float *ebias, float *act, void *yq,
                     int fmt, float *xs, float *amax, int inter, int margin) {
	gbx_pdl();
	gbx_lm_silu_rows_t<false>(gu, exs, ews, ebias, act, yq, fmt, xs, amax, inter, margin);
}
extern "C" __global__ void __launch_bounds__(1024)
    gbx_lm_silu_rows_small(const float *gu, const float *exs, const float *ews, const float *ebias, float *act,
                           void *yq, int fmt, float *xs, float *amax, int inter, int margin) {
	gbx_pdl();
	gbx_lm_silu_rows_t<true>(gu, exs, ews, ebias, act, yq, fmt, xs, amax, inter, margin);
}

// gbx_silu4 is gbx_lm_silu_rows' value for four columns c..c+3 of a row:
// gate g and up u, the epilogue's column scales and biases (gw, uw, gb, ub:
// read where ews, ebias are set) applied as gbx_epi does.
__device__ __forceinline__ float4 gbx_silu4(float4 g, float4 u, float4 gw, float4 uw, float4 gb, float4 ub,
                                            const float *exs, float exr, const float *ews, const float *ebias) {
	float gv[4] = {g.x, g.y, g.z, g.w}, uv[4] = {u.x, u.y, u.z, u.w};
	const float gwv[4] = {gw.x, gw.y, gw.z, gw.w}, uwv[4] = {uw.x, uw.y, uw.z, uw.w};
	const float gbv[4] = {gb.x, gb.y, gb.z, gb.w}, ubv[4] = {ub.x, ub.y, ub.z, ub.w};
	float v[4];
#pragma unroll
	for (int e = 0; e < 4; e++) {
		float a = gv[e], b = uv[e];
		if (exs) a = a * exr, b = b * exr;
		if (ews) a = a * gwv[e], b = b * uwv[e];
		if (ebias) a = a + gbv[e], b = b + ubv[e];
		const double d = (double)a;
		v[e] = (float)(d / (1.0 + exp(-d))) * b;
	}
	float4 r;
	r.x = v[0], r.y = v[1], r.z = v[2], r.w = v[3];
	return r;
}

// gbx_lm_silu_row: gbx_lm_silu_rows' operand for a step of many rows, one
// block of GBX_SILU_ROW_THREADS threads a row (inter a multiple of 4, at
// most GBX_SILU_ROW_MAX_COLS): SiLU(g)·u of the row into shared memory,
// four columns a thread, two such loads of gate and up in flight, then the
// operand yq in fmt from there (fp8: the row's scale in xs[b]; F32 when yq
// is act itself), and nothing else; gu, ews and ebias 16-byte aligned. The
// split form writes the float row and reads it back, and for fp8 a second
// kernel converts it: at 256 rows of 14,336 on the H200 (ncu) this takes
// 21.7 µs where those two took 24.0 and 8.9. Same expression as
// gbx_lm_silu_rows and the same scale (an amax is a maximum, in any order):
// the same bits.
extern "C" __global__ void __launch_bounds__(GBX_SILU_ROW_THREADS, 2)
    gbx_lm_silu_row(const float *gu, const float *exs, const float *ews, const float *ebias, void *yq, int fmt,
                    float *xs, int inter, int margin) {
	gbx_pdl();
	GBX_DYN_SMEM(gbx_silu_smem, 4 * GBX_SILU_ROW_MAX_COLS);
	float4 *gbx_silu_v = (float4 *)gbx_silu_smem;
	__shared__ float sm[33];
	const long long r = blockIdx.x;
	const float4 *g4 = (const float4 *)(gu + r * 2 * inter), *u4 = g4 + inter / 4;
	const float4 *w4 = (const float4 *)ews, *b4 = (const float4 *)ebias;
	const float exr = exs ? exs[r] : 1.0f;
	const int n4 = inter / 4, bd = blockDim.x;
	const float4 z = {0.0f, 0.0f, 0.0f, 0.0f};
	float m = 0.0f;
	constexpr int B = 2;
	for (int c = threadIdx.x; c < n4; c += B * bd) {
		float4 g[B], u[B], gw[B], uw[B], gb[B], ub[B];
#pragma unroll
		for (int j = 0; j < B; j++) {
			const int i = c + j * bd;
			const bool in = i < n4;
			g[j] = in ? g4[i] : z;
			u[j] = in ? u4[i] : z;
			gw[j] = in && ews ? w4[i] : z;
			uw[j] = in && ews ? w4[n4 + i] : z;
			gb[j] = in && ebias ? b4[i] : z;
			ub[j] = in && ebias ? b4[n4 + i] : z;
		}
#pragma unroll
		for (int j = 0; j < B; j++) {
			const int i = c + j * bd;
			if (i >= n4) break;
			const float4 v = gbx_silu4(g[j], u[j], gw[j], uw[j], gb[j], ub[j], exs, exr, ews, ebias);
			gbx_silu_v[i] = v;
			m = fmaxf(m, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)))); // NaN skipped, as Amax
		}
	}
	const long long base = r * inter;
	if (fmt == GBX_FMT_E4M3 || fmt == GBX_FMT_E4M3_F32) {
		m = blockAmax(m, sm);
		if (threadIdx.x == 0) sm[32] = m;
		__syncthreads();
		const float s = fp8Scale(sm[32], margin);
		if (threadIdx.x == 0) xs[r] = s;
		for (int i = threadIdx.x; i < n4; i += bd) {
			const float4 v = gbx_silu_v[i];
			gbx_st_e4m3(yq, fmt, base + 4 * i, v.x, s);
			gbx_st_e4m3(yq, fmt, base + 4 * i + 1, v.y, s);
			gbx_st_e4m3(yq, fmt, base + 4 * i + 2, v.z, s);
			gbx_st_e4m3(yq, fmt, base + 4 * i + 3, v.w, s);
		}
		return;
	}
	// Each thread wrote the columns it stores again: no barrier needed.
	for (int i = threadIdx.x; i < n4; i += bd) {
		const float4 v = gbx_silu_v[i];
		gbx_st(yq, fmt, base + 4 * i, v.x);
		gbx_st(yq, fmt, base + 4 * i + 1, v.y);
		gbx_st(yq, fmt, base + 4 * i + 2, v.z);
		gbx_st(yq, fmt, base + 4 * i + 3, v.w);
	}
}

// gbx_lm_quant_cols: the fp8 operand of gbx_lm_silu_rows split over
// gridDim.y blocks per row: block (b, y) takes the row's scale s =
// FP8Scale(max of amax[b·gridDim.y …], margin) (block 0 writes it to
// xs[b]) and writes E4M3(act / s) (E4M3_F32: its value as a float) for the
// same columns as gbx_lm_silu_rows' block y: the bytes gbx_row_out writes.
template <int NB>
__device__ __forceinline__ void gbx_lm_quant_cols_t(const float *act, void *yq, int fmt, float *xs, const float *amax,
                                                    int cols, int margin) {
	const long long r = blockIdx.x;
	const int ny = gridDim.y, chunk = (cols + ny - 1) / ny, c0 = blockIdx.y * chunk, c1 = gbx_imin(c0 + chunk, cols);
	float m = 0.0f;
	for (int y = 0; y < ny; y++) m = fmaxf(m, amax[r * ny + y]);
	const float s = fp8Scale(m, margin);
	if (blockIdx.y == 0 && threadIdx.x == 0) xs[r] = s;
	const int bd = blockDim.x;
	for (int c = c0 + threadIdx.x; c < c1; c += NB * bd) {
		float v[NB];
#pragma unroll
		for (int j = 0; j < NB; j++) v[j] = c + j * bd < c1 ? act[r * cols + c + j * bd] : 0.0f;
#pragma unroll
		for (int j = 0; j < NB; j++)
			if (c + j * bd < c1) gbx_st_e4m3(yq, fmt, r * cols + c + j * bd, v[j], s);
	}
}

// gbx_lm_quant_cols and gbx_lm_quant_cols_small (a step of at most
// GBX_REGS_MAX_ROWS rows: GBX_ROW_BATCH columns a thread at a time, loads
// first) are gbx_lm_quant_cols_t.
extern "C" __global__ void gbx_lm_quant_cols(const float *act, void *yq, int fmt, float *xs, const float *amax, int cols,
                                             int margin) {
	gbx_pdl();
	gbx_lm_quant_cols_t<1>(act, yq, fmt, xs, amax, cols, margin);
}
extern "C" __global__ void gbx_lm_quant_cols_small(const float *act, void *yq, int fmt, float *xs, const float *amax,
                                                   int cols, int margin) {
	gbx_pdl();
	gbx_lm_quant_cols_t<GBX_ROW_BATCH>(act, yq, fmt, xs, amax, cols, margin);
}
