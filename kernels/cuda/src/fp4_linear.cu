// fp4_linear.cu: weight-only NVFP4 x bf16 linear layer for Hopper (sm_90 / sm_90a),
// y[M,N] = x[M,K] . W[N,K]^T + bias, W in NVFP4 (docs/precision.md), fp32 output.
//
// LAUNCH: gbx_nvfp4_gemm (row-major weights) and gbx_nvfp4_gemm_tiled (tiled; see their comment
// at the end). The numbers are the GBX_FP4_* macros of abi.h, which the Go wrapper reads too.
//   block   = (GBX_FP4_THREADS, 1, 1) = (256, 1, 1)         (8 warps)
//   grid    = (ceil(N / GBX_FP4_ROWS), ceil(M / GBX_FP4_MTILE), 1) = (ceil(N / 32), ceil(M / 64), 1)
//             (32 output channels x 64 batch rows per CTA)
//   dynamic shared memory = GBX_FP4_SMEM_BYTES = 40960 bytes (2 stages x 8 warps x 2560);
//             under 48 KiB, so no cuFuncSetAttribute is needed. 2 CTAs per SM (<= 128 registers).
//   shapes  : any M, N, K >= 1 with Kp = K rounded up to 16 (the contract's padding).
//             Fast path (tensor cores): K % 128 == 0 (so Kp == K), x and w 16-byte aligned,
//             ws 4-byte aligned (cuMemAlloc gives 256). Any other shape or alignment runs an
//             exact CUDA-core path in the same launch (same geometry), much slower.
//   bias    : may be NULL.  Output: every y[m][n], m < M, n < N, is written exactly once
//             (no atomics, no pre-zeroing needed). Same inputs give the same bits.
//   compile : NVRTC or nvcc, --gpu-architecture=sm_90a (or sm_90); needs no toolkit header (only
//             common.cuh and abi.h beside it: NVRTC gets them as headers, nvcc finds them); must NOT
//             be compiled with -ftz=true / --use_fast_math (the CUDA-core path's scale
//             decode uses float32 subnormals; the fast path uses explicit PTX and is immune).
//   PDL    : the entry points begin with gbx_pdl_weights_first: the first S - 1 stages of weight
//             copies are issued before gbx_pdl (the wait); x is read and y written after it, on
//             every path. The host launches them plainly (docs/cuda.md, "Programmatic dependent
//             launch").
//   The geometry does not depend on M: each CTA picks its inner tiling from
//   min(64, M - 64 * blockIdx.y) (<= 8, <= 16, <= 32, else 64 batch rows).
//
// Design (memory-bound GEMV-like problem at small M):
//  * "Swap AB": the 16-row A operand of mma.sync.m16n8k16 (bf16, fp32 accumulate) is 16
//    output channels of W, the 8-column B operand is 8 batch rows of x. A CTA owns 32 output
//    channels; its 8 warps split K (and, for M > 32, the channels), and the per-warp partial
//    sums are reduced through shared memory in a fixed tree order (deterministic).
//  * K is processed in chunks of 128: per chunk each thread copies its own 16 bytes (32 E2M1
//    codes) of 2 rows per 16-row tile and its 4 scale bytes with cp.async into a warp-private
//    2-stage shared-memory ring (each thread only ever reads what it copied itself, so no
//    barrier is needed in the main loop). Warp kw takes chunks kw, kw + 8, ...
//  * Measured (bench/fp4/NOTES.md, H100): a loads-only probe of the row-major access pattern
//    (8 rows x 64 B per warp instruction) also took ~20 us at N = K = 8192, so the copies, not
//    the dequantization, set the time. The tiled layout (gbx_nvfp4_gemm_tiled: 512 contiguous
//    bytes per warp instruction) gained 6-7 % in H200 decode steps; more CTAs (K split, 16
//    channels a CTA) and a third stage lost (docs/benchmarks.md, seventh pass).
//  * The k order inside an mma is free, so each thread's 32-bit word of 8 codes (k0..k7) is
//    fed as the pairs (k0,k4) (k1,k5) (k2,k6) (k3,k7): every pair is produced by one shift and
//    two masks from the word, and the activations are permuted the same way with prmt.
//  * Dequantization (exactness argument):
//      - E2M1 code s|e1 e0|m placed at bf16 bits 15 | 8 7 | 6 is exactly DecodeE2M1 * 2^-126
//        (e = 0 gives the subnormal 2^-127 for 0.5, and 0 for 0).
//      - the E4M3 byte's 7 magnitude bits at float32 bits 26..20 are exactly
//        DecodeE4M3 * 2^-120 (normals and subnormals alike); two exact multiplications by
//        2^119 give s_b * 2^118 < 2^127, exactly a bf16 (3 significant bits).
//      - one bf16x2 multiply (mul.rn.bf16x2, subnormal operands supported) gives
//        DecodeE2M1 * DecodeE4M3 * 2^-8, EXACT: the product has <= 5 significant bits
//        (E2M1 2, E4M3 4) and lies in [2^-18, 10.5], inside bf16's normal range.
//      So the tensor cores multiply the bf16 activations by exactly (q * s_b) * 2^-8, sum in
//      fp32, and the epilogue applies (ts * 2^8) once (a power-of-two-exact factor) and adds
//      the bias. Versus the contract's per-element float32 ((q * s_b) * ts) this moves each
//      weight by at most one float32 rounding (2^-24 relative), i.e. accumulation-order level;
//      bench/fp4 measures ~1e-7..1e-6 relative L2 against a float64 reference of the contract.

#include "common.cuh"

// E4M3 byte (sign ignored: block scales are >= 0) -> bf16x2 (s_b * 2^118, s_b * 2^118), exact.
__device__ __forceinline__ u32 gbx_scale_bf16x2(u32 b) {
	float f = gbx_bits2f((b & 0x7fu) << 20); // DecodeE4M3(b) * 2^-120, exact
	f = gbx_fmul(f, 0x1p119f);                // * 2^119, exact
	f = gbx_fmul(f, 0x1p119f);                // * 2^119, exact
	u32 u = gbx_f2bits(f);                        // low 16 bits are zero
	return gbx_prmt(u, u, 0x3232u);
}

