// common.cuh: what every kernel source includes: the ABI (abi.h), the
// storage types, and the device helpers more than one source uses.
//
// The sources are compiled at run time by NVRTC with no toolkit header:
// bf16/fp16/fp8/tf32 values are raw unsigned storage converted with inline
// PTX, and anything the CUDA headers would provide is written here. They
// are compiled without fast math or flush-to-zero (the ops module also
// with -fmad=false), so each result is the correctly rounded IEEE
// operation the CPU backend performs (transcendentals are evaluated in
// double and rounded once, as on the CPU).
//
// The files of src/ are flat (included by bare name, "common.cuh") and the
// headers guarded: a module includes several sources in one translation
// unit, so names must not clash across the sources of a module.
#ifndef GBX_COMMON_CUH
#define GBX_COMMON_CUH

#include "abi.h"

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

// ---- exact float arithmetic and bits (PTX: never contracted into an FMA) ----

__device__ __forceinline__ int gbx_imin(int a, int b) { return a < b ? a : b; }

__device__ __forceinline__ float gbx_fmul(float a, float b) {
	float d;
	asm("mul.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
	return d;
}

__device__ __forceinline__ float gbx_fadd(float a, float b) {
	float d;
	asm("add.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
	return d;
}

__device__ __forceinline__ float gbx_bits2f(u32 u) {
	float f;
	asm("mov.b32 %0, %1;" : "=f"(f) : "r"(u));
	return f;
}

__device__ __forceinline__ u32 gbx_f2bits(float f) {
	u32 u;
	asm("mov.b32 %0, %1;" : "=r"(u) : "f"(f));
	return u;
}

__device__ __forceinline__ u32 gbx_prmt(u32 a, u32 b, u32 sel) {
	u32 d;
	asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
	return d;
}

__device__ __forceinline__ u32 gbx_bmul2(u32 a, u32 b) {
	u32 d;
	asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
	return d;
}

// ---- format conversions (PTX cvt: no toolkit header) ----

// f2bf and f2h return the bf16 and fp16 bits of x, rounded to nearest even
// (precision.EncodeBF16, EncodeFP16); f2tf32 returns x rounded to tf32, ties
// away from zero (cvt.rna, precision.RoundTF32).
__device__ __forceinline__ u16 f2bf(float x) {
	u16 r;
	asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
	return r;
}

__device__ __forceinline__ u16 f2h(float x) {
	u16 r;
	asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
	return r;
}

__device__ __forceinline__ float f2tf32(float x) {
	u32 r;
	asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
	return __uint_as_float(r);
}

// bf2f and h2f widen bf16 and fp16 bits to float (exactly).
__device__ __forceinline__ float bf2f(u16 b) { return __uint_as_float((u32)b << 16); }

__device__ __forceinline__ float h2f(u16 h) {
	float f;
	asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
	return f;
}

// f2e4m3x2 packs two floats to E4M3, saturating (precision.EncodeE4M3); lo
// goes to the low byte.
__device__ __forceinline__ u16 f2e4m3x2(float lo, float hi) {
	u16 r;
	asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
	return r;
}

// e4m3q is the E4M3 byte of x / s: an IEEE division, then saturating
// (precision.EncodeE4M3).
__device__ __forceinline__ u8 e4m3q(float x, float s) { return (u8)(f2e4m3x2(__fdiv_rn(x, s), 0.0f) & 0xff); }

// e4m3f is the value of an E4M3 byte (precision.DecodeE4M3), through fp16
// (exact: every E4M3 value is an fp16).
__device__ __forceinline__ float e4m3f(u8 q) {
	u32 h2;
	asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h2) : "h"((u16)q));
	return h2f((u16)(h2 & 0xffff));
}

