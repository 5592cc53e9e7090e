// sample.cu: log-probabilities and sampling on the device, following
// package kernels' LogSumExp, Sample and TopLogprobs (kernels/sample.go),
// in double from the float logits.
//
// Sample's order of the token ids (by logit, largest first, NaN last, ties
// to the lower id) is the order of the 64-bit key gbx_key: larger key,
// earlier id. Its cut-offs and its draw are "the first id of that order at
// which a running sum reaches a bound": here a radix search over the keys,
// 4 bits at a time, for the largest key whose sum over the keys at or
// above it reaches the bound. The sums run in a fixed tree order instead of
// the sorted order, so a draw can differ from Sample's only where the bound
// falls within a few ulps of a running sum (about 1e-16 relative), as
// Sample's documentation allows for another implementation.

#include "common.cuh"

// gbx_key is the order of kernels.Sample: a larger key comes first.
// Non-NaN logits map to 32 order-preserving bits (-0 as +0: they compare
// equal), NaN to 0 (last); the low 32 bits are ~id (lower ids first).
__device__ __forceinline__ unsigned long long gbx_key(float v, int id) {
	u32 k = 0;
	if (v == v) {
		u32 b = v == 0.0f ? 0u : __float_as_uint(v);
		k = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
	}
	return ((unsigned long long)k << 32) | (unsigned long long)(0xffffffffu - (u32)id);
}

__device__ __forceinline__ int gbx_key_id(unsigned long long k) { return (int)(0xffffffffu - (u32)k); }

__device__ __forceinline__ double gbx_nan() { return __longlong_as_double(0x7ff8000000000000ll); }

// gbxSampleShared is gbx_lm_sample's shared memory.
struct gbxSampleShared {
	double b[GBX_SAMPLE_THREADS / 32][16];
	int c[GBX_SAMPLE_THREADS / 32][16];
	double bt[16];
	int ct[16];
	unsigned long long k[GBX_SAMPLE_THREADS / 32];
	double d[33];
};

// gbx_argmax_pick combines two candidates of kernels.Argmax (ids a and b
// with logits x and y; -1 for none; a from lower or higher ids than b)
// into (a, x): the larger logit, the lower id on ties, a number over a NaN,
// the higher id when both are NaN (Argmax over only NaNs ends on the last
// id).
__device__ __forceinline__ void gbx_argmax_pick(int &a, float &x, int b, float y) {
	bool take;
	if (a < 0 || b < 0) take = a < 0;
	else {
		const bool xn = x != x, yn = y != y;
		if (xn && yn) take = b > a;
		else if (xn || yn) take = xn;
		else take = y > x || (y == x && b < a);
	}
	if (take) a = b, x = y;
}

// gbxLogprobsPart is gbx_lm_logprobs_part's result for one chunk of a
// row: its maximum m (NaN when the chunk has a NaN, as math.Max gives),
// s = Σ exp(v − m) in double (0 when m is -inf: the chunk adds nothing to a
// row with a larger logit), and its argmax id with its logit v.
struct gbxLogprobsPart {
	double m, s;
	int id;
	float v;
};
static_assert(sizeof(gbxLogprobsPart) == GBX_LOGPROBS_PART_BYTES, "gbxLogprobsPart's size is not abi.h's");