// Two E2M1 codes of a word of 8 (code i at bits 4i..4i+3) -> bf16x2 of DecodeE2M1 * 2^-126:
// P = 0: (code0, code4), 1: (code1, code5), 2: (code2, code6), 3: (code3, code7).
template <int P>
__device__ __forceinline__ u32 gbx_e2m1x2(u32 w) {
	if (P == 0) return ((w << 6) & 0x01C001C0u) | ((w << 12) & 0x80008000u);
	if (P == 1) return ((w << 2) & 0x01C001C0u) | ((w << 8) & 0x80008000u);
	if (P == 2) return ((w >> 2) & 0x01C001C0u) | ((w << 4) & 0x80008000u);
	return ((w >> 6) & 0x01C001C0u) | (w & 0x80008000u);
}

// Same pairs (P = 0: codes 0,4; P = 1: codes 1,5) with the shift done by an integer multiply
// on the FMA pipe: the two shifted copies of each masked nibble do not overlap, so no carries.
template <int P>
__device__ __forceinline__ u32 gbx_e2m1x2m(u32 w) {
	if (P == 0) return ((w & 0x000F000Fu) * 0x1040u) & 0x81C081C0u;
	return ((w & 0x00F000F0u) * 0x104u) & 0x81C081C0u;
}

// The pair P of a word w (w2 = w >> 8) in the form DQ selects: shifts and masks (0), the
// multiply form for codes 0,4 / 1,5 / 2,6 (bit 0), or the multiply form for all four (bit 2).
template <int P, int DQ>
__device__ __forceinline__ u32 gbx_pair(u32 w, u32 w2) {
	if (DQ & 4) return P == 0 ? gbx_e2m1x2m<0>(w) : P == 1 ? gbx_e2m1x2m<1>(w) : P == 2 ? gbx_e2m1x2m<0>(w2) : gbx_e2m1x2m<1>(w2);
	if (DQ & 1) return P == 0 ? gbx_e2m1x2m<0>(w) : P == 1 ? gbx_e2m1x2m<1>(w) : P == 2 ? gbx_e2m1x2m<0>(w2) : gbx_e2m1x2<3>(w);
	return gbx_e2m1x2<P>(w);
}

// x words (8 consecutive bf16 k0..k7 as 4 u32) -> the B pairs (k0,k4) (k1,k5) (k2,k6) (k3,k7).
__device__ __forceinline__ void gbx_xpairs(u32 (&p)[4], const u32 (&r)[4]) {
	p[0] = gbx_prmt(r[0], r[2], 0x5410u);
	p[1] = gbx_prmt(r[0], r[2], 0x7632u);
	p[2] = gbx_prmt(r[1], r[3], 0x5410u);
	p[3] = gbx_prmt(r[1], r[3], 0x7632u);
}

// A warp's codes and block scales of one stage (the slot at sb; RT 16-row tiles, rows g and
// g + 8 of each): wv[i][h] the thread's 16 code bytes (word q: columns t*32 + q*8 .. + 7 of its
// row), sc[i][h][b] the bf16x2 scales of its blocks 2t + b.
template <int RT>
__device__ __forceinline__ void gbx_fp4_wload(u32 (&wv)[RT][2][4], u32 (&sc)[RT][2][2], u32 sb, int lane) {
#pragma unroll
	for (int i = 0; i < RT; ++i)
#pragma unroll
		for (int h = 0; h < 2; ++h) {
			gbx_lds128(wv[i][h], sb + ((i * 2 + h) * 32 + lane) * 16);
			const u32 s2 = gbx_lds32(sb + RT * 1024 + ((i * 2 + h) * 32 + lane) * 4) >> ((lane & 1) * 16);
			sc[i][h][0] = gbx_scale_bf16x2(s2 & 0xffu);
			sc[i][h][1] = gbx_scale_bf16x2((s2 >> 8) & 0xffu);
		}
}

template <int RT, int NT>
__device__ __forceinline__ void gbx_fp4_zero(float (&acc)[RT][NT][4]) {
#pragma unroll
	for (int i = 0; i < RT; ++i)
#pragma unroll
		for (int j = 0; j < NT; ++j)
#pragma unroll
			for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;
}

// The A fragment (m16n8k16's a0..a3) of half H of word q of a 16-row tile: codes (q, H) of
// rows g (WA) and g + 8 (WB), times their block scales sA, sB: H = 0 the pairs (0,4) (1,5),
// H = 1 the pairs (2,6) (3,7).
template <int H, int DQ>
__device__ __forceinline__ void gbx_fp4_afrag(u32 (&a)[4], u32 WA, u32 WB, u32 sA, u32 sB) {
	const u32 WA2 = WA >> 8, WB2 = WB >> 8;
	a[0] = gbx_bmul2(gbx_pair<2 * H, DQ>(WA, WA2), sA);
	a[1] = gbx_bmul2(gbx_pair<2 * H, DQ>(WB, WB2), sB);
	a[2] = gbx_bmul2(gbx_pair<2 * H + 1, DQ>(WA, WA2), sA);
	a[3] = gbx_bmul2(gbx_pair<2 * H + 1, DQ>(WB, WB2), sB);
}

// The tensor-core work of word q of a stage: for each of RT channel tiles, its codes dequantized
// (times their block scales) into two A fragments, each multiplied with NT batch tiles' B pairs.
template <int RT, int NT, int DQ>
__device__ __forceinline__ void gbx_fp4_mma_q(float (&acc)[RT][NT][4], const u32 (&wv)[RT][2][4], const u32 (&sc)[RT][2][2],
                                              const u32 (&xp)[NT][4], int q) {
#pragma unroll
	for (int i = 0; i < RT; ++i) {
		u32 a[4];
		gbx_fp4_afrag<0, DQ>(a, wv[i][0][q], wv[i][1][q], sc[i][0][q >> 1], sc[i][1][q >> 1]);
#pragma unroll
		for (int j = 0; j < NT; ++j) gbx_mma(acc[i][j], a[0], a[1], a[2], a[3], xp[j][0], xp[j][1]);
		gbx_fp4_afrag<1, DQ>(a, wv[i][0][q], wv[i][1][q], sc[i][0][q >> 1], sc[i][1][q >> 1]);
#pragma unroll
		for (int j = 0; j < NT; ++j) gbx_mma(acc[i][j], a[0], a[1], a[2], a[3], xp[j][2], xp[j][3]);
	}
}