// gbx_e4m3x2_f16<H> widens bytes 2H and 2H+1 of w, two E4M3 values, to an
// f16x2 word (byte 2H in the low half), exactly, as every E4M3 value is an
// F16 one: on sm_89 and later one cvt (the NaN bytes 0x7f, 0xff become NaN);
// on sm_80 the byte's sign at bit 15 and its 7 magnitude bits at bits 7…13
// of an F16 are DecodeE4M3 · 2^-8, normals and subnormals alike, and one
// fma.rn.f16x2 by 2^8 plus −0 is exact, ±0 kept (the NaN bytes become
// ±480). The cache never stores NaN bytes.
template <int H>
__device__ __forceinline__ u32 gbx_e4m3x2_f16(u32 w) {
	u32 d;
#if __CUDA_ARCH__ >= 890
	if (H)
		asm("{ .reg .b16 lo, hi; mov.b32 {lo, hi}, %1; cvt.rn.f16x2.e4m3x2 %0, hi; }" : "=r"(d) : "r"(w));
	else
		asm("{ .reg .b16 lo, hi; mov.b32 {lo, hi}, %1; cvt.rn.f16x2.e4m3x2 %0, lo; }" : "=r"(d) : "r"(w));
#else
	const u32 x = gbx_prmt(w, 0u, H ? 0x3424u : 0x1404u); // the two bytes at bits 8…15 and 24…31
	const u32 b = (x & 0x80008000u) | ((x >> 1) & 0x3f803f80u);
	asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(b), "r"(0x5c005c00u), "r"(0x80008000u)); // 2^8, −0
#endif
	return d;
}

// gbx_f16x2 packs two floats to f16x2, rounded to nearest even (lo in the
// low half).
__device__ __forceinline__ u32 gbx_f16x2(float lo, float hi) {
	u32 d;
	asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
	return d;
}

// gbx_bf16x2 packs two floats to bf16x2, rounded to nearest even (lo in the
// low half).
__device__ __forceinline__ u32 gbx_bf16x2(float lo, float hi) { return (u32)f2bf(lo) | (u32)f2bf(hi) << 16; }

// fp8Scale is precision.FP8Scale: amax·2^margin/448 correctly rounded to
// float (in double, then rounded once, as the Go code does), 1 for amax 0,
// at least the smallest float.
__device__ __forceinline__ float fp8Scale(float amax, int margin) {
	if (amax == 0.0f) return 1.0f;
	double d = (double)amax * (double)(1 << margin) / 448.0;
	float s = (float)d;
	return fmaxf(s, __uint_as_float(1u));
}

// ---- programmatic dependent launch (PTX, sm_90) ----

// gbx_pdl is every kernel's first statement. A kernel launched with
// programmatic dependent launch (gbx_launch's pdl) may start while the
// stream's previous kernel still runs: griddepcontrol.wait blocks until
// that kernel has completed and its writes are visible, so nothing before
// it may touch memory. Every kernel waits before it can complete, so a
// kernel's completion still implies its predecessors'. launch_dependents
// then lets the next kernel's blocks be scheduled (they wait in turn),
// hiding its launch behind this kernel's work. Without the attribute, or
// below sm_90, both are no-ops.
__device__ __forceinline__ void gbx_pdl() {
#if __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.wait;" ::: "memory");
	asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// gbx_pdl_weights_first is, in place of gbx_pdl, the first statement of a
// kernel that starts loading its weights before it waits: a layer's
// weights are written by no kernel of a step, so under programmatic
// dependent launch their first loads can be in flight while the previous
// kernel (a norm, RoPE, SiLU: latency-bound, the DRAM idle) still runs. It
// does nothing: such a kernel calls gbx_pdl() itself on every path, after
// reading only weights and before touching anything else (its activations,
// its output). TestKernelsWaitFirst allows it for the kernels it names.
__device__ __forceinline__ void gbx_pdl_weights_first() {}

// ---- shared memory and asynchronous copies (PTX) ----

// GBX_DYN_SMEM declares a kernel's dynamic shared memory (of the launch's
// size; bytes is what the emulator gives it).
#define GBX_DYN_SMEM(name, bytes) extern __shared__ __attribute__((aligned(16))) unsigned char name[]

__device__ __forceinline__ u32 gbx_smem_addr(const void* p) {
	u32 a;
	asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
	return a;
}

__device__ __forceinline__ void gbx_cp16(u32 s, const void* g) {
	asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;" ::"r"(s), "l"(g) : "memory");
}

__device__ __forceinline__ void gbx_cp4(u32 s, const void* g) {
	asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(s), "l"(g) : "memory");
}

