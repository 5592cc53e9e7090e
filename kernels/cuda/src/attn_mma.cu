// attn_mma.cu: gbx_attn_mma, decode attention on the tensor cores (opt-in,
// for measuring it against attention.cu's gbx_attn_dec). A module of its
// own, loaded only when asked for: a compile failure here leaves the
// language-model module (attention.cu) untouched.

#include "attn.cuh"

// gbx_attn_mma<DIM> is gbx_attn_dec on the tensor cores (opt-in, for
// measuring it: LMBench.AttnMMA): a BF16 cache, head dims DIM of 64 or 128,
// up to 8 query heads per KV head, the same grid, arguments, outputs and
// warp/block split as gbx_attn_dec. Per KV block of 16 positions a warp
// runs Sᵀ = Q·Kᵀ and O += P·V as mma.sync m16n8k16 (BF16 operands, float
// accumulators), the query heads as rows 0…7 of A (rows past the group and
// 8…15 zero). Lane (g, t) = (lane/4, lane mod 4) loads 16 bytes of K: dims
// 32c + 8t … +8 of position g + 8·nb; the four words of such a load are the
// B fragments of k-steps 2c and 2c+1, so each k-slot stands for a dim
// fixed by (c, t) — the query's A fragments take the same dims, and the dot
// product's terms are only permuted. The score fragments (head g,
// positions 2t, 2t+1 and 8+2t, 9+2t) are the online softmax's inputs and,
// rounded to BF16, P's A fragment (FlashAttention-2's reuse). V is loaded
// like K; word j of a load is an 8×8 block (positions × 8 dims) in the
// fragment layout, and movmatrix's transpose turns it into P·V's B fragment
// for 8 output dims. The query heads and P are rounded to BF16, so results
// differ from gbx_attn_dec's by BF16 rounding (~2⁻⁹), not in summation
// order alone; every order is still fixed by the split.
template <int DIM>
__device__ __forceinline__ void gbx_attn_mma(const float *qkv, int stride, const void *cache, int layer, int layers,
                                             int kvHeads, int G, const int *pos, const int *seq, const int *btOff,
                                             const int *blocks, const int *split, int row0, float scale, float *partO,
                                             float *partML, int maxSplits, float *out, int outStride, void *yq,
                                             int fmt) {
	constexpr int NT = GBX_ATTN_DEC_THREADS, NW = NT / 32, NC = DIM / 32, GP = 8;
	const float NEG = __int_as_float(0xff800000); // -inf
	__shared__ float so[NW][GP * DIM];
	__shared__ float sm[NW][GP], sl[NW][GP];
	const int t = threadIdx.x, lane = t & 31, warp = t >> 5, g = lane >> 2, tq = lane & 3;
	const int rc = blockIdx.z, r = row0 + rc, kh = blockIdx.y, s = blockIdx.x;
	const int n = pos[r] + 1, S = split[r], ns = (n + S - 1) / S;
	if (s >= ns) return;
	const int j0 = s * S, j1 = gbx_imin(j0 + S, n);
	const int *bt = blocks + btOff[seq[r]];
	// Query head g's A fragments: qa[c][0] = a0 and qa[c][1] = a2 of k-step
	// 2c, qa[c][2], qa[c][3] those of 2c+1 (dims 32c + 8t + 0,1 | 2,3 | 4,5
	// | 6,7); zero past the group.
	u32 qa[NC][4];
	{
		const float *q = qkv + (long long)r * stride + (long long)(kh * G + g) * DIM + 8 * tq;
#pragma unroll
		for (int c = 0; c < NC; c++) {
			float4 a = {0.0f, 0.0f, 0.0f, 0.0f}, b = a;
			if (g < G) a = *reinterpret_cast<const float4 *>(q + 32 * c), b = *reinterpret_cast<const float4 *>(q + 32 * c + 4);
			qa[c][0] = (u32)f2bf(a.x) | (u32)f2bf(a.y) << 16;
			qa[c][1] = (u32)f2bf(a.z) | (u32)f2bf(a.w) << 16;
			qa[c][2] = (u32)f2bf(b.x) | (u32)f2bf(b.y) << 16;
			qa[c][3] = (u32)f2bf(b.z) | (u32)f2bf(b.w) << 16;
		}
	}
	// o[4c + j]: head g's outputs at dims 32c + 8t + 2j + 0, 1 (o[.][2],
	// o[.][3]: the padding rows 8…15).
	float o[4 * NC][4];
#pragma unroll
	for (int i = 0; i < 4 * NC; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
	float mh = NEG, lh = 0.0f; // head g's running maximum and sum
	const long long vOff = 2LL * kvHeads * GBX_KV_BLOCK * DIM; // bytes from K's run to V's
	for (int b = j0 / GBX_KV_BLOCK + warp; b * GBX_KV_BLOCK < j1; b += NW) {
		const char *kp = (const char *)cache + 2 * gbx_kv_off(bt[b], layer, layers, 0, kh, kvHeads, 0, DIM) +
		                 2 * (g * DIM + 8 * tq);
		u32 kr[2][NC][4], vr[2][NC][4];
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
#pragma unroll
			for (int c = 0; c < NC; c++) gbx_ldg128(kr[nb][c], kp + 2 * (8 * nb * DIM + 32 * c));
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
#pragma unroll
			for (int c = 0; c < NC; c++) gbx_ldg128(vr[nb][c], kp + vOff + 2 * (8 * nb * DIM + 32 * c));
		const int valid = j1 - b * GBX_KV_BLOCK; // positions of the block in the split (≥ 1)
		// Sᵀ: sc[nb] = head g's scores at positions 8nb + 2t, +1.
		float sc[2][4];
#pragma unroll
		for (int nb = 0; nb < 2; nb++) {
			sc[nb][0] = sc[nb][1] = sc[nb][2] = sc[nb][3] = 0.0f;
#pragma unroll
			for (int c = 0; c < NC; c++) {
				gbx_mma(sc[nb], qa[c][0], 0u, qa[c][1], 0u, kr[nb][c][0], kr[nb][c][1]);
				gbx_mma(sc[nb], qa[c][2], 0u, qa[c][3], 0u, kr[nb][c][2], kr[nb][c][3]);
			}
		}
		float x[4]; // positions 2t, 2t+1, 8+2t, 9+2t
		float mt = NEG;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			const int p = 8 * (i / 2) + 2 * tq + i % 2;
			x[i] = p < valid ? sc[i / 2][i % 2] * scale : NEG;
			mt = fmaxf(mt, x[i]);
		}
		mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
		mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
		const float mn = fmaxf(mh, mt), cf = expf(mh - mn); // cf: 0 on the first block (mh = −inf)
		float ps = 0.0f;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			x[i] = expf(x[i] - mn); // 0 past the split
			ps += x[i];
		}
		ps += __shfl_xor_sync(0xffffffffu, ps, 1);
		ps += __shfl_xor_sync(0xffffffffu, ps, 2);
		lh = lh * cf + ps;
		mh = mn;
		const u32 pa0 = (u32)f2bf(x[0]) | (u32)f2bf(x[1]) << 16, pa2 = (u32)f2bf(x[2]) | (u32)f2bf(x[3]) << 16;
		// V past the split may hold anything: zero the rows g (+8) there.
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
			if (8 * nb + g >= valid)
#pragma unroll
				for (int c = 0; c < NC; c++) vr[nb][c][0] = vr[nb][c][1] = vr[nb][c][2] = vr[nb][c][3] = 0u;
#pragma unroll
		for (int c = 0; c < NC; c++)
#pragma unroll
			for (int j = 0; j < 4; j++) {
				float (&oc)[4] = o[4 * c + j];
				oc[0] *= cf, oc[1] *= cf;
				gbx_mma(oc, pa0, 0u, pa2, 0u, gbx_movmatrix_t(vr[0][c][j]), gbx_movmatrix_t(vr[1][c][j]));
			}
	}
	// The warps, in order, through shared memory (a warp without a block:
	// m = −inf, weight 0).