// The tensor-core path. NT: 8-row batch tiles (M <= 8 NT); RT: 16-channel tiles per warp;
// RW x KW = 8 warps: RW channel groups x KW K-groups; RT * RW * 16 = 64 channels; S stages.
// TL: w and ws in the tiled layout (gbx_nvfp4_gemm_tiled); otherwise row-major.
template <int NT, int RT, int RW, int KW, int S, int DQ, bool TL = false>
__device__ __forceinline__ void gbx_fp4_fast(const unsigned short* __restrict__ x, const unsigned char* __restrict__ w,
                                             const unsigned char* __restrict__ ws, float ts,
                                             const float* __restrict__ bias, float* __restrict__ y, int M, int N,
                                             int K, unsigned char* smem, const float* __restrict__ tsv = nullptr) {
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int g = lane >> 2, t = lane & 3;
	constexpr int NW = RW * KW, ROWS = 16 * RT * RW;
	constexpr int WSB = RT * 1280;     // bytes per warp and stage
	constexpr int STB = NW * WSB;      // bytes per stage
	static_assert((KW / 2 > 0 ? KW / 2 : 1) * RW * RT * NT * 4 * 32 * 4 <= S * STB, "reduction buffer");
	const int rw = warp % RW, kw = warp / RW;
	const int row0 = blockIdx.x * ROWS + rw * 16 * RT;
	const int mbase = blockIdx.y * GBX_FP4_MTILE;
	const size_t rowB = (size_t)(K >> 1), rowS = (size_t)(K >> 4);
	const int nchunks = K >> 7;
	// Warp kw takes G consecutive chunks out of every G * KW (G = 1 << ((DQ >> 4) & 3)).
	constexpr int G = 1 << ((DQ >> 4) & 3);
	const int nfull = nchunks / (G * KW), nrem = nchunks - nfull * G * KW;
	const int nmy = nfull * G + gbx_imin(G, nrem - G * kw > 0 ? nrem - G * kw : 0);
	auto chunk_of = [&](int it) { return G * kw + (it % G) + (it / G) * G * KW; };
	// Each CTA starts its walk along K at a different chunk (a bijection of the chunk set):
	// rows are a power-of-two stride apart, and without this every CTA would hit the same
	// offset window of its rows at the same time (DRAM channel/bank camping).
	const int rot = (DQ & 8) ? (int)((blockIdx.x * 9u) % (unsigned)nchunks) : 0;

	// Rows past N are clamped (read, never written); batch rows past M likewise: a garbage
	// B column only feeds its own output column, which is not written.
	int rr[RT][2];
#pragma unroll
	for (int i = 0; i < RT; ++i)
#pragma unroll
		for (int h = 0; h < 2; ++h) rr[i][h] = gbx_imin(row0 + 16 * i + 8 * h + g, N - 1);
	int tt[RT]; // TL: the 16-row tiles (N is a multiple of 16)
#pragma unroll
	for (int i = 0; i < RT; ++i) tt[i] = gbx_imin(row0 / 16 + i, N / 16 - 1);
	const unsigned short* xrow[NT];
#pragma unroll
	for (int j = 0; j < NT; ++j) xrow[j] = x + (size_t)gbx_imin(mbase + 8 * j + g, M - 1) * K + t * 32;

	const u32 sbase0 = gbx_smem_addr(smem) + warp * WSB;

	auto issue = [&](int it) {
		int c = chunk_of(it) + rot;
		c = c >= nchunks ? c - nchunks : c;
		const u32 sb = sbase0 + (it % S) * STB;
#pragma unroll
		for (int i = 0; i < RT; ++i)
#pragma unroll
			for (int h = 0; h < 2; ++h) {
				const u32 sw = sb + ((i * 2 + h) * 32 + lane) * 16, ss = sb + RT * 1024 + ((i * 2 + h) * 32 + lane) * 4;
				if (TL) { // the warp reads 512 contiguous bytes of codes and 64 of scales
					const size_t u = (size_t)tt[i] * nchunks + c;
					gbx_cp16(sw, w + u * 1024 + h * 512 + lane * 16);
					gbx_cp4(ss, ws + u * 128 + h * 64 + g * 8 + 4 * (t >> 1));
				} else {
					gbx_cp16(sw, w + rr[i][h] * rowB + c * 64 + t * 16);
					gbx_cp4(ss, ws + rr[i][h] * rowS + c * 8 + 4 * (t >> 1));
				}
			}
	};

#pragma unroll
	for (int s = 0; s < S - 1; ++s) {
		if (s < nmy) issue(s);
		gbx_cp_commit();
	}
	// Only weights read so far: the previous kernel's output (x) after the wait.
	gbx_pdl();

	float acc[RT][NT][4];
	gbx_fp4_zero(acc);

	constexpr bool XCHUNK = NT <= 2; // x for a whole chunk prefetched one chunk ahead
	constexpr int XN = XCHUNK ? NT : 1;
	u32 xc[XN][4][4];
	if (XCHUNK && nmy > 0) {
#pragma unroll
		for (int j = 0; j < XN; ++j)
#pragma unroll
			for (int q = 0; q < 4; ++q) {
				const int c0 = chunk_of(0) + rot < nchunks ? chunk_of(0) + rot : chunk_of(0) + rot - nchunks;
				gbx_ldg128(xc[j][q], xrow[j] + c0 * 128 + q * 8);
			}
	}

	for (int it = 0; it < nmy; ++it) {
		int c = chunk_of(it) + rot;
		c = c >= nchunks ? c - nchunks : c;
		int cn = chunk_of(it + 1) + rot;
		cn = cn >= nchunks ? cn - nchunks : cn;
		if (it + S - 1 < nmy) issue(it + S - 1);
		gbx_cp_commit();

		u32 xn[XN][4][4];
		if (XCHUNK && it + 1 < nmy) {
#pragma unroll
			for (int j = 0; j < XN; ++j)
#pragma unroll
				for (int q = 0; q < 4; ++q) gbx_ldg128(xn[j][q], xrow[j] + cn * 128 + q * 8);
		}

		gbx_cp_wait<S - 1>();
		const u32 sb = sbase0 + (it % S) * STB;
		u32 wv[RT][2][4];
		u32 sc[RT][2][2];
		gbx_fp4_wload<RT>(wv, sc, sb, lane);

		u32 xw[NT][4];
		if (!XCHUNK) {
#pragma unroll
			for (int j = 0; j < NT; ++j) gbx_ldg128(xw[j], xrow[j] + c * 128);
		}
		if (DQ & 64) { // probe: loads only (wrong results), to measure the memory side alone
#pragma unroll
			for (int i = 0; i < RT; ++i)
				acc[i][0][0] += gbx_bits2f((wv[i][0][0] ^ wv[i][0][1] ^ wv[i][0][2] ^ wv[i][0][3] ^ wv[i][1][0] ^ wv[i][1][1] ^
				                            wv[i][1][2] ^ wv[i][1][3] ^ sc[i][0][0] ^ sc[i][1][1] ^ xc[0][0][0]) & 0x3fffffffu);
		} else
#pragma unroll
		for (int q = 0; q < 4; ++q) {
			u32 xp[NT][4];
			if (XCHUNK) {
#pragma unroll
				for (int j = 0; j < NT; ++j) gbx_xpairs(xp[j], xc[j < XN ? j : 0][q]);
			} else {
#pragma unroll
				for (int j = 0; j < NT; ++j) gbx_xpairs(xp[j], xw[j]);
				if (q < 3) {
#pragma unroll
					for (int j = 0; j < NT; ++j) gbx_ldg128(xw[j], xrow[j] + c * 128 + (q + 1) * 8);
				}
			}
			gbx_fp4_mma_q<RT, NT, DQ>(acc, wv, sc, xp, q);
		}
		if (XCHUNK) {
#pragma unroll
			for (int j = 0; j < XN; ++j)
#pragma unroll
				for (int q = 0; q < 4; ++q)
#pragma unroll
					for (int r = 0; r < 4; ++r) xc[j][q][r] = xn[j][q][r];
		}
	}

	// Deterministic tree reduction over the KW K-groups through shared memory (reusing the ring).
	gbx_cp_wait<0>();
	__syncthreads();
	float* red = (float*)smem;
	constexpr int R = RT * NT * 4; // floats per thread
#pragma unroll
	for (int half = KW / 2; half >= 1; half /= 2) {
		if (kw >= half && kw < 2 * half) {
			float* dst = red + ((kw - half) * RW + rw) * R * 32 + lane;
#pragma unroll
			for (int i = 0; i < RT; ++i)
#pragma unroll
				for (int j = 0; j < NT; ++j)
#pragma unroll
					for (int r = 0; r < 4; ++r) dst[((i * NT + j) * 4 + r) * 32] = acc[i][j][r];
		}
		__syncthreads();
		if (kw < half) {
			const float* src = red + (kw * RW + rw) * R * 32 + lane;
#pragma unroll
			for (int i = 0; i < RT; ++i)
#pragma unroll
				for (int j = 0; j < NT; ++j)
#pragma unroll
					for (int r = 0; r < 4; ++r)
						acc[i][j][r] = gbx_fadd(acc[i][j][r], src[((i * NT + j) * 4 + r) * 32]);
		}
		__syncthreads();
	}
	if (kw != 0) return;

	const float osc = gbx_fmul(ts, 256.0f); // undo the 2^-8 of the bf16 weights; exact
#pragma unroll
	for (int i = 0; i < RT; ++i)
#pragma unroll
		for (int h = 0; h < 2; ++h) {
			const int n = row0 + 16 * i + 8 * h + g;
			if (n >= N) continue;
			const float b = bias ? bias[n] : 0.f;
			const float oscn = tsv ? gbx_fmul(tsv[n], 256.0f) : osc;
#pragma unroll
			for (int j = 0; j < NT; ++j)
#pragma unroll
				for (int e = 0; e < 2; ++e) {
					const int m = mbase + 8 * j + 2 * t + e;
					if (m < M) y[(size_t)m * N + n] = gbx_fadd(gbx_fmul(acc[i][j][h * 2 + e], oscn), b);
				}
		}
}

