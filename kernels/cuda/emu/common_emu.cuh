// common_emu.cuh: common.cuh for g++ (build.sh copies it over common.cuh):
// the same helpers without PTX (conversions as package precision does them),
// the real block reductions (reduce.cuh), and the CUDA built-ins the kernels use,
// over the cooperative fiber runtime of emu.cpp.
#ifndef GBX_COMMON_CUH
#define GBX_COMMON_CUH

#include "abi.h"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

using std::max;
using std::min;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__
#define __launch_bounds__(...)

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

struct emu_dim3 { unsigned x = 1, y = 1, z = 1; };
extern emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct uint2 { u32 x, y; };
struct uint4 { u32 x, y, z, w; };

void emu_syncthreads();
void emu_syncwarp();
void emu_shfl_put(uint64_t v);
uint64_t emu_shfl_get(int lane);
// emu_xchg_put and emu_xchg_get exchange up to 8 words a lane across a
// warp: every lane puts, a warp barrier, every lane gets all 32 lanes'
// words, a warp barrier (emu_mma: two barriers where shuffling each
// register from each lane took 384).
void emu_xchg_put(const uint32_t *v, int n);
void emu_xchg_get(uint32_t (*all)[8]);
int emu_syncthreads_or(int p);

inline void __syncthreads() { emu_syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu_syncwarp(); }
inline int __syncthreads_or(int p) { return emu_syncthreads_or(p); }

