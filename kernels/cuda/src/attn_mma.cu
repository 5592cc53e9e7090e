// attn_mma.cu: gbx_attn_mma, decode attention on the tensor cores (the
// default on compute capability 8.0 and above), over a BF16 or an E4M3
// cache. A module of its own: a compile failure here leaves the
// language-model module (attention.cu) untouched.

#include "attn.cuh"

// gbx_attn_mma<DIM, FP8> is gbx_attn_dec on the tensor cores: a BF16 cache
// (FP8 false) or an E4M3 one with its scales kvScale (abi.h), head dims DIM
// of 64 or 128, up to 8 query heads per KV head, the same grid, arguments,
// outputs and warp/block split as gbx_attn_dec. Per KV block of 16
// positions a warp runs Sᵀ = Q·Kᵀ and O += P·V as mma.sync m16n8k16 (BF16
// operands, float accumulators), the query heads as rows 0…7 of A (rows
// past the group and 8…15 zero). Lane (g, t) = (lane/4, lane mod 4) loads
// 16 bytes of K per load: BF16, dims 32c + 8t … +8 of position g + 8·nb,
// whose four words are the B fragments of k-steps 2c and 2c+1; E4M3, dims
// 64c + 16t … +16, whose word j (dims D … D+3, D = 64c + 16t + 4j) becomes
// k-step 4c + j's B fragments by gbx_e4m3x2_bf16 (b0 = dims D, D+2; b1 =
// dims D+1, D+3). Each k-slot so stands for a dim fixed by the lane — the
// query's A fragments take the same dims, and the dot product's terms are
// only permuted. The score fragments (head g, positions 2t, 2t+1 and 8+2t,
// 9+2t; E4M3: times K's scale of the position) are the online softmax's
// inputs and, rounded to BF16 (E4M3: after the product with V's scale of
// the position; the sum l takes the weights without it), P's A fragment
// (FlashAttention-2's reuse). V is loaded like K; a word of a load (E4M3:
// each of its two BF16 pairs) is an 8×8 block (positions × 8 dims) in the
// fragment layout, and movmatrix's transpose turns it into P·V's B
// fragment for 8 output dims. The query heads and P are rounded to BF16, so
// results differ from gbx_attn_dec's by BF16 rounding (~2⁻⁹), not in
// summation order alone; every order is still fixed by the split.
template <int DIM, bool FP8>
__device__ __forceinline__ void gbx_attn_mma(const float *qkv, int stride, const void *cache, const float *kvScale,
                                             int layer, int layers, int kvHeads, int G, const int *pos, const int *seq,
                                             const int *btOff, const int *blocks, const int *split, int row0,
                                             float scale, float *partO, float *partML, int maxSplits, float *out,
                                             int outStride, void *yq, int fmt) {
	// ES: bytes per value; NL: 16-byte loads per position and lane; KS:
	// k-steps (of 16 dims); NO: output fragments (8 dims each).
	constexpr int NT = GBX_ATTN_DEC_THREADS, NW = NT / 32, GP = 8, ES = FP8 ? 1 : 2, NL = DIM * ES / 64;
	constexpr int KS = DIM / 16, NO = DIM / 8;
	const float NEG = __int_as_float(0xff800000); // -inf
	__shared__ float so[NW][GP * DIM];
	__shared__ float sm[NW][GP], sl[NW][GP];
	const int t = threadIdx.x, lane = t & 31, warp = t >> 5, g = lane >> 2, tq = lane & 3;
	const int rc = blockIdx.z, r = row0 + rc, kh = blockIdx.y, s = blockIdx.x;
	const int n = pos[r] + 1, S = split[r], ns = (n + S - 1) / S;
	if (s >= ns) return;
	const int j0 = s * S, j1 = gbx_imin(j0 + S, n);
	const int *bt = blocks + btOff[seq[r]];
	// qa[k]: query head g's A fragments a0, a2 of k-step k, from dims q0 …
	// q0+3 (BF16: q0 = 32(k/2) + 8t + 4(k mod 2), a0 = dims q0, q0+1, a2 =
	// q0+2, q0+3; E4M3: q0 = 64(k/4) + 16t + 4(k mod 4), a0 = q0, q0+2, a2 =
	// q0+1, q0+3); zero past the group.
	u32 qa[KS][2];
	{
		const float *q = qkv + (long long)r * stride + (long long)(kh * G + g) * DIM;
#pragma unroll
		for (int k = 0; k < KS; k++) {
			const int q0 = FP8 ? 64 * (k / 4) + 16 * tq + 4 * (k % 4) : 32 * (k / 2) + 8 * tq + 4 * (k % 2);
			float4 a = {0.0f, 0.0f, 0.0f, 0.0f};
			if (g < G) a = *reinterpret_cast<const float4 *>(q + q0);
			qa[k][0] = FP8 ? gbx_bf16x2(a.x, a.z) : gbx_bf16x2(a.x, a.y);
			qa[k][1] = FP8 ? gbx_bf16x2(a.y, a.w) : gbx_bf16x2(a.z, a.w);
		}
	}
	// o[u]: head g's outputs at dims od(u) + 0, 1 (BF16: od(u) = 32(u/4) + 8t
	// + 2(u mod 4)) or od(u) + 0, 2 (E4M3: od(u) = 64(u/8) + 16t + 4((u mod
	// 8)/2) + u mod 2); o[.][2], o[.][3]: the padding rows 8…15.
	float o[NO][4];
#pragma unroll
	for (int i = 0; i < NO; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
	float mh = NEG, lh = 0.0f; // head g's running maximum and sum
	const long long vOff = (long long)ES * kvHeads * GBX_KV_BLOCK * DIM; // bytes from K's run to V's
	for (int b = j0 / GBX_KV_BLOCK + warp; b * GBX_KV_BLOCK < j1; b += NW) {
		const long long blk = bt[b];
		const char *kp = (const char *)cache + ES * (gbx_kv_off(blk, layer, layers, 0, kh, kvHeads, 0, DIM) + g * DIM) + 16 * tq;
		u32 kr[2][NL][4], vr[2][NL][4];
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
#pragma unroll
			for (int c = 0; c < NL; c++) gbx_ldg128(kr[nb][c], kp + ES * 8 * nb * DIM + 64 * c);
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
#pragma unroll
			for (int c = 0; c < NL; c++) gbx_ldg128(vr[nb][c], kp + vOff + ES * 8 * nb * DIM + 64 * c);
		// E4M3: K's and V's scales of positions 2t, 2t+1 and 8+2t, 9+2t.
		float ks[4] = {1.0f, 1.0f, 1.0f, 1.0f}, vs[4] = {1.0f, 1.0f, 1.0f, 1.0f};
		if (FP8) {
			const float *sp = kvScale + gbx_kv_soff(blk, layer, layers, 0, kh, kvHeads, 2 * tq);
			const float2 k0 = *reinterpret_cast<const float2 *>(sp), k1 = *reinterpret_cast<const float2 *>(sp + 8);
			const float2 v0 = *reinterpret_cast<const float2 *>(sp + kvHeads * GBX_KV_BLOCK);
			const float2 v1 = *reinterpret_cast<const float2 *>(sp + kvHeads * GBX_KV_BLOCK + 8);
			ks[0] = k0.x, ks[1] = k0.y, ks[2] = k1.x, ks[3] = k1.y;
			vs[0] = v0.x, vs[1] = v0.y, vs[2] = v1.x, vs[3] = v1.y;
		}
		const int valid = j1 - b * GBX_KV_BLOCK; // positions of the block in the split (≥ 1)
		// Sᵀ: sc[nb] = head g's scores at positions 8nb + 2t, +1.
		float sc[2][4];
#pragma unroll
		for (int nb = 0; nb < 2; nb++) {
			sc[nb][0] = sc[nb][1] = sc[nb][2] = sc[nb][3] = 0.0f;
#pragma unroll
			for (int k = 0; k < KS; k++) {
				u32 b0, b1;
				if (FP8) {
					const u32 w = kr[nb][k / 4][k % 4];
					b0 = gbx_e4m3x2_bf16<0>(w), b1 = gbx_e4m3x2_bf16<1>(w);
				} else {
					b0 = kr[nb][k / 2][2 * (k % 2)], b1 = kr[nb][k / 2][2 * (k % 2) + 1];
				}
				gbx_mma(sc[nb], qa[k][0], 0u, qa[k][1], 0u, b0, b1);
			}
		}
		float x[4]; // positions 2t, 2t+1, 8+2t, 9+2t
		float mt = NEG;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			const int p = 8 * (i / 2) + 2 * tq + i % 2;
			x[i] = p < valid ? sc[i / 2][i % 2] * ks[i] * scale : NEG;
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
		if (FP8) { // the weights times V's scales (0 past the split, whatever the scale there)
#pragma unroll
			for (int i = 0; i < 4; i++) x[i] = 8 * (i / 2) + 2 * tq + i % 2 < valid ? x[i] * vs[i] : 0.0f;
		}
		const u32 pa0 = gbx_bf16x2(x[0], x[1]), pa2 = gbx_bf16x2(x[2], x[3]);
		// V past the split may hold anything: zero the rows g (+8) there.
#pragma unroll
		for (int nb = 0; nb < 2; nb++)
			if (8 * nb + g >= valid)
#pragma unroll
				for (int c = 0; c < NL; c++) vr[nb][c][0] = vr[nb][c][1] = vr[nb][c][2] = vr[nb][c][3] = 0u;
#pragma unroll
		for (int u = 0; u < NO; u++) {
			u32 v0, v1;
			if (FP8) {
				const u32 w0 = vr[0][u / 8][(u % 8) / 2], w1 = vr[1][u / 8][(u % 8) / 2];
				v0 = u % 2 ? gbx_e4m3x2_bf16<1>(w0) : gbx_e4m3x2_bf16<0>(w0);
				v1 = u % 2 ? gbx_e4m3x2_bf16<1>(w1) : gbx_e4m3x2_bf16<0>(w1);
			} else {
				v0 = vr[0][u / 4][u % 4], v1 = vr[1][u / 4][u % 4];
			}
			float (&oc)[4] = o[u];
			oc[0] *= cf, oc[1] *= cf;
			gbx_mma(oc, pa0, 0u, pa2, 0u, gbx_movmatrix_t(v0), gbx_movmatrix_t(v1));
		}
	}
	// The warps, in order, through shared memory (a warp without a block:
	// m = −inf, weight 0).
#pragma unroll
	for (int u = 0; u < NO; u++) {
		const int d = FP8 ? 64 * (u / 8) + 16 * tq + 4 * ((u % 8) / 2) + u % 2 : 32 * (u / 4) + 8 * tq + 2 * (u % 4);
		so[warp][g * DIM + d] = o[u][0];
		so[warp][g * DIM + d + (FP8 ? 2 : 1)] = o[u][1];
	}
	if (tq == 0) sm[warp][g] = mh, sl[warp][g] = lh;
	__syncthreads();
	gbx_attn_warps_out<NW, DIM, GP>(&sm[0][0], &sl[0][0], &so[0][0], G, kvHeads, kh, r, rc, s, ns, maxSplits, out,
	                                outStride, yq, fmt, partO, partML);
}

// The entry points: a BF16 cache (kvScale unused) and an E4M3 cache, by
// head dim.
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma64(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                   int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                   const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                   int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split,
	                        row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma128(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                    int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                    const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                    int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, false>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split,
	                         row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma64_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                        int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                        const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                        int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<64, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split,
	                       row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
extern "C" __global__ void __launch_bounds__(GBX_ATTN_DEC_THREADS)
    gbx_attn_mma128_e4m3(const float *qkv, int stride, const void *cache, const float *kvScale, int layer, int layers,
                         int kvHeads, int group, const int *pos, const int *seq, const int *btOff, const int *blocks,
                         const int *split, int row0, float scale, float *partO, float *partML, int maxSplits, float *out,
                         int outStride, void *yq, int fmt) {
	gbx_pdl();
	gbx_attn_mma<128, true>(qkv, stride, cache, kvScale, layer, layers, kvHeads, group, pos, seq, btOff, blocks, split,
	                        row0, scale, partO, partML, maxSplits, out, outStride, yq, fmt);
}