// A wide-path output: a's sum of products with the weights' 2^-8 times (the tensor scale, ts or
// tsv[n]) * 2^8, plus the bias (written by the CTA, or by gbx_nvfp4_wide_sum after a split).
__device__ __forceinline__ float gbx_fp4_out(float a, float ts, const float* __restrict__ tsv,
                                             const float* __restrict__ bias, int n) {
	return gbx_fadd(gbx_fmul(a, gbx_fmul(tsv ? tsv[n] : ts, 256.0f)), bias ? bias[n] : 0.f);
}

// The wide path (gbx_nvfp4_gemm_wide): batches of more rows than the fast path serves well, on
// Hopper's warpgroup MMA (wgmma, sm_90a). A CTA is one warpgroup: GBX_FP4W_ROWS = 128 channels
// (two m64 tiles; warp w gives rows 16w..16w+15 of each, the 16-row weight tiles 4i + w) x up
// to 64 batch rows (n = 16, 32 or 64: NT tiles of 8). The weights reach the tensor cores as the
// A operand in registers, dequantized exactly as the fast path's (gbx_fp4_afrag); x is the B
// operand, read by wgmma from shared memory. At 64 rows a weight is dequantized once for 64
// rows of products, where mma.sync's form (measured: 100 us at 28672 x 4096 x 64) spent most of
// its issue slots on x's permutes and shared loads for each 8.
//  * Virtual k order. The fast path feeds the tensor cores a thread's word q of 8 codes (k0..k7
//    of its 32 columns) as the pairs (k0,k4) (k1,k5) and (k2,k6) (k3,k7), so a k16 step of the
//    MMA is a permutation of 16 physical columns. x is stored permuted the same way: the
//    chunk's step v = 2q + H holds, at its k-slots 2t, 2t + 1, 2t + 8, 2t + 9 (t = 0..3), the
//    physical columns 32t + 8q + 2H + {0, 4, 1, 5}. A thread copies a row's 4 units of 8
//    columns (32t + 8q, t = 0..3) into registers and writes the 4 units of 16 bytes of the
//    steps 2q and 2q + 1 (gbx_xpairs: the same permutes as the fast path's B pairs).
//  * x in shared memory: K-major, the 128-byte swizzle (two 8 KiB atoms of 64 columns a
//    stage, 8-row groups 1,024 bytes apart, unit c of row r at (c ^ (r & 7)) * 16); step v is
//    the descriptor of atom v / 4 plus 32 (v % 4) bytes.
//  * Two rings. The weights (codes and scales, by cp.async) have GBX_FP4W_WSTAGES slots a warp
//    and are fetched that many chunks minus one ahead. A thread reads only the bytes it copied,
//    so the weights need no barrier: a slot is refilled once its chunk is in registers. x (by
//    registers, 16 KiB a chunk of 64 rows) has GBX_FP4W_XSTAGES = 2 stages shared by the CTA:
//    chunk it + 1 is loaded while chunk it is multiplied and stored into the stage of chunk
//    it - 1, whose wgmmas every warp has waited for (the barrier at the top of a chunk orders
//    it). Per k16 step: dequantize two A fragments, fence, two wgmmas, commit, wait for them.
//    Keeping a group in flight while the next step dequantizes measured the same (61.2 against
//    61.5 us at 28672 x 4096 x 64 rows), groups of 2-8 steps were slower (62.2-66.3), and groups
//    of 8 gave wrong sums on the GPU (the emulator passed them): waiting leaves no register to a
//    running wgmma, and it lets x make do with 2 stages.
//  * Three CTAs an SM (GBX_FP4W_MIN_BLOCKS: at most 170 registers, 73 KiB of shared memory):
//    the kernel is latency-bound, and with two (x 3 stages, weights 6, 188 registers) q/k/v at
//    64 rows took 34.0 us against 26.8.
//  * K is split over gridDim.z CTAs (chunks [K/128 z / Z, K/128 (z + 1) / Z)) when the host
//    finds too few CTAs (a 4,096-channel layer is 32): each writes its fp32 sums to
//    part[z][M][N] and gbx_nvfp4_wide_sum adds them in z order. With Z = 1 the CTA writes y.
//  * Rows past M are not stored (their columns' sums are never written); tiles past N are
//    read clamped and not written.
//  Same inputs, same grid: same bits. Without wgmma (not sm_90a) y is NaN; the host never
//  launches it there.
template <int NT>
__device__ __forceinline__ void gbx_fp4_wide(const unsigned short* __restrict__ x, const unsigned char* __restrict__ w,
                                             const unsigned char* __restrict__ ws, float ts,
                                             const float* __restrict__ tsv, const float* __restrict__ bias,
                                             float* __restrict__ y, float* __restrict__ part, int M, int N, int K,
                                             unsigned char* smem) {
#if GBX_WGMMA
	constexpr int RT = 2, NWARP = GBX_FP4W_THREADS / 32, WSB = RT * 1280, SX = GBX_FP4W_XSTAGES, SW = GBX_FP4W_WSTAGES;
	constexpr int XB = GBX_FP4W_XSTAGE_BYTES, WB = GBX_FP4W_WSTAGE_BYTES;
	// x tasks (a row and a word q) a thread: NT * 8 rows x 4
	constexpr int XT = (NT * 32 + GBX_FP4W_THREADS - 1) / GBX_FP4W_THREADS;
	static_assert(WB == NWARP * WSB && GBX_FP4W_ROWS == NWARP * RT * 16 && XB == 2 * 8192, "abi.h");
	static_assert(SX >= 2 && SW >= 2, "stages"); // SX = 2: see the wait after each step
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int g = lane >> 2, t = lane & 3;
	const int mbase = blockIdx.x * GBX_FP4W_MTILE;
	const int nchunks = K >> 7, ntiles = N >> 4;
	const int tile0 = blockIdx.y * (GBX_FP4W_ROWS / 16);
	const int c0 = (int)((long long)nchunks * blockIdx.z / gridDim.z);
	const int nmy = (int)((long long)nchunks * (blockIdx.z + 1) / gridDim.z) - c0;
	int tt[RT];
#pragma unroll
	for (int i = 0; i < RT; ++i) tt[i] = gbx_imin(tile0 + 4 * i + warp, ntiles - 1);
	const u32 xbase = (gbx_smem_addr(smem) + 1023u) & ~1023u, wbase = xbase + SX * XB + warp * WSB;

	auto wissue = [&](int it) {
		const int c = c0 + it;
		const u32 wb = wbase + (it % SW) * WB;
#pragma unroll
		for (int i = 0; i < RT; ++i)
#pragma unroll
			for (int h = 0; h < 2; ++h) {
				const size_t u = (size_t)tt[i] * nchunks + c;
				gbx_cp16(wb + ((i * 2 + h) * 32 + lane) * 16, w + u * 1024 + h * 512 + lane * 16);
				gbx_cp4(wb + RT * 1024 + ((i * 2 + h) * 32 + lane) * 4, ws + u * 128 + h * 64 + g * 8 + 4 * (t >> 1));
			}
	};
	u32 xr[XT][4][4];
	auto xtask = [&](int r, int& row, int& q) {
		const int id = threadIdx.x + GBX_FP4W_THREADS * r;
		row = id >> 2, q = id & 3;
		return id < NT * 32 && mbase + row < M;
	};
	auto xload = [&](int it) {
#pragma unroll
		for (int r = 0; r < XT; ++r) {
			int row, q;
			if (xtask(r, row, q)) {
				const unsigned short* src = x + (size_t)(mbase + row) * K + (c0 + it) * 128 + q * 8;
#pragma unroll
				for (int u = 0; u < 4; ++u) gbx_ldg128(xr[r][u], src + u * 32);
			}
		}
	};
	auto xstore = [&](int it) {
		const u32 sb = xbase + (it % SX) * XB;
#pragma unroll
		for (int r = 0; r < XT; ++r) {
			int row, q;
			if (!xtask(r, row, q)) continue;
			u32 p[4][4];
#pragma unroll
			for (int u = 0; u < 4; ++u) gbx_xpairs(p[u], xr[r][u]);
#pragma unroll
			for (int hs = 0; hs < 4; ++hs) { // step 2q + hs / 2, k-slots 8 (hs % 2) ..
				const int v = 2 * q + (hs >> 1), c = ((v & 3) << 1) | (hs & 1);
				gbx_sts128(sb + (v >> 2) * 8192 + row * 128 + ((c ^ (row & 7)) << 4), p[0][hs], p[1][hs], p[2][hs], p[3][hs]);
			}
		}
		gbx_fence_async_smem();
	};

#pragma unroll
	for (int s = 0; s < SW - 1; ++s) {
		if (s < nmy) wissue(s);
		gbx_cp_commit();
	}
	if (nmy > 0) {
		xload(0);
		xstore(0);
	}

	float acc[RT][NT][4];
	gbx_fp4_zero(acc);
#pragma unroll
	for (int i = 0; i < RT; ++i) gbx_wg_pin(acc[i]);

	for (int it = 0; it < nmy; ++it) {
		gbx_cp_wait<SW - 2>(); // this thread's copies of chunk it
		u32 wv[RT][2][4];
		u32 sc[RT][2][2];
		gbx_fp4_wload<RT>(wv, sc, wbase + (it % SW) * WB, lane);
		if (it + SW - 1 < nmy) wissue(it + SW - 1); // into chunk it - 1's slot
		gbx_cp_commit();
		__syncthreads(); // x's chunk it stored by every thread; every warp done with chunk it - 1
		const bool pre = it + 1 < nmy;
		if (pre) xload(it + 1);
		const u32 sb = xbase + (it % SX) * XB;
#pragma unroll
		for (int v = 0; v < 8; ++v) {
			const int q = v >> 1;
			u32 a[RT][4];
#pragma unroll
			for (int i = 0; i < RT; ++i) {
				if (v & 1) gbx_fp4_afrag<1, 0>(a[i], wv[i][0][q], wv[i][1][q], sc[i][0][q >> 1], sc[i][1][q >> 1]);
				else gbx_fp4_afrag<0, 0>(a[i], wv[i][0][q], wv[i][1][q], sc[i][0][q >> 1], sc[i][1][q >> 1]);
			}
			const unsigned long long desc = gbx_wg_desc(sb + (v >> 2) * 8192 + (v & 3) * 32);
#pragma unroll
			for (int i = 0; i < RT; ++i) gbx_wg_pin(acc[i]);
			gbx_wg_fence();
#pragma unroll
			for (int i = 0; i < RT; ++i) gbx_wgmma<NT * 8>(acc[i], a[i][0], a[i][1], a[i][2], a[i][3], desc);
			gbx_wg_commit();
			gbx_wg_wait<0>();
#pragma unroll
			for (int i = 0; i < RT; ++i) gbx_wg_pin(acc[i]);
		}
		if (pre) xstore(it + 1);
	}
	gbx_wg_wait<0>();
	gbx_cp_wait<0>();
#pragma unroll
	for (int i = 0; i < RT; ++i) gbx_wg_pin(acc[i]);

	const bool split = gridDim.z > 1;
	float* out = split ? part + (size_t)blockIdx.z * M * N : y;
#pragma unroll
	for (int i = 0; i < RT; ++i) {
		if (tile0 + 4 * i + warp >= ntiles) continue;
#pragma unroll
		for (int h = 0; h < 2; ++h) {
			const int n = (tile0 + 4 * i + warp) * 16 + 8 * h + g;
#pragma unroll
			for (int j = 0; j < NT; ++j)
#pragma unroll
				for (int e = 0; e < 2; ++e) {
					const int m = mbase + 8 * j + 2 * t + e;
					const float a = acc[i][j][h * 2 + e];
					if (m < M) out[(size_t)m * N + n] = split ? a : gbx_fp4_out(a, ts, tsv, bias, n);
				}
		}
	}
#else
	float* out = gridDim.z > 1 ? part + (size_t)blockIdx.z * M * N : y;
	const int m1 = gbx_imin(M, ((int)blockIdx.x + 1) * GBX_FP4W_MTILE), n1 = gbx_imin(N, ((int)blockIdx.y + 1) * GBX_FP4W_ROWS);
	for (int m = blockIdx.x * GBX_FP4W_MTILE; m < m1; ++m)
		for (int n = blockIdx.y * GBX_FP4W_ROWS + threadIdx.x; n < n1; n += blockDim.x) out[(size_t)m * N + n] = gbx_bits2f(0x7fc00000u);
#endif
}