// gbx_lm_logprobs_part: block (b, c) reduces ids [c·GBX_LOGPROBS_CHUNK,
// (c+1)·GBX_LOGPROBS_CHUNK) ∩ [0, vocab) of logits row b to part[b·gridDim.y
// + c] (rows on x, which allows 2³¹ − 1 of them). The chunks are fixed, so
// a row's partials do not depend on the other rows of its launch.
extern "C" __global__ void __launch_bounds__(GBX_LOGPROBS_THREADS)
    gbx_lm_logprobs_part(const float *logits, int vocab, gbxLogprobsPart *part) {
	gbx_pdl();
	enum { PER = GBX_LOGPROBS_CHUNK / GBX_LOGPROBS_THREADS };
	__shared__ double sh[33];
	__shared__ int shID[GBX_LOGPROBS_THREADS / 32];
	__shared__ float shV[GBX_LOGPROBS_THREADS / 32];
	const int i0 = blockIdx.y * GBX_LOGPROBS_CHUNK, n = gbx_imin(GBX_LOGPROBS_CHUNK, vocab - i0);
	const float *l = logits + (long long)blockIdx.x * vocab + i0;
	float v[PER];
	float hi = -1.0f / 0.0f;
	int nan = 0, best = -1;
	float bv = 0.0f;
#pragma unroll
	for (int j = 0; j < PER; j++) {
		const int i = j * GBX_LOGPROBS_THREADS + threadIdx.x;
		v[j] = i < n ? l[i] : 0.0f;
	}
#pragma unroll
	for (int j = 0; j < PER; j++) {
		const int i = j * GBX_LOGPROBS_THREADS + threadIdx.x;
		if (i >= n) continue;
		if (v[j] != v[j]) nan = 1;
		else hi = fmaxf(hi, v[j]);
		gbx_argmax_pick(best, bv, i0 + i, v[j]);
	}
	for (int o = 16; o > 0; o >>= 1) {
		const int b = __shfl_xor_sync(0xffffffffu, best, o);
		const float y = __shfl_xor_sync(0xffffffffu, bv, o);
		gbx_argmax_pick(best, bv, b, y);
	}
	if ((threadIdx.x & 31) == 0) shID[threadIdx.x >> 5] = best, shV[threadIdx.x >> 5] = bv;
	nan = __syncthreads_or(nan);
	double m = nan ? gbx_nan() : blockMax((double)hi, sh);
	double s = 0;
#pragma unroll
	for (int j = 0; j < PER; j++)
		if (j * GBX_LOGPROBS_THREADS + (int)threadIdx.x < n) s += exp((double)v[j] - m);
	s = blockSum(s, sh);
	if (threadIdx.x == 0) {
		for (int w = 1; w < GBX_LOGPROBS_THREADS / 32; w++) gbx_argmax_pick(best, bv, shID[w], shV[w]);
		gbxLogprobsPart &p = part[(long long)blockIdx.x * gridDim.y + blockIdx.y];
		p.m = m;
		p.s = m == -1.0 / 0.0 ? 0.0 : s;
		p.id = best;
		p.v = bv;
	}
}

// gbx_lm_logprobs: for logits row b (one warp each), from its chunks'
// partials part[b·chunks ...] of gbx_lm_logprobs_part: lse[b] =
// kernels.LogSumExp = M + log Σ_c s_c·exp(m_c − M) over the chunks' maxima
// m_c and sums s_c, M their maximum (a NaN logit makes it NaN, as math.Max
// does; so do +inf and a row of -inf, as there), lp[b] = l[targets[b]] −
// lse[b] rounded to float (0 when targets[b] < 0), and amax[b] =
// kernels.Argmax of the row. The sums run in a fixed order of the chunks.
extern "C" __global__ void gbx_lm_logprobs(const gbxLogprobsPart *part, int chunks, const float *logits, int vocab,
                                           const int *targets, double *lse, float *lp, int *amax) {
	gbx_pdl();
	const gbxLogprobsPart *p = part + (long long)blockIdx.x * chunks;
	double hi = -1.0 / 0.0;
	int best = -1;
	float bv = 0.0f;
	for (int c = threadIdx.x; c < chunks; c += 32) {
		hi = fmax(hi, p[c].m); // a NaN chunk's s is NaN: the sum below is NaN
		gbx_argmax_pick(best, bv, p[c].id, p[c].v);
	}
	for (int o = 16; o > 0; o >>= 1) {
		hi = fmax(hi, __shfl_xor_sync(0xffffffffu, hi, o));
		const int b = __shfl_xor_sync(0xffffffffu, best, o);
		const float y = __shfl_xor_sync(0xffffffffu, bv, o);
		gbx_argmax_pick(best, bv, b, y);
	}
	double sum = 0;
	for (int c = threadIdx.x; c < chunks; c += 32) sum += p[c].s * exp(p[c].m - hi);
	for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
	if (threadIdx.x == 0) {
		const double z = hi + log(sum);
		lse[blockIdx.x] = z;
		const int tg = targets[blockIdx.x];
		lp[blockIdx.x] = tg >= 0 ? (float)((double)logits[(long long)blockIdx.x * vocab + tg] - z) : 0.0f;
		amax[blockIdx.x] = best;
	}
}