__device__ __forceinline__ void gbx_cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

template <int N>
__device__ __forceinline__ void gbx_cp_wait() {
	asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ void gbx_lds128(u32 (&r)[4], u32 s) {
	asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];"
	             : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
	             : "r"(s)
	             : "memory");
}

__device__ __forceinline__ u32 gbx_lds32(u32 s) {
	u32 r;
	asm volatile("ld.shared.u32 %0, [%1];" : "=r"(r) : "r"(s) : "memory");
	return r;
}

__device__ __forceinline__ void gbx_ldg128(u32 (&r)[4], const void* p) {
	asm volatile("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];"
	             : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
	             : "l"(p));
}

// gbx_ex2 is ex2.approx.ftz.f32: 2^x within 2 ulp, 0 for x = −inf and
// below −126 (no subnormal results).
__device__ __forceinline__ float gbx_ex2(float x) {
	float y;
	asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
	return y;
}

__device__ __forceinline__ void gbx_sts32(u32 s, u32 v) { asm volatile("st.shared.u32 [%0], %1;" ::"r"(s), "r"(v) : "memory"); }

__device__ __forceinline__ void gbx_sts128(u32 s, u32 a, u32 b, u32 c, u32 d) {
	asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};" ::"r"(s), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}

// ---- tensor cores ----