// Exact CUDA-core path for shapes/alignments the fast path does not take: per element
// (DecodeE2M1 * DecodeE4M3) * ts in float32, times the bf16 activation, fp32 accumulate,
// fixed-order warp reduction.
__device__ __forceinline__ float gbx_dec_e2m1(u32 c) {
	// magnitude bits at float32 bits 24..22: DecodeE2M1 * 2^-126, exact; sign to bit 31
	const float f = gbx_bits2f(((c & 7u) << 22) | ((c & 8u) << 28));
	return gbx_fmul(gbx_fmul(f, 0x1p63f), 0x1p63f);
}

__device__ __forceinline__ float gbx_dec_e4m3(u32 b) {
	const float f = gbx_bits2f(((b & 0x7fu) << 20) | ((b & 0x80u) << 24)); // * 2^-120
	return gbx_fmul(gbx_fmul(f, 0x1p60f), 0x1p60f);
}

template <int NW, int ROWS>
__device__ void gbx_fp4_generic(const unsigned short* __restrict__ x, const unsigned char* __restrict__ w,
                                const unsigned char* __restrict__ ws, float ts, const float* __restrict__ bias,
                                float* __restrict__ y, int M, int N, int K, int Kp,
                                const float* __restrict__ tsv = nullptr) {
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int mbase = blockIdx.y * GBX_FP4_MTILE;
	const int mend = gbx_imin(M, mbase + GBX_FP4_MTILE);
	const int nend = gbx_imin(N, (blockIdx.x + 1) * ROWS);
	for (int n = blockIdx.x * ROWS + warp; n < nend; n += NW) {
		const unsigned char* wr = w + (size_t)n * (Kp >> 1);
		const unsigned char* sr = ws + (size_t)n * (Kp >> 4);
		const float b = bias ? bias[n] : 0.f;
		const float tsn = tsv ? tsv[n] : ts;
		for (int m = mbase; m < mend; ++m) {
			const unsigned short* xr = x + (size_t)m * K;
			float acc = 0.f;
			for (int k = lane; k < K; k += 32) {
				const u32 byte = wr[k >> 1];
				const u32 code = (k & 1) ? (byte >> 4) : (byte & 15u);
				const float wd = gbx_fmul(gbx_fmul(gbx_dec_e2m1(code), gbx_dec_e4m3(sr[k >> 4])), tsn);
				const float xv = gbx_bits2f((u32)xr[k] << 16);
				acc = gbx_fadd(acc, gbx_fmul(xv, wd));
			}
#pragma unroll
			for (int o = 16; o >= 1; o >>= 1) acc = gbx_fadd(acc, __shfl_xor_sync(0xffffffffu, acc, o));
			if (lane == 0) y[(size_t)m * N + n] = gbx_fadd(acc, b);
		}
	}
}