// gbx_max_key returns the largest key below `below` over the block (0 when
// none), to every thread.
__device__ unsigned long long gbx_max_key(const float *l, int vocab, unsigned long long below, gbxSampleShared &sh) {
	unsigned long long m = 0;
	for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
		const unsigned long long k = gbx_key(l[i], i);
		if (k < below && k > m) m = k;
	}
	for (int o = 16; o > 0; o >>= 1) {
		const unsigned long long x = __shfl_xor_sync(0xffffffffu, m, o);
		m = x > m ? x : m;
	}
	__syncthreads();
	if ((threadIdx.x & 31) == 0) sh.k[threadIdx.x >> 5] = m;
	__syncthreads();
	m = 0;
	for (int w = 0; w < (int)(blockDim.x >> 5); w++) m = sh.k[w] > m ? sh.k[w] : m;
	return m;
}

// gbx_weight is Sample's w = exp((l − hi) / T), in double.
__device__ __forceinline__ double gbx_weight(float v, double hi, double T) { return exp(((double)v - hi) / T); }

// gbx_mass returns Σ w over the ids whose key is at least floor, to every
// thread.
__device__ double gbx_mass(const float *l, int vocab, unsigned long long floor, double hi, double T,
                           gbxSampleShared &sh) {
	double s = 0;
	for (int i = threadIdx.x; i < vocab; i += blockDim.x)
		if (gbx_key(l[i], i) >= floor) s += gbx_weight(l[i], hi, T);
	return blockSum(s, sh.d);
}

// The searches of gbx_search: the bound is a count (>=), a mass (>=) or a
// mass strictly exceeded (>).
enum { GBX_COUNT_GE = 0, GBX_MASS_GE = 1, GBX_MASS_GT = 2 };

// gbx_search returns the largest key θ ≥ floor of an id such that S(θ), the
// count (GBX_COUNT_GE) or the mass Σ w (otherwise) of the ids with keys in
// [θ, ∞) ∩ [floor, ∞), reaches bound (≥, or > for GBX_MASS_GT): the id at
// which the running sum in Sample's order first reaches it. It picks 4 bits
// per pass, from the top; where no digit reaches the bound (rounding, or a
// bound past the total) it descends to the smallest key, Sample's "last
// kept id".
__device__ unsigned long long gbx_search(const float *l, int vocab, unsigned long long floor, int mode, double bound,
                                         double hi, double T, gbxSampleShared &sh) {
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	unsigned long long theta = 0;
	double above = 0; // the sum over the keys above θ's prefix
	for (int shift = 60; shift >= 0; shift -= 4) {
		const unsigned long long mask = shift == 60 ? 0ull : (~0ull << (shift + 4));
		double b[16];
		int c[16];
#pragma unroll
		for (int e = 0; e < 16; e++) b[e] = 0, c[e] = 0;
		for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
			const unsigned long long key = gbx_key(l[i], i);
			if (key < floor || (key & mask) != (theta & mask)) continue;
			const int d = (int)(key >> shift) & 15;
			const double f = mode == GBX_COUNT_GE ? 1.0 : gbx_weight(l[i], hi, T);
#pragma unroll
			for (int e = 0; e < 16; e++)
				if (e == d) b[e] += f, c[e] += 1;
		}
#pragma unroll
		for (int e = 0; e < 16; e++)
			for (int o = 16; o > 0; o >>= 1) {
				b[e] += __shfl_xor_sync(0xffffffffu, b[e], o);
				c[e] += __shfl_xor_sync(0xffffffffu, c[e], o);
			}
		__syncthreads(); // the previous pass's readers of bt and ct are done
		if (lane == 0)
#pragma unroll
			for (int e = 0; e < 16; e++) sh.b[warp][e] = b[e], sh.c[warp][e] = c[e];
		__syncthreads();
		if (threadIdx.x < 16) {
			double s = 0;
			int n = 0;
			for (int w = 0; w < nw; w++) s += sh.b[w][threadIdx.x], n += sh.c[w][threadIdx.x];
			sh.bt[threadIdx.x] = s;
			sh.ct[threadIdx.x] = n;
		}
		__syncthreads();
		int pick = -1;
		double cum = above;
		for (int d = 15; d >= 0; d--) {
			cum += sh.bt[d]; // counts are exact in double
			if (mode == GBX_MASS_GT ? cum > bound : cum >= bound) {
				pick = d;
				break;
			}
		}
		if (pick < 0)
			for (int d = 0; d < 16; d++)
				if (sh.ct[d] > 0) {
					pick = d;
					break;
				}
		if (pick < 0) pick = 0; // no candidate at all: cannot happen for a non-empty set
		for (int d = 15; d > pick; d--) above += sh.bt[d];
		theta |= (unsigned long long)pick << shift;
	}
	return theta;
}