// gbx_mma: c += a·b on the tensor cores, one mma.sync m16n8k16 with bf16
// operands (the fragments a0..a3 and b0, b1, in PTX's layout) and fp32
// accumulators.
__device__ __forceinline__ void gbx_mma(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3,
                                        u32 b0, u32 b1) {
	asm volatile(
	    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
	    "{%0,%1,%2,%3};"
	    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
	    : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// gbx_mma_f16 is gbx_mma with fp16 operands; gbx_mma_e4m3 one m16n8k32
// with E4M3 operands (each register holds 4 of them, in the same places).
__device__ __forceinline__ void gbx_mma_f16(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
	asm volatile(
	    "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
	    "{%0,%1,%2,%3};"
	    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
	    : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void gbx_mma_e4m3(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
	asm volatile(
	    "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
	    "{%0,%1,%2,%3};"
	    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
	    : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// gbx_movmatrix_t transposes an 8×8 matrix of 16-bit values held in the
// warp's registers (lane 4r + c/2 holds row r, columns c, c+1, the even one
// in the low half): afterwards each lane holds the transpose the same way.
__device__ __forceinline__ u32 gbx_movmatrix_t(u32 a) {
	u32 d;
	asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(d) : "r"(a));
	return d;
}

// gbx_ldsm_x4 loads four 8×8 matrices of 16-bit values from shared memory
// (ldmatrix.x4): lane 8i + r gives the address of row r of matrix i (16
// bytes, 16-byte aligned), and each lane 4g + t gets, in r[i], row g's
// columns 2t, 2t+1 of matrix i (the even one in the low half): an mma's
// fragment. gbx_ldsm_x4_t (.trans) gives it the transpose's: column g's
// rows 2t, 2t+1.
__device__ __forceinline__ void gbx_ldsm_x4(u32 (&r)[4], u32 s) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
	             : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
	             : "r"(s)
	             : "memory");
}
__device__ __forceinline__ void gbx_ldsm_x4_t(u32 (&r)[4], u32 s) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
	             : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
	             : "r"(s)
	             : "memory");
}

#include "reduce.cuh"

// ---- bulk copies into shared memory, completed on an mbarrier (PTX, sm_90) ----

// GBX_BULK is 1 where cp.async.bulk and mbarrier transaction counts exist
// (compute capability 9.0 and above). One thread arms a barrier with the
// bytes it expects (gbx_mbar_expect) and issues the copies that complete
// them (gbx_bulk_g2s: 16-byte aligned addresses, a multiple of 16 bytes);
// the threads that read the data wait for the barrier's phase
// (gbx_mbar_wait, parity 0, 1, 0, … as it is reused). The bytes in flight
// hold no registers.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define GBX_BULK 1
__device__ __forceinline__ void gbx_mbar_init(u32 bar, u32 count) {
	asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// gbx_mbar_init_fence makes the barriers initialised before it visible to
// the copies (the async proxy).
__device__ __forceinline__ void gbx_mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
__device__ __forceinline__ void gbx_mbar_expect(u32 bar, u32 bytes) {
	asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void gbx_bulk_g2s(u32 dst, const void* src, u32 bytes, u32 bar) {
	asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
	             "l"(src), "r"(bytes), "r"(bar)
	             : "memory");
}
__device__ __forceinline__ void gbx_mbar_wait(u32 bar, u32 parity) {
	u32 done;
	do {
		asm volatile(
		    "{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\tselp.u32 %0, 1, 0, p;\n\t}"
		    : "=r"(done)
		    : "r"(bar), "r"(parity)
		    : "memory");
	} while (!done);
}
#else
#define GBX_BULK 0
// Never called where GBX_BULK is 0 (the kernels compile their plain path
// there); declared so that the code that would call them compiles.
__device__ __forceinline__ void gbx_mbar_init(u32, u32) { __trap(); }
__device__ __forceinline__ void gbx_mbar_init_fence() { __trap(); }
__device__ __forceinline__ void gbx_mbar_expect(u32, u32) { __trap(); }
__device__ __forceinline__ void gbx_bulk_g2s(u32, const void*, u32, u32) { __trap(); }
__device__ __forceinline__ void gbx_mbar_wait(u32, u32) { __trap(); }
#endif

// ---- warpgroup MMA (PTX, sm_90a; fp4_linear.cu's wide kernel) ----

// GBX_WGMMA is 1 where wgmma exists (sm_90a: NVRTC's "a" target defines
// __CUDA_ARCH_FEAT_SM90_ALL). A warpgroup is 4 consecutive warps; each
// helper is called by all of its threads alike.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GBX_WGMMA 1
// gbx_wg_fence orders this thread's earlier register writes (A fragments,
// accumulators) before the wgmmas after it; commit closes a group of the
// wgmmas issued since the last; wait<N> returns once at most N groups are
// still running (their registers may be touched only after that).
__device__ __forceinline__ void gbx_wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void gbx_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void gbx_wg_wait() {
	asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// gbx_fence_async_smem makes this thread's shared-memory stores visible to
// the async proxy that wgmma reads its shared operand through (a barrier
// must still order them with the other threads' wgmmas).
__device__ __forceinline__ void gbx_fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
// gbx_wg_desc: the shared-memory descriptor of a K-major bf16 operand in
// the 128-byte swizzle, 8-row groups 1,024 bytes apart, from shared address
// s (its group 1,024-byte aligned, plus 32 bytes a k16 step): start
// address >> 4 (bits 0-13), leading byte offset 16 (unused by this layout;
// bits 16-29), stride byte offset 1,024 (bits 32-45), swizzle 128 B (1 in
// bits 62-63).
__device__ __forceinline__ unsigned long long gbx_wg_desc(u32 s) {
	return (unsigned long long)((s & 0x3FFFFu) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}
// gbx_wg_desc_add is descriptor d (gbx_wg_desc, gbx_wg_desc_mn) of an
// operand moved on by bytes (a multiple of 16; the address stays in shared
// memory's 2^18 bytes): its address field is bits 4-17 of the address.
__device__ __forceinline__ unsigned long long gbx_wg_desc_add(unsigned long long d, u32 bytes) { return d + (bytes >> 4); }
// gbx_wgmma<N>: c += a·b, one wgmma m64nNk16 (bf16, fp32 accumulators) with
// A from registers (each warp's 16 rows as mma.sync's m16n8k16 A fragment:
// a0 row g, a1 row g + 8, a2 and a3 the same at k + 8) and B [N][16] from
// shared memory (descriptor b); c[j] is the n8 block j as mma.sync's C.
template <int N>
__device__ __forceinline__ void gbx_wgmma(float (&c)[N / 8][4], u32 a0, u32 a1, u32 a2, u32 a3, unsigned long long b);
template <>
__device__ __forceinline__ void gbx_wgmma<16>(float (&c)[2][4], u32 a0, u32 a1, u32 a2, u32 a3, unsigned long long b) {
	asm volatile("{ .reg .pred p; setp.ne.b32 p, %13, 0; "
	             "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9,%10,%11}, %12, p, 1, 1, 0; }"
	             : "+f"(c[0][0]), "+f"(c[0][1]), "+f"(c[0][2]), "+f"(c[0][3]), "+f"(c[1][0]), "+f"(c[1][1]), "+f"(c[1][2]), "+f"(c[1][3])
	             : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b), "r"(1));
}
template <>
__device__ __forceinline__ void gbx_wgmma<32>(float (&c)[4][4], u32 a0, u32 a1, u32 a2, u32 a3, unsigned long long b) {
	asm volatile("{ .reg .pred p; setp.ne.b32 p, %21, 0; "
	             "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, {%16,%17,%18,%19}, %20, p, 1, 1, 0; }"
	             : "+f"(c[0][0]), "+f"(c[0][1]), "+f"(c[0][2]), "+f"(c[0][3]), "+f"(c[1][0]), "+f"(c[1][1]), "+f"(c[1][2]), "+f"(c[1][3]), "+f"(c[2][0]), "+f"(c[2][1]), "+f"(c[2][2]), "+f"(c[2][3]), "+f"(c[3][0]), "+f"(c[3][1]), "+f"(c[3][2]), "+f"(c[3][3])
	             : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b), "r"(1));
}
// GBX_WG_D64 and GBX_WG_C64 are an m64n64 wgmma's 32 accumulators a
// thread: the operands' names in the instruction, and c[8][4] as asm's.
#define GBX_WG_D64 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}"
#define GBX_WG_C64(c) \
	"+f"(c[0][0]), "+f"(c[0][1]), "+f"(c[0][2]), "+f"(c[0][3]), "+f"(c[1][0]), "+f"(c[1][1]), "+f"(c[1][2]), "+f"(c[1][3]), "+f"(c[2][0]), "+f"(c[2][1]), \
	    "+f"(c[2][2]), "+f"(c[2][3]), "+f"(c[3][0]), "+f"(c[3][1]), "+f"(c[3][2]), "+f"(c[3][3]), "+f"(c[4][0]), "+f"(c[4][1]), "+f"(c[4][2]), "+f"(c[4][3]), \
	    "+f"(c[5][0]), "+f"(c[5][1]), "+f"(c[5][2]), "+f"(c[5][3]), "+f"(c[6][0]), "+f"(c[6][1]), "+f"(c[6][2]), "+f"(c[6][3]), "+f"(c[7][0]), "+f"(c[7][1]), \
	    "+f"(c[7][2]), "+f"(c[7][3])
template <>
__device__ __forceinline__ void gbx_wgmma<64>(float (&c)[8][4], u32 a0, u32 a1, u32 a2, u32 a3, unsigned long long b) {
	asm volatile("{ .reg .pred p; setp.ne.b32 p, %37, 0; "
	             "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " GBX_WG_D64 ", {%32,%33,%34,%35}, %36, p, 1, 1, 0; }"
	             : GBX_WG_C64(c)
	             : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b), "r"(1));
}
// gbx_wg_desc_mn: the descriptor of an MN-major 16-bit operand in the
// 128-byte swizzle from shared address s (1,024-byte aligned, plus 2,048
// bytes a k16 step): each K index a 128-byte row of 64 consecutive M or N
// elements, 8 rows a 1,024-byte group, groups 1,024 bytes apart (stride
// byte offset), the next 64 elements of M or N lbo bytes on (leading byte
// offset).
__device__ __forceinline__ unsigned long long gbx_wg_desc_mn(u32 s, u32 lbo) {
	return (unsigned long long)((s & 0x3FFFFu) >> 4) | ((unsigned long long)((lbo >> 4) & 0x3FFFu) << 16) | (64ull << 32) |
	       (1ull << 62);
}
// gbx_wgmma64_rt<F16>: c = a·b, or c += a·b where acc is set, one wgmma
// m64n64k16 with fp32 accumulators as gbx_wgmma<64>, of F16 operands (F16)
// or BF16 ones, A from registers as gbx_wgmma's, B MN-major
// (gbx_wg_desc_mn: wgmma's transposed B).
template <bool F16>
__device__ __forceinline__ void gbx_wgmma64_rt(float (&c)[8][4], u32 a0, u32 a1, u32 a2, u32 a3, unsigned long long b, int acc) {
#define GBX_WGMMA64_RT(TY) \
	asm volatile("{ .reg .pred p; setp.ne.b32 p, %37, 0; " \
	             "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY \
	             " " GBX_WG_D64 ", {%32,%33,%34,%35}, %36, p, 1, 1, 1; }" \
	             : GBX_WG_C64(c) \
	             : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b), "r"(acc))
	if constexpr (F16) GBX_WGMMA64_RT("f16");
	else GBX_WGMMA64_RT("bf16");
#undef GBX_WGMMA64_RT
}
// gbx_wgmma64_ss<F16>: c = a·b, or c += a·b where acc is set, one wgmma
// m64n64k16 with A from shared memory too, both K-major (gbx_wg_desc).
template <bool F16>
__device__ __forceinline__ void gbx_wgmma64_ss(float (&c)[8][4], unsigned long long a, unsigned long long b, int acc) {
#define GBX_WGMMA64_SS(TY) \
	asm volatile("{ .reg .pred p; setp.ne.b32 p, %34, 0; " \
	             "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY \
	             " " GBX_WG_D64 ", %32, %33, p, 1, 1, 0, 0; }" \
	             : GBX_WG_C64(c) \
	             : "l"(a), "l"(b), "r"(acc))
	if constexpr (F16) GBX_WGMMA64_SS("f16");
	else GBX_WGMMA64_SS("bf16");
#undef GBX_WGMMA64_SS
}
#undef GBX_WG_C64
#undef GBX_WG_D64
// gbx_wg_pin_a fixes A fragments' registers at this point for the
// compiler: their writes cannot sink past the wgmma.fence after it (which
// must follow every write of a wgmma's registers).
template <int N>
__device__ __forceinline__ void gbx_wg_pin_a(u32 (&a)[N][4]) {
#pragma unroll
	for (int j = 0; j < N; ++j)
#pragma unroll
		for (int r = 0; r < 4; ++r) asm volatile("" : "+r"(a[j][r])::"memory");
}
// gbx_wg_pin fixes c's registers at this point for the compiler: their
// definitions (the zeros, copies) cannot move past it into a fence's group,
// where ptxas would serialize the wgmmas, nor their reads above the wait
// before it.
template <int NT>
__device__ __forceinline__ void gbx_wg_pin(float (&c)[NT][4]) {
#pragma unroll
	for (int j = 0; j < NT; ++j)
#pragma unroll
		for (int r = 0; r < 4; ++r) asm volatile("" : "+f"(c[j][r])::"memory");
}
#else
#define GBX_WGMMA 0
#endif

#endif