// Picks the path and the inner tiling of this CTA (uniform per CTA). NW x ROWS selects a tiling
// family (the shipped entry point uses 8 x 32); DQ is a bit set of tuning options measured by
// bench/fp4: 1/4 multiply-form E2M1 unpack, 2 one-tile-per-warp family, 8 per-CTA rotation of
// the K walk, 16/32 two/four consecutive chunks per warp, 64 loads-only probe (wrong results).
template <int NW, int ROWS, int S, int DQ, bool TL = false>
__device__ __forceinline__ void gbx_fp4_dispatch(const unsigned short* __restrict__ x, const unsigned char* __restrict__ w,
                                                 const unsigned char* __restrict__ ws, float ts,
                                                 const float* __restrict__ bias, float* __restrict__ y, int M, int N,
                                                 int K, int Kp, unsigned char* smem,
                                                 const float* __restrict__ tsv = nullptr) {
	const bool fast = (K & 127) == 0 && Kp == K && ((size_t)x & 15) == 0 && ((size_t)w & 15) == 0 &&
	                  ((size_t)ws & 3) == 0;
	if (TL && (!fast || (N & 15) != 0)) {
		gbx_pdl();
		// The tiled layout is only for the fast path's shapes (the caller checks): NaN, not a
		// misread.
		const int m1 = gbx_imin(M, ((int)blockIdx.y + 1) * GBX_FP4_MTILE), n1 = gbx_imin(N, ((int)blockIdx.x + 1) * ROWS);
		for (int m = blockIdx.y * GBX_FP4_MTILE; m < m1; ++m)
			for (int n = blockIdx.x * ROWS + threadIdx.x; n < n1; n += blockDim.x) y[(size_t)m * N + n] = gbx_bits2f(0x7fc00000u);
		return;
	}
	if (!fast) {
		gbx_pdl();
		gbx_fp4_generic<NW, ROWS>(x, w, ws, ts, bias, y, M, N, K, Kp, tsv);
		return;
	}
	const int mloc = gbx_imin(M - (int)blockIdx.y * GBX_FP4_MTILE, GBX_FP4_MTILE);
	if (NW == 8 && ROWS == 64) {
		if (mloc <= 8) gbx_fp4_fast<1, 4, 1, 8, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 16) gbx_fp4_fast<2, 4, 1, 8, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 32) gbx_fp4_fast<4, 2, 2, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else gbx_fp4_fast<8, 1, 4, 2, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
	} else if (NW == 16 && ROWS == 64) {
		if (mloc <= 8) gbx_fp4_fast<1, 4, 1, 16, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 16) gbx_fp4_fast<2, 4, 1, 16, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 32) gbx_fp4_fast<4, 2, 2, 8, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else gbx_fp4_fast<8, 1, 4, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
	} else if (NW == 8 && ROWS == 32 && (DQ & 2)) { // 16-row tiles, 2 channel groups x 4 K-groups
		if (mloc <= 8) gbx_fp4_fast<1, 1, 2, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 16) gbx_fp4_fast<2, 1, 2, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 32) gbx_fp4_fast<4, 1, 2, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else gbx_fp4_fast<8, 1, 2, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
	} else if (NW == 4 && ROWS == 16) { // one 16-row tile, 4 K-groups
		if (mloc <= 8) gbx_fp4_fast<1, 1, 1, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 16) gbx_fp4_fast<2, 1, 1, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 32) gbx_fp4_fast<4, 1, 1, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else gbx_fp4_fast<8, 1, 1, 4, S, DQ>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
	} else if (NW == 8 && ROWS == 32) { // the shipped family, the only one with TL
		if (mloc <= 8) gbx_fp4_fast<1, 2, 1, 8, S, DQ, TL>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 16) gbx_fp4_fast<2, 2, 1, 8, S, DQ, TL>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else if (mloc <= 32) gbx_fp4_fast<4, 2, 1, 8, S, DQ, TL>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
		else gbx_fp4_fast<8, 1, 2, 4, S, DQ, TL>(x, w, ws, ts, bias, y, M, N, K, smem, tsv);
	}
}