template <class T> inline T emu_shfl(T v, int src) {
	uint64_t b = 0;
	std::memcpy(&b, &v, sizeof v);
	emu_shfl_put(b);
	emu_syncwarp();
	uint64_t r = emu_shfl_get(src);
	emu_syncwarp();
	T out;
	std::memcpy(&out, &r, sizeof out);
	return out;
}
template <class T> inline T __shfl_xor_sync(unsigned, T v, int o) { return emu_shfl(v, (int)(threadIdx.x & 31) ^ o); }
template <class T> inline T __shfl_down_sync(unsigned, T v, int o) {
	int l = (int)(threadIdx.x & 31) + o;
	return emu_shfl(v, l < 32 ? l : (int)(threadIdx.x & 31));
}
template <class T> inline T __shfl_sync(unsigned, T v, int src) { return emu_shfl(v, src); }
inline int __any_sync(unsigned, int p) {
	int v = p != 0;
	for (int o = 1; o < 32; o <<= 1) v |= __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

inline u32 __float_as_uint(float f) { u32 u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(u32 u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline double __longlong_as_double(long long u) { double f; std::memcpy(&f, &u, 8); return f; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline u32 atomicMax(u32 *p, u32 v) { u32 o = *p; if (v > o) *p = v; return o; }

// Programmatic dependent launch: the emulator runs launches one after
// another, and its libcuda has no cuLaunchKernelEx.
__device__ __forceinline__ void gbx_pdl() {}
__device__ __forceinline__ void gbx_pdl_weights_first() {}
__device__ __forceinline__ int gbx_imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ float gbx_fmul(float a, float b) { volatile float r = a * b; return r; }
__device__ __forceinline__ float gbx_fadd(float a, float b) { volatile float r = a + b; return r; }
__device__ __forceinline__ float gbx_bits2f(u32 u) { return __uint_as_float(u); }
__device__ __forceinline__ u32 gbx_f2bits(float f) { return __float_as_uint(f); }

// ---- conversions, as package precision ----
__device__ __forceinline__ u16 f2bf(float x) {
	u32 b = __float_as_uint(x);
	if ((b & 0x7fffffffu) > 0x7f800000u) return (u16)((b >> 16) | 0x40);
	b += 0x7fff + ((b >> 16) & 1);
	return (u16)(b >> 16);
}
__device__ __forceinline__ u16 f2h(float x) {
	_Float16 h = (_Float16)x;
	u16 r;
	std::memcpy(&r, &h, 2);
	return r;
}
__device__ __forceinline__ float f2tf32(float x) {
	u32 b = __float_as_uint(x);
	if ((b & 0x7f800000u) == 0x7f800000u) {
		if (b & 0x007fffffu) return __uint_as_float((b | 0x00400000u) & ~0x1fffu);
		return x;
	}
	return __uint_as_float((b + 0x1000u) & ~0x1fffu);
}
__device__ __forceinline__ float bf2f(u16 b) { return __uint_as_float((u32)b << 16); }
__device__ __forceinline__ float h2f(u16 h) {
	_Float16 f;
	std::memcpy(&f, &h, 2);
	return (float)f;
}
// E4M3 as package precision: saturating RNE.
inline float emu_e4m3_value(u8 c) {
	int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
	if (e == 15 && m == 7) return NAN;
	float v = e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
	return s ? -v : v;
}
inline u8 emu_e4m3(float x) {
	if (x != x) return 0x7f;
	u8 sign = std::signbit(x) ? 0x80 : 0;
	float a = std::fabs(x);
	if (a >= 448.0f) return sign | 0x7e;
	// nearest of the 127 non-negative finite values, ties to even code
	u8 best = 0;
	float bd = INFINITY;
	for (int c = 0; c <= 0x7e; c++) {
		float d = std::fabs(emu_e4m3_value((u8)c) - a);
		if (d < bd || (d == bd && (c & 1) == 0)) { bd = d; best = (u8)c; }
	}
	return sign | best;
}
__device__ __forceinline__ u16 f2e4m3x2(float lo, float hi) { return (u16)(emu_e4m3(lo) | (emu_e4m3(hi) << 8)); }
__device__ __forceinline__ float e4m3f(u8 q) { return emu_e4m3_value(q); }
__device__ __forceinline__ u8 e4m3q(float x, float s) { return (u8)(f2e4m3x2(__fdiv_rn(x, s), 0.0f) & 0xff); }
template <int H> inline u32 gbx_e4m3x2_f16(u32 w) {
	const u32 b = H ? w >> 16 : w;
	return (u32)f2h(emu_e4m3_value((u8)b)) | (u32)f2h(emu_e4m3_value((u8)(b >> 8))) << 16;
}
inline u32 gbx_f16x2(float lo, float hi) { return (u32)f2h(lo) | (u32)f2h(hi) << 16; }
inline u32 gbx_bf16x2(float lo, float hi) { return (u32)f2bf(lo) | (u32)f2bf(hi) << 16; }
__device__ __forceinline__ float fp8Scale(float amax, int margin) {
	if (amax == 0.0f) return 1.0f;
	double d = (double)amax * (double)(1 << margin) / 448.0;
	float s = (float)d;
	return fmaxf(s, __uint_as_float(1u));
}

// ---- 16-byte loads and tensor-core fragments (gemv.cu) ----
__device__ __forceinline__ void gbx_ldg128(u32 (&r)[4], const void *p) { std::memcpy(r, p, 16); }

// emu_mma is one mma.sync of PTX's fragment layout: every lane's a0..a3,
// b0, b1 go through the warp's exchange; element e (of per = 2 bf16/f16 or
// 4 e4m3 per register) of a lane's register holds k-slot 2t+e or 4t+e (a0,
// a1, b0) and that + 8 or + 16 (a2, a3, b1); a0, a2 rows g, a1, a3 rows
// g + 8; b's column g; c0, c1 row g, columns 2t, 2t+1, c2, c3 row g + 8.
template <int FMT> inline float emu_frag(u32 reg, int e) {
	if (FMT == GBX_FMT_E4M3) return emu_e4m3_value((u8)(reg >> (8 * e)));
	u16 h = (u16)(reg >> (16 * e));
	return FMT == GBX_FMT_BF16 ? bf2f(h) : h2f(h);
}
template <int FMT> inline void emu_mma(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
	const int lane = threadIdx.x & 31, per = FMT == GBX_FMT_E4M3 ? 4 : 2;
	u32 mine[6] = {a0, a1, a2, a3, b0, b1}, all[32][8];
	emu_xchg_put(mine, 6);
	emu_syncwarp();
	emu_xchg_get(all);
	emu_syncwarp();
	// A[row][k], B[k][col] of this mma.
	const int K = 8 * per;
	auto A = [&](int row, int k) {
		const int t = (k % (4 * per)) / per, hi = k >= 4 * per, e = k % per;
		return emu_frag<FMT>(all[(row % 8) * 4 + t][(row >= 8 ? 1 : 0) + (hi ? 2 : 0)], e);
	};
	auto B = [&](int k, int col) {
		const int t = (k % (4 * per)) / per, hi = k >= 4 * per, e = k % per;
		return emu_frag<FMT>(all[col * 4 + t][4 + hi], e);
	};
	const int g = lane >> 2, t = lane & 3;
	for (int i = 0; i < 4; i++) {
		const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
		double s = 0;
		for (int k = 0; k < K; k++) s += (double)A(row, k) * (double)B(k, col);
		c[i] += (float)s;
	}
}
inline void gbx_mma(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) { emu_mma<GBX_FMT_BF16>(c, a0, a1, a2, a3, b0, b1); }
inline void gbx_mma_f16(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) { emu_mma<GBX_FMT_F16>(c, a0, a1, a2, a3, b0, b1); }
inline void gbx_mma_e4m3(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) { emu_mma<GBX_FMT_E4M3>(c, a0, a1, a2, a3, b0, b1); }

// gbx_movmatrix_t: lane 4g + t gets elements (2t, g) and (2t+1, g) of the
// 8×8 matrix whose element (r, c) lane 4r + c/2 holds (half c mod 2).
inline u32 gbx_movmatrix_t(u32 a) {
	const int lane = (int)(threadIdx.x & 31), g = lane >> 2, t = lane & 3;
	const u32 lo = emu_shfl(a, 4 * (2 * t) + g / 2), hi = emu_shfl(a, 4 * (2 * t + 1) + g / 2);
	const int sh = 16 * (g % 2);
	return ((lo >> sh) & 0xffffu) | (((hi >> sh) & 0xffffu) << 16);
}

// gbx_ldsm_x4 (ldmatrix.x4): lane 8i + r gives row r of matrix i's
// shared address; lane 4g + t gets row g's columns 2t, 2t+1 of matrix i in
// r[i]. gbx_ldsm_x4_t (.trans): column g's rows 2t, 2t+1.
inline char *emu_smem_base;
inline u32 gbx_lds32(u32 s);
template <bool T> inline void emu_ldsm_x4(u32 (&r)[4], u32 s) {
	const int lane = (int)(threadIdx.x & 31), g = lane >> 2, t = lane & 3;
	if ((s & 15u) != 0) abort(); // ldmatrix's alignment
	for (int i = 0; i < 4; i++) {
		if (!T) {
			r[i] = gbx_lds32(emu_shfl(s, 8 * i + g) + 4 * t);
			continue;
		}
		u16 lo, hi;
		std::memcpy(&lo, emu_smem_base + emu_shfl(s, 8 * i + 2 * t) + 2 * g, 2);
		std::memcpy(&hi, emu_smem_base + emu_shfl(s, 8 * i + 2 * t + 1) + 2 * g, 2);
		r[i] = (u32)lo | (u32)hi << 16;
	}
}
inline void gbx_ldsm_x4(u32 (&r)[4], u32 s) { emu_ldsm_x4<false>(r, s); }
inline void gbx_ldsm_x4_t(u32 (&r)[4], u32 s) { emu_ldsm_x4<true>(r, s); }

// ---- byte permutes, bf16x2 products, shared memory and asynchronous copies (fp4_linear.cu) ----
// gbx_prmt is prmt.b32's default mode: byte i of the result is byte
// (sel >> 4i) & 7 of b:a (a the low four bytes); the sign-replicate bit
// (8) is not used by the kernels.
inline u32 gbx_prmt(u32 a, u32 b, u32 sel) {
	const uint64_t ba = (uint64_t)b << 32 | a;
	u32 d = 0;
	for (int i = 0; i < 4; i++) d |= (u32)((ba >> (8 * ((sel >> (4 * i)) & 7))) & 0xff) << (8 * i);
	return d;
}
// gbx_bmul2 is mul.rn.bf16x2: each half's product rounded once to bf16 (a
// bf16 product is exact in float while it stays in float's normal range,
// as the NVFP4 kernel's, ≥ 2^-18, do).
inline u32 gbx_bmul2(u32 a, u32 b) {
	const float lo = bf2f((u16)a) * bf2f((u16)b), hi = bf2f((u16)(a >> 16)) * bf2f((u16)(b >> 16));
	return (u32)f2bf(lo) | (u32)f2bf(hi) << 16;
}
// Shared memory is static storage here (__shared__ is static); a shared
// address is its offset from the first one taken (all lie in this
// library's .bss, within 4 GiB of each other).
inline u32 gbx_smem_addr(const void *p) {
	if (!emu_smem_base) emu_smem_base = (char *)p - (1u << 30);
	const long long o = (const char *)p - emu_smem_base;
	if (o < 0 || o > 0xffffffffLL) abort();
	return (u32)o;
}
// The copies complete at once (a wait has nothing left to wait for).
inline void gbx_cp16(u32 s, const void *g) { std::memcpy(emu_smem_base + s, g, 16); }
inline void gbx_cp4(u32 s, const void *g) { std::memcpy(emu_smem_base + s, g, 4); }
inline void gbx_cp_commit() {}
template <int N> inline void gbx_cp_wait() {}
inline void gbx_lds128(u32 (&r)[4], u32 s) { std::memcpy(r, emu_smem_base + s, 16); }
inline u32 gbx_lds32(u32 s) { u32 r; std::memcpy(&r, emu_smem_base + s, 4); return r; }
#define GBX_DYN_SMEM(name, bytes) alignas(16) static unsigned char name[bytes]
// gbx_ex2: ex2.approx.ftz's 2^x, rounded as exp2f (the hardware's is
// within 2 ulp of it); results below 2^-126 flushed to zero.
inline float gbx_ex2(float x) {
	const float y = exp2f(x);
	return y < 0x1p-126f ? 0.0f : y;
}
inline void gbx_sts32(u32 s, u32 v) { std::memcpy(emu_smem_base + s, &v, 4); }
inline void gbx_sts128(u32 s, u32 a, u32 b, u32 c, u32 d) {
	const u32 v[4] = {a, b, c, d};
	std::memcpy(emu_smem_base + s, v, 16);
}

// ---- bulk copies (attn_mma.cu's ring) ----
// A copy completes at once, so a barrier has nothing to count or wait for.
#define GBX_BULK 1
inline void gbx_mbar_init(u32, u32) {}
inline void gbx_mbar_init_fence() {}
inline void gbx_mbar_expect(u32, u32) {}
inline void gbx_bulk_g2s(u32 dst, const void *src, u32 bytes, u32) {
	if ((dst | bytes) % 16 != 0 || (uintptr_t)src % 16 != 0) abort(); // the hardware's alignment
	std::memcpy(emu_smem_base + dst, src, bytes);
}
inline void gbx_mbar_wait(u32, u32) {}

// ---- warpgroup MMA (fp4_linear.cu's wide kernel) ----
// wgmma runs at once (fences, commits and waits have nothing to order); a
// descriptor here is the operand's shared address itself. The B operand is
// read as the hardware reads the 128-byte swizzle: element (n, k) at s +
// (n / 8)·1,024 + (n % 8)·128 + 2k, its address bits 4-6 XORed with bits
// 7-9; A's fragments go through a warpgroup-wide exchange (the block is
// one warpgroup: two block barriers).
#define GBX_WGMMA 1
inline void gbx_wg_fence() {}
inline void gbx_wg_commit() {}
template <int N> inline void gbx_wg_wait() {}
inline void gbx_fence_async_smem() {}
inline unsigned long long gbx_wg_desc(u32 s) { return s; }
inline unsigned long long gbx_wg_desc_add(unsigned long long d, u32 bytes) { return d + bytes; }
template <int NT> inline void gbx_wg_pin(float (&)[NT][4]) {}
inline u32 emu_wg_a[256][4]; // a block of up to two warpgroups

// emu_wg_h reads the 16-bit element at shared address a of the 128-byte
// swizzle (address bits 4-6 XORed with bits 7-9) as F16 or BF16.
template <bool F16> inline float emu_wg_h(u32 a) {
	a ^= ((a >> 7) & 7) << 4;
	u16 h;
	std::memcpy(&h, emu_smem_base + a, 2);
	return F16 ? h2f(h) : bf2f(h);
}
// emu_wg_kmajor is the address of element (mn, k) of a K-major operand
// at descriptor d: d + (mn / 8)·1,024 + (mn % 8)·128 + 2k.
inline u32 emu_wg_kmajor(unsigned long long d, int mn, int k) { return (u32)d + (u32)(mn >> 3) * 1024 + (u32)(mn & 7) * 128 + 2 * (u32)k; }
// emu_wg_regs puts this thread's A fragments in the warpgroup's exchange
// (a block barrier follows) and returns the reader of its warpgroup's A:
// element (row, k) from the owner lane's register as mma.sync's A.
template <bool F16> inline auto emu_wg_regs(u32 a0, u32 a1, u32 a2, u32 a3) {
	const int tid = (int)threadIdx.x, wg0 = tid & ~127; // the warpgroup's first thread
	emu_wg_a[tid][0] = a0, emu_wg_a[tid][1] = a1, emu_wg_a[tid][2] = a2, emu_wg_a[tid][3] = a3;
	emu_syncthreads();
	return [wg0](int row, int k) {
		const int r = row & 15, owner = wg0 + (row >> 4) * 32 + (r & 7) * 4 + ((k & 7) >> 1);
		const u16 h = (u16)(emu_wg_a[owner][(r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)] >> (16 * (k & 1)));
		return F16 ? h2f(h) : bf2f(h);
	};
}
// emu_wg_run is one m64nNk16 of A(row, k) and B(k, n) into c (NJ = N / 8
// n8 blocks as mma.sync's C of the thread's warp in its warpgroup): c = a·b,
// or c += a·b where acc is set; then a block barrier.
template <int NJ, class FA, class FB> inline void emu_wg_run(float (&c)[NJ][4], FA A, FB B, bool acc) {
	const int tid = (int)threadIdx.x, w = (tid >> 5) & 3, g = (tid & 31) >> 2, t = tid & 3;
	for (int j = 0; j < NJ; j++)
		for (int r = 0; r < 4; r++) {
			const int row = 16 * w + g + 8 * (r >> 1), col = 8 * j + 2 * t + (r & 1);
			double s = 0;
			for (int k = 0; k < 16; k++) s += (double)A(row, k) * (double)B(k, col);
			c[j][r] = acc ? c[j][r] + (float)s : (float)s;
		}
	emu_syncthreads();
}
template <int N> inline void gbx_wgmma(float (&c)[N / 8][4], u32 a0, u32 a1, u32 a2, u32 a3, unsigned long long b) {
	emu_wg_run(c, emu_wg_regs<false>(a0, a1, a2, a3), [b](int k, int n) { return emu_wg_h<false>(emu_wg_kmajor(b, n, k)); }, true);
}

// gbx_wgmma64_rt<F16>: m64n64k16 of F16 or BF16 operands, A from registers
// as gbx_wgmma's, B MN-major: element (k, n) at s + (n / 64)·lbo + (k /
// 8)·1,024 + (k % 8)·128 + 2(n % 64), swizzled as above (the emulator's
// MN-major descriptor carries lbo in its high 32 bits).
inline unsigned long long gbx_wg_desc_mn(u32 s, u32 lbo) { return s | (unsigned long long)lbo << 32; }
template <int N> inline void gbx_wg_pin_a(u32 (&)[N][4]) {}
template <bool F16> inline void gbx_wgmma64_rt(float (&c)[8][4], u32 a0, u32 a1, u32 a2, u32 a3, unsigned long long b, int acc) {
	emu_wg_run(c, emu_wg_regs<F16>(a0, a1, a2, a3), [b](int k, int n) {
		return emu_wg_h<F16>((u32)b + (u32)(n >> 6) * (u32)(b >> 32) + (u32)(k >> 3) * 1024 + (u32)(k & 7) * 128 + 2 * (u32)(n & 63));
	}, acc != 0);
}

// gbx_wgmma64_ss<F16>: A from shared memory, K-major as B's.
template <bool F16> inline void gbx_wgmma64_ss(float (&c)[8][4], unsigned long long a, unsigned long long b, int acc) {
	emu_syncthreads();
	emu_wg_run(c, [a](int row, int k) { return emu_wg_h<F16>(emu_wg_kmajor(a, row, k)); },
	           [b](int k, int n) { return emu_wg_h<F16>(emu_wg_kmajor(b, n, k)); }, acc != 0);
}

#include "reduce.cuh" // the real one
#endif