#pragma unroll
	for (int c = 0; c < NC; c++)
#pragma unroll
		for (int j = 0; j < 4; j++) {
			so[warp][g * DIM + 32 * c + 8 * tq + 2 * j] = o[4 * c + j][0];
			so[warp][g * DIM + 32 * c + 8 * tq + 2 * j + 1] = o[4 * c + j][1];
		}
	if (tq == 0) sm[warp][g] = mh, sl[warp][g] = lh;
	__syncthreads();
	gbx_attn_warps_out<NW, DIM, GP>(&sm[0][0], &sl[0][0], &so[0][0], G, kvHeads, kh, r, rc, s, ns, maxSplits, out,
	                                outStride, yq, fmt, partO, partML);
}

extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma64(const float *qkv, int stride, const void *cache, int layer, int layers, int kvHeads, int group,
                   const int *pos, const int *seq, const int *btOff, const int *blocks, const int *split, int row0,
                   float scale, float *partO, float *partML, int maxSplits, float *out, int outStride, void *yq, int fmt) {
	gbx_attn_mma<64>(qkv, stride, cache, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split, row0, scale,
	                 partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma128(const float *qkv, int stride, const void *cache, int layer, int layers, int kvHeads, int group,
                    const int *pos, const int *seq, const int *btOff, const int *blocks, const int *split, int row0,
                    float scale, float *partO, float *partML, int maxSplits, float *out, int outStride, void *yq, int fmt) {
	gbx_attn_mma<128>(qkv, stride, cache, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split, row0, scale,
	                  partO, partML, maxSplits, out, outStride, yq, fmt);
}