// gbx_nvfp4_gemm and gbx_nvfp4_gemm_tiled are the entry points, one kernel each so that each
// compiles as alone:
//   tsv    : one tensor scale per output channel (tsv[n]; several NVFP4 tensors, each with its
//            own, stacked along N into one product: a language model's fused q/k/v and gate/up
//            projections), or NULL for ts.
//   _tiled : w and ws in the tiled layout (docs/cuda.md, "NVFP4 weights, tiled"): for each
//            16-row tile T and chunk c of 128 columns, the unit u = T * K/128 + c holds the
//            tile's rows' 64 code bytes of the chunk one after another at u * 1024, and their
//            8 scale bytes at u * 128: a warp's copy (rows g and g + 8 of a tile, lane 4g + t
//            its 16 bytes t) is 512 contiguous bytes where row-major it is 64 from each of 8
//            rows. Needs the fast path's shape and alignment and N % 16 == 0 (otherwise y is
//            NaN).
extern "C" __global__ void __launch_bounds__(GBX_FP4_THREADS, 2)
    gbx_nvfp4_gemm(const unsigned short* __restrict__ x, // [M, K] bf16 bits, row-major, row stride K
                   const unsigned char* __restrict__ w,  // [N, Kp/2] packed E2M1 (low nibble = even k)
                   const unsigned char* __restrict__ ws, // [N, Kp/16] E4M3 block scales
                   float ts,                             // float32 tensor scale (tsv NULL)
                   const float* __restrict__ tsv,        // [N] float32 tensor scales, or NULL
                   const float* __restrict__ bias,       // [N] or NULL
                   float* __restrict__ y,                // [M, N] fp32
                   int M, int N, int K, int Kp) {
	gbx_pdl_weights_first(); // gbx_fp4_dispatch waits
	GBX_DYN_SMEM(gbx_fp4_smem_g, GBX_FP4_SMEM_BYTES);
	gbx_fp4_dispatch<8, GBX_FP4_ROWS, GBX_FP4_STAGES, 0>(x, w, ws, ts, bias, y, M, N, K, Kp, gbx_fp4_smem_g, tsv);
}