// gbx_lm_sample: block i samples the next token of sampled sequence i from
// its logits row sRow[i] (rows rowLo to rowHi−1 are at logits, vocab values
// each; a block whose row is outside returns at once): kernels.Sample with
// temperature sTemp[i], top-k sTopK[i], top-p sTopP[i] and the uniform
// number sU[i] (SampleUniform(seed, pos), from the host), which for
// temperature 0 or top-k 1 is kernels.Argmax, amax[row] (gbx_lm_logprobs);
// tok[i] is the token and tokLp[i] its log-probability l − lse[row]; then
// the min(sNTop[i], vocab) most likely tokens and their log-probabilities
// (kernels.TopLogprobs) at topIds and topLp[i·GBX_MAX_TOP ...].
extern "C" __global__ void __launch_bounds__(GBX_SAMPLE_THREADS)
    gbx_lm_sample(const float *logits, int vocab, int rowLo, int rowHi, const int *sRow, const float *sTemp,
                  const int *sTopK, const float *sTopP, const double *sU, const int *sNTop, const double *lse,
                  const int *amax, int *tok, float *tokLp, int *topIds, float *topLp) {
	gbx_pdl();
	__shared__ gbxSampleShared sh;
	const int i = blockIdx.x, row = sRow[i];
	if (row < rowLo || row >= rowHi) return;
	const float *l = logits + (long long)(row - rowLo) * vocab;
	const double z = lse[row];
	const float T = sTemp[i];
	const int k = sTopK[i];
	int id;
	if (T == 0.0f || k == 1) {
		id = amax[row];
	} else {
		const double Td = (double)T;
		const double hi = (double)l[gbx_key_id(gbx_max_key(l, vocab, ~0ull, sh))];
		unsigned long long floor = 0;
		if (k > 0 && k < vocab) floor = gbx_search(l, vocab, 0, GBX_COUNT_GE, (double)k, hi, Td, sh);
		double total = gbx_mass(l, vocab, floor, hi, Td, sh);
		const float p = sTopP[i];
		if (p > 0.0f && p < 1.0f) {
			floor = gbx_search(l, vocab, floor, GBX_MASS_GE, (double)p * total, hi, Td, sh);
			total = gbx_mass(l, vocab, floor, hi, Td, sh);
		}
		id = gbx_key_id(gbx_search(l, vocab, floor, GBX_MASS_GT, sU[i] * total, hi, Td, sh));
	}
	if (threadIdx.x == 0) {
		tok[i] = id;
		tokLp[i] = (float)((double)l[id] - z);
	}
	const int n = gbx_imin(sNTop[i], vocab);
	unsigned long long below = ~0ull;
	for (int j = 0; j < n; j++) {
		below = gbx_max_key(l, vocab, below, sh);
		if (threadIdx.x == 0) {
			const int t = gbx_key_id(below);
			topIds[i * GBX_MAX_TOP + j] = t;
			topLp[i * GBX_MAX_TOP + j] = (float)((double)l[t] - z);
		}
	}
}