extern "C" __global__ void __launch_bounds__(GBX_FP4_THREADS, 2)
    gbx_nvfp4_gemm_tiled(const unsigned short* __restrict__ x, // [M, K] bf16 bits, row-major, row stride K
                         const unsigned char* __restrict__ w,  // packed E2M1, tiled
                         const unsigned char* __restrict__ ws, // E4M3 block scales, tiled
                         float ts,                             // float32 tensor scale (tsv NULL)
                         const float* __restrict__ tsv,        // [N] float32 tensor scales, or NULL
                         const float* __restrict__ bias,       // [N] or NULL
                         float* __restrict__ y,                // [M, N] fp32
                         int M, int N, int K, int Kp) {
	gbx_pdl_weights_first(); // gbx_fp4_dispatch waits
	GBX_DYN_SMEM(gbx_fp4_smem_t, GBX_FP4_SMEM_BYTES);
	gbx_fp4_dispatch<8, GBX_FP4_ROWS, GBX_FP4_STAGES, 0, true>(x, w, ws, ts, bias, y, M, N, K, Kp, gbx_fp4_smem_t, tsv);
}

// gbx_nvfp4_gemm_wide: the wide path (gbx_fp4_wide) for tiled weights, K % 128 == 0, N % 16 ==
// 0, x 16-byte aligned (the host checks). Grid (ceil(M / GBX_FP4W_MTILE), ceil(N /
// GBX_FP4W_ROWS), Z), GBX_FP4W_THREADS threads, GBX_FP4W_SMEM_BYTES of dynamic shared memory;
// part [Z, M, N] fp32 scratch when Z > 1 (then y is gbx_nvfp4_wide_sum's to write).
extern "C" __global__ void __launch_bounds__(GBX_FP4W_THREADS, GBX_FP4W_MIN_BLOCKS)
    gbx_nvfp4_gemm_wide(const unsigned short* __restrict__ x, // [M, K] bf16 bits
                        const unsigned char* __restrict__ w,  // packed E2M1, tiled
                        const unsigned char* __restrict__ ws, // E4M3 block scales, tiled
                        float ts,                             // float32 tensor scale (tsv NULL)
                        const float* __restrict__ tsv,        // [N] float32 tensor scales, or NULL
                        const float* __restrict__ bias,       // [N] or NULL
                        float* __restrict__ y,                // [M, N] fp32 (Z == 1)
                        float* __restrict__ part,             // [Z, M, N] fp32 (Z > 1)
                        int M, int N, int K) {
	gbx_pdl();
	GBX_DYN_SMEM(gbx_fp4_smem_w, GBX_FP4W_SMEM_BYTES);
	const int mloc = gbx_imin(M - (int)blockIdx.x * GBX_FP4W_MTILE, GBX_FP4W_MTILE);
	if (mloc <= 16) gbx_fp4_wide<2>(x, w, ws, ts, tsv, bias, y, part, M, N, K, gbx_fp4_smem_w);
	else if (mloc <= 32) gbx_fp4_wide<4>(x, w, ws, ts, tsv, bias, y, part, M, N, K, gbx_fp4_smem_w);
	else gbx_fp4_wide<8>(x, w, ws, ts, tsv, bias, y, part, M, N, K, gbx_fp4_smem_w);
}

// gbx_nvfp4_wide_sum: y[i] = (sum over z in order of part[z][i]) * ts_n * 2^8 + bias[n], i over
// M * N (n = i % N), grid-stride.
extern "C" __global__ void gbx_nvfp4_wide_sum(const float* __restrict__ part, float ts, const float* __restrict__ tsv,
                                              const float* __restrict__ bias, float* __restrict__ y, long long total,
                                              int N, int Z) {
	gbx_pdl();
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
		float a = part[i];
		for (int z = 1; z < Z; ++z) a = gbx_fadd(a, part[(size_t)z * total + i]);
		y[i] = gbx_fp4_out(a, ts, tsv, bias, (int)(i % N));
	}
}
