// emu.cpp: a CUDA emulator for kernels/cuda's GPU tests on a machine
// without a GPU (README.md). One library provides the libcuda, libnvrtc and
// libcublasLt entry points gbx.h resolves; the kernels are kernels/cuda/src
// compiled by g++ against common_emu.cuh, one fiber per CUDA thread, blocks
// one after another. A kernel added to src/ must be added to
// kernels_table() below.
#include <dlfcn.h>
#include <sys/mman.h>
#include <setjmp.h>
#include <ucontext.h>
#include <chrono>
#include <functional>
#include <type_traits>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "src/common.cuh"

emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

// ---- fibers ----
// Each fiber starts with makecontext/swapcontext (once per block) and
// then switches with _setjmp/_longjmp (no system call).
enum { F_RUN, F_BLOCK, F_WARP, F_DONE };
struct Fiber {
	ucontext_t ctx;
	jmp_buf jb;
	char *stack = nullptr;
	int state = F_DONE;
};
static std::vector<Fiber> fibers;
static ucontext_t sched_ctx;
static jmp_buf sched_jb;
static int cur = -1;
static std::function<void()> *g_entry;
static uint64_t shfl[32][32];
static int or_acc;
static const size_t kStack = 256 << 10;

static void fiber_main(int i) {
	if (_setjmp(fibers[i].jb) == 0) swapcontext(&fibers[i].ctx, &sched_ctx); // parked at the start
	(*g_entry)();
	fibers[i].state = F_DONE;
	_longjmp(sched_jb, 1);
}
static void wait_state(int st) {
	fibers[cur].state = st;
	if (_setjmp(fibers[cur].jb) == 0) _longjmp(sched_jb, 1);
}
void emu_syncthreads() { wait_state(F_BLOCK); }
void emu_syncwarp() { wait_state(F_WARP); }
void emu_shfl_put(uint64_t v) { shfl[threadIdx.x >> 5][threadIdx.x & 31] = v; }
static uint32_t xchg[32][32][8];
void emu_xchg_put(const uint32_t *v, int n) { memcpy(xchg[threadIdx.x >> 5][threadIdx.x & 31], v, 4 * n); }
void emu_xchg_get(uint32_t (*all)[8]) { memcpy(all, xchg[threadIdx.x >> 5], sizeof xchg[0]); }
uint64_t emu_shfl_get(int lane) { return shfl[threadIdx.x >> 5][lane & 31]; }
int emu_syncthreads_or(int p) {
	if (p) or_acc = 1;
	emu_syncthreads();
	int r = or_acc;
	emu_syncthreads();
	if (threadIdx.x == 0) or_acc = 0;
	emu_syncthreads();
	return r;
}

static std::string emu_err;

// run_block runs n threads of the current block to completion.
static bool run_block(int n, std::function<void()> &entry) {
	if ((int)fibers.size() < n) fibers.resize(n);
	g_entry = &entry;
	for (int i = 0; i < n; i++) {
		Fiber &f = fibers[i];
		if (!f.stack) f.stack = (char *)malloc(kStack);
		getcontext(&f.ctx);
		f.ctx.uc_stack.ss_sp = f.stack;
		f.ctx.uc_stack.ss_size = kStack;
		f.ctx.uc_link = nullptr;
		makecontext(&f.ctx, (void (*)())fiber_main, 1, i);
		swapcontext(&sched_ctx, &f.ctx); // runs to its park point
		f.state = F_RUN;
	}
	for (;;) {
		for (int i = 0; i < n; i++)
			while (fibers[i].state == F_RUN) {
				cur = i;
				threadIdx.x = i;
				if (_setjmp(sched_jb) == 0) _longjmp(fibers[i].jb, 1);
			}
		bool live = false, released = false;
		for (int w = 0; w * 32 < n; w++) {
			bool any = false, all = true;
			for (int i = w * 32; i < std::min(n, w * 32 + 32); i++) {
				if (fibers[i].state == F_DONE) continue;
				any = true;
				if (fibers[i].state != F_WARP) all = false;
			}
			if (any) live = true;
			if (any && all) {
				for (int i = w * 32; i < std::min(n, w * 32 + 32); i++)
					if (fibers[i].state == F_WARP) fibers[i].state = F_RUN;
				released = true;
			}
		}
		if (!live) return true;
		if (released) continue;
		bool allBlock = true;
		for (int i = 0; i < n; i++)
			if (fibers[i].state != F_DONE && fibers[i].state != F_BLOCK) allBlock = false;
		if (!allBlock) {
			char buf[256];
			int nb = 0, nw = 0, nd = 0;
			for (int i = 0; i < n; i++) nb += fibers[i].state == F_BLOCK, nw += fibers[i].state == F_WARP, nd += fibers[i].state == F_DONE;
			snprintf(buf, sizeof buf, "deadlock in block (%u,%u,%u): %d at __syncthreads, %d at a warp barrier, %d done", blockIdx.x, blockIdx.y, blockIdx.z, nb, nw, nd);
			emu_err = buf;
			fprintf(stderr, "emu: %s\n", buf);
			abort();
		}
		// __syncthreads: the threads that exited do not count (as on the GPU).
		for (int i = 0; i < n; i++)
			if (fibers[i].state == F_BLOCK) fibers[i].state = F_RUN;
	}
}

// ---- kernels ----
#include "src/convert.cu"
#include "src/fp8.cu"
#include "src/epilogue.cu"
#include "src/act.cu"
#include "src/softmax.cu"
#include "src/norm.cu"
#include "src/bench.cu"
#include "src/lm.cu"
#include "src/attention.cu"
#include "src/sample.cu"
#include "src/gemv.cu"
#include "src/attn_mma.cu"
#include "src/attn_prefill.cu"
#include "src/fp4_linear.cu"

typedef void (*launcher)(void **);
template <class... A, size_t... I> static void call_with(void (*f)(A...), void **p, std::index_sequence<I...>) {
	f(*(std::remove_cv_t<std::remove_reference_t<A>> *)p[I]...);
}
struct Kern {
	std::string name, module;
	std::function<void(void **)> call;
	std::function<std::function<void()>(void **)> bind; // copies the arguments, for graphs
};
template <class... A> static Kern kern(const char *name, const char *mod, void (*f)(A...)) {
	return Kern{name, mod, [f](void **p) { call_with(f, p, std::index_sequence_for<A...>{}); },
	            [f](void **p) {
		            auto args = [&]<size_t... I>(std::index_sequence<I...>) {
			            return std::make_tuple(*(std::remove_cv_t<std::remove_reference_t<A>> *)p[I]...);
		            }(std::index_sequence_for<A...>{});
		            return std::function<void()>([f, args] { std::apply(f, args); });
	            }};
}
static std::vector<Kern> &kernels_table() {
	static std::vector<Kern> t = {
	    kern("gbx_to_bf16", "ops", gbx_to_bf16), kern("gbx_to_fp16", "ops", gbx_to_fp16), kern("gbx_to_tf32", "ops", gbx_to_tf32),
	    kern("gbx_quant_rows", "ops", gbx_quant_rows), kern("gbx_quant_rows_small", "ops", gbx_quant_rows_small), kern("gbx_amax", "ops", gbx_amax), kern("gbx_fp8_quant", "ops", gbx_fp8_quant),
	    kern("gbx_fp8_quant_small", "ops", gbx_fp8_quant_small), kern("gbx_scale_bias", "ops", gbx_scale_bias),
	    kern("gbx_act", "ops", gbx_act), kern("gbx_softmax", "ops", gbx_softmax), kern("gbx_layernorm", "ops", gbx_layernorm),
	    kern("gbx_rmsnorm", "ops", gbx_rmsnorm), kern("gbx_rand", "ops", gbx_rand), kern("gbx_spin", "ops", gbx_spin),
	    kern("gbx_lm_convert", "lm", gbx_lm_convert), kern("gbx_lm_fill", "lm", gbx_lm_fill), kern("gbx_lm_embed", "lm", gbx_lm_embed),
	    kern("gbx_lm_norm", "lm", gbx_lm_norm), kern("gbx_lm_norm_small", "lm", gbx_lm_norm_small),
	    kern("gbx_lm_rope", "lm", gbx_lm_rope), kern("gbx_lm_rope_small", "lm", gbx_lm_rope_small),
	    kern("gbx_lm_silu_rows", "lm", gbx_lm_silu_rows), kern("gbx_lm_silu_rows_small", "lm", gbx_lm_silu_rows_small),
	    kern("gbx_lm_quant_cols", "lm", gbx_lm_quant_cols), kern("gbx_lm_quant_cols_small", "lm", gbx_lm_quant_cols_small),
	    kern("gbx_lm_silu_row", "lm", gbx_lm_silu_row),
	    kern("gbx_attn_partial", "lm", gbx_attn_partial), kern("gbx_attn_dec64_2", "lm", gbx_attn_dec64_2),
	    kern("gbx_attn_dec64_4", "lm", gbx_attn_dec64_4), kern("gbx_attn_dec64_8", "lm", gbx_attn_dec64_8),
	    kern("gbx_attn_dec128_2", "lm", gbx_attn_dec128_2), kern("gbx_attn_dec128_4", "lm", gbx_attn_dec128_4),
	    kern("gbx_attn_dec128_8", "lm", gbx_attn_dec128_8), kern("gbx_attn_mma64", "attn_mma", gbx_attn_mma64),
	    kern("gbx_attn_mma128", "attn_mma", gbx_attn_mma128), kern("gbx_attn_mma64_e4m3", "attn_mma", gbx_attn_mma64_e4m3),
	    kern("gbx_attn_mma128_e4m3", "attn_mma", gbx_attn_mma128_e4m3),
	    kern("gbx_attn_mma64_rows", "attn_mma", gbx_attn_mma64_rows), kern("gbx_attn_mma128_rows", "attn_mma", gbx_attn_mma128_rows),
	    kern("gbx_attn_mma64_e4m3_rows", "attn_mma", gbx_attn_mma64_e4m3_rows),
	    kern("gbx_attn_mma128_e4m3_rows", "attn_mma", gbx_attn_mma128_e4m3_rows),
	    kern("gbx_attn_mma64_pf", "attn_mma", gbx_attn_mma64_pf), kern("gbx_attn_mma128_pf", "attn_mma", gbx_attn_mma128_pf),
	    kern("gbx_attn_mma64_e4m3_pf", "attn_mma", gbx_attn_mma64_e4m3_pf),
	    kern("gbx_attn_mma128_e4m3_pf", "attn_mma", gbx_attn_mma128_e4m3_pf),
	    kern("gbx_attn_mma64_e4m3_ring", "attn_mma", gbx_attn_mma64_e4m3_ring),
	    kern("gbx_attn_mma128_e4m3_ring", "attn_mma", gbx_attn_mma128_e4m3_ring), kern("gbx_attn_reduce", "lm", gbx_attn_reduce),
	    kern("gbx_lm_logprobs_part", "lm", gbx_lm_logprobs_part),
	    kern("gbx_lm_logprobs", "lm", gbx_lm_logprobs), kern("gbx_lm_sample", "lm", gbx_lm_sample),
	    kern("gbx_gemv", "gemv", gbx_gemv),
	    kern("gbx_attn_prefill64", "attn_prefill", gbx_attn_prefill64),
	    kern("gbx_attn_prefill128", "attn_prefill", gbx_attn_prefill128),
	    kern("gbx_attn_prefill64_e4m3", "attn_prefill", gbx_attn_prefill64_e4m3),
	    kern("gbx_attn_prefill128_e4m3", "attn_prefill", gbx_attn_prefill128_e4m3),
	    kern("gbx_attn_prefill64_wg", "attn_prefill", gbx_attn_prefill64_wg),
	    kern("gbx_attn_prefill128_wg", "attn_prefill", gbx_attn_prefill128_wg),
	    kern("gbx_attn_prefill64_e4m3_wg", "attn_prefill", gbx_attn_prefill64_e4m3_wg),
	    kern("gbx_attn_prefill128_e4m3_wg", "attn_prefill", gbx_attn_prefill128_e4m3_wg),
	    kern("gbx_nvfp4_gemm", "fp4_linear", gbx_nvfp4_gemm), kern("gbx_nvfp4_gemm_tiled", "fp4_linear", gbx_nvfp4_gemm_tiled),
	    kern("gbx_nvfp4_gemm_wide", "fp4_linear", gbx_nvfp4_gemm_wide), kern("gbx_nvfp4_wide_sum", "fp4_linear", gbx_nvfp4_wide_sum),
	};
	return t;
}

// ---- stream capture ----
typedef std::vector<std::function<void()>> Ops;
static Ops *capture;
extern "C" int emu_capture_add(std::function<void()> *op) {
	if (!capture) return 0;
	capture->push_back(*op);
	return 1;
}

// ---- driver ----
typedef int CUresult;
typedef unsigned long long CUdeviceptr;
static std::map<uint64_t, size_t> allocs;
static size_t allocated;
static const size_t kTotal = 141ull << 30;
static long launches;

extern "C" {
CUresult cuInit(unsigned) { return 0; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(int *d, int i) { *d = i; return i == 0 ? 0 : 101; }
CUresult cuDeviceGetName(char *s, int n, int) { snprintf(s, n, "Gearbox CUDA emulator"); return 0; }
CUresult cuDeviceGetAttribute(int *v, int a, int) {
	switch (a) {
	case 16: *v = 2; return 0; // SMs: few blocks for grid-stride kernels
	case 75: *v = 9; return 0;
	case 76: *v = 0; return 0;
	}
	*v = 0;
	return 0;
}
CUresult cuDeviceTotalMem_v2(size_t *b, int) { *b = kTotal; return 0; }
// A fixed UUID, the same from both calls (a whole GPU, not a MIG instance):
// GPU-9e3a0000-0000-4000-8000-00000000e3a0.
static const unsigned char kUUID[16] = {0x9e, 0x3a, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0xe3, 0xa0};
CUresult cuDeviceGetUuid(unsigned char *u, int) { memcpy(u, kUUID, 16); return 0; }
CUresult cuDeviceGetUuid_v2(unsigned char *u, int) { memcpy(u, kUUID, 16); return 0; }
CUresult cuDevicePrimaryCtxRetain(void **c, int) { static char ctx[64]; *c = ctx; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int) { return 0; }
CUresult cuCtxSetCurrent(void *) { return 0; }
CUresult cuCtxSynchronize(void) { return 0; }
CUresult cuMemGetInfo_v2(size_t *f, size_t *t) { *f = kTotal - allocated; *t = kTotal; return 0; }
// A device allocation (rounded up to 256 bytes, as the driver aligns) ends
// where a page no access is allowed to begins: a kernel that reads or
// writes past the end of a buffer faults (SIGSEGV, the Go stack naming the
// launch) instead of reading its neighbour's bytes.
static const size_t kPage = 4096;
static size_t guarded_span(size_t r) { return (r + kPage - 1) / kPage * kPage + kPage; }
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
	if (n > (64ull << 30)) return 2;
	size_t r = (n + 255) & ~size_t(255), span = guarded_span(r);
	char *base = (char *)mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) return 2;
	if (mprotect(base + span - kPage, kPage, PROT_NONE) != 0) {
		munmap(base, span);
		return 2;
	}
	char *q = base + span - kPage - r;
	memset(q, 0xcd, r); // garbage, as fresh device memory holds
	*p = (CUdeviceptr)q;
	allocs[*p] = r;
	allocated += r;
	return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
	auto it = allocs.find(p);
	if (it == allocs.end()) return 1;
	const size_t r = it->second, span = guarded_span(r);
	allocated -= r;
	allocs.erase(it);
	munmap((char *)p + r + kPage - span, span);
	return 0;
}
CUresult cuMemAllocHost_v2(void **p, size_t n) { *p = malloc(n); return *p ? 0 : 2; }
CUresult cuMemFreeHost(void *p) { free(p); return 0; }
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) {
	if (capture) return 900; // CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
	memcpy((void *)d, s, n);
	return 0;
}
CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) {
	if (capture) return 900;
	memcpy(d, (void *)s, n);
	return 0;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, void *) {
	if (capture) return capture->push_back([=] { memcpy((void *)d, s, n); }), 0;
	memcpy((void *)d, s, n);
	return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, void *) {
	if (capture) return capture->push_back([=] { memcpy(d, (void *)s, n); }), 0;
	memcpy(d, (void *)s, n);
	return 0;
}
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned v, size_t n, void *) {
	if (capture) return capture->push_back([=] { for (size_t i = 0; i < n; i++) ((unsigned *)d)[i] = v; }), 0;
	for (size_t i = 0; i < n; i++) ((unsigned *)d)[i] = v;
	return 0;
}
struct Module { std::string name; };
CUresult cuModuleLoadData(void **m, const void *img) {
	const char *s = (const char *)img;
	if (strncmp(s, "EMU:", 4) != 0) return 200; // CUDA_ERROR_INVALID_IMAGE
	*m = new Module{s + 4};
	return 0;
}
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
	for (auto &k : kernels_table())
		if (k.name == name && k.module == ((Module *)m)->name) {
			*f = &k;
			return 0;
		}
	return 500; // CUDA_ERROR_NOT_FOUND
}
CUresult cuModuleUnload(void *m) { delete (Module *)m; return 0; }
CUresult cuFuncSetAttribute(void *, int, int) { return 0; }
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                        void *, void **params, void **) {
	Kern *k = (Kern *)f;
	if (by != 1 || bz != 1 || bx == 0 || bx > 1024 || gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535) {
		fprintf(stderr, "emu: %s: bad launch geometry grid (%u,%u,%u) block (%u,%u,%u)\n", k->name.c_str(), gx, gy, gz, bx, by, bz);
		return 1;
	}
	if (capture) {
		auto body = k->bind(params);
		capture->push_back([=] {
			blockDim = {bx, 1, 1};
			gridDim = {gx, gy, gz};
			std::function<void()> entry = body;
			for (unsigned z = 0; z < gz; z++)
				for (unsigned y = 0; y < gy; y++)
					for (unsigned x = 0; x < gx; x++) {
						blockIdx = {x, y, z};
						run_block(bx, entry);
					}
		});
		return 0;
	}
	launches++;
	blockDim = {bx, 1, 1};
	gridDim = {gx, gy, gz};
	std::function<void()> entry = [&] { k->call(params); };
	for (unsigned z = 0; z < gz; z++)
		for (unsigned y = 0; y < gy; y++)
			for (unsigned x = 0; x < gx; x++) {
				blockIdx = {x, y, z};
				run_block(bx, entry);
			}
	return 0;
}
CUresult cuStreamCreate(void **s, unsigned) { *s = malloc(64); return 0; }
CUresult cuStreamDestroy_v2(void *s) { free(s); return 0; }
CUresult cuStreamSynchronize(void *) { return capture ? 901 : 0; } // CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
struct Event { double t; };
static double now_ms() { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
CUresult cuEventCreate(void **e, unsigned) { *e = new Event{0}; return 0; }
CUresult cuEventRecord(void *e, void *) { ((Event *)e)->t = now_ms(); return 0; }
CUresult cuEventSynchronize(void *) { return 0; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { *ms = (float)(((Event *)b)->t - ((Event *)a)->t); return 0; }
CUresult cuEventDestroy_v2(void *e) { delete (Event *)e; return 0; }
CUresult cuStreamBeginCapture_v2(void *, int) {
	if (capture) return 900;
	capture = new Ops;
	return 0;
}
CUresult cuStreamEndCapture(void *, void **g) {
	if (!capture) return 901;
	*g = capture;
	capture = nullptr;
	return 0;
}
CUresult cuGraphInstantiateWithFlags(void **e, void *g, unsigned long long) { *e = new Ops(*(Ops *)g); return 0; }
CUresult cuGraphLaunch(void *e, void *) {
	if (capture) return 900;
	for (auto &op : *(Ops *)e) op();
	return 0;
}
CUresult cuGraphExecDestroy(void *e) { delete (Ops *)e; return 0; }
CUresult cuGraphDestroy(void *g) { delete (Ops *)g; return 0; }
CUresult cuGetErrorName(CUresult r, const char **s) { *s = r == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_EMULATOR"; return 0; }
CUresult cuGetErrorString(CUresult r, const char **s) { *s = r == 2 ? "out of memory" : "emulator error"; return 0; }

// ---- NVRTC ----
struct Prog { std::string name, cubin; };
int nvrtcVersion(int *a, int *b) { *a = 13; *b = 0; return 0; }
int nvrtcCreateProgram(void **p, const char *, const char *name, int, const char *const *, const char *const *) {
	*p = new Prog{name, std::string("EMU:") + name};
	return 0;
}
int nvrtcCompileProgram(void *p, int, const char *const *) {
	return 0;
}
int nvrtcGetProgramLogSize(void *p, size_t *n) { *n = 32; return 0; }
int nvrtcGetProgramLog(void *p, char *s) { snprintf(s, 32, "emulator"); return 0; }
int nvrtcGetCUBINSize(void *p, size_t *n) { *n = ((Prog *)p)->cubin.size() + 1; return 0; }
int nvrtcGetCUBIN(void *p, char *s) { memcpy(s, ((Prog *)p)->cubin.c_str(), ((Prog *)p)->cubin.size() + 1); return 0; }
int nvrtcDestroyProgram(void **p) { delete (Prog *)*p; return 0; }
const char *nvrtcGetErrorString(int r) { return r == 6 ? "NVRTC_ERROR_COMPILATION (emulator)" : "nvrtc emulator error"; }

// ---- cuBLASLt ----
struct Desc {
	int compute, scaleType, transa = 0, transb = 0, epilogue = 1, biasType = -1, aMode = 0, bMode = 0;
	uint64_t bias = 0, aScale = 0, bScale = 0;
};
struct Layout { int type; uint64_t rows, cols; int64_t ld; };
size_t cublasLtGetVersion(void) { return 130000; }
int cublasLtCreate(void **h) { *h = malloc(64); return 0; }
int cublasLtDestroy(void *h) { free(h); return 0; }
int cublasLtMatmulDescCreate(void **d, int c, int s) { *d = new Desc{c, s}; return 0; }
int cublasLtMatmulDescDestroy(void *d) { delete (Desc *)d; return 0; }
int cublasLtMatmulDescSetAttribute(void *dv, int a, const void *v, size_t n) {
	Desc *d = (Desc *)dv;
	auto i32 = [&] { int x = 0; memcpy(&x, v, std::min(n, sizeof x)); return x; };
	auto u64 = [&] { uint64_t x = 0; memcpy(&x, v, std::min(n, sizeof x)); return x; };
	switch (a) {
	case 3: d->transa = i32(); return 0;
	case 4: d->transb = i32(); return 0;
	case 7: d->epilogue = i32(); return 0;
	case 8: d->bias = u64(); return 0;
	case 17: d->aScale = u64(); return 0;
	case 18: d->bScale = u64(); return 0;
	case 25: return 0;
	case 26: d->biasType = i32(); return 0;
	case 31: d->aMode = i32(); return 0;
	case 32: d->bMode = i32(); return 0;
	}
	return 15;
}
int cublasLtMatrixLayoutCreate(void **l, int t, uint64_t r, uint64_t c, int64_t ld) { *l = new Layout{t, r, c, ld}; return 0; }
int cublasLtMatrixLayoutDestroy(void *l) { delete (Layout *)l; return 0; }
int cublasLtMatmulPreferenceCreate(void **p) { *p = malloc(64); return 0; }
int cublasLtMatmulPreferenceSetAttribute(void *, int, const void *, size_t) { return 0; }
int cublasLtMatmulPreferenceDestroy(void *p) { free(p); return 0; }
struct Heur { uint64_t algo[8]; size_t ws; int state; float waves; int reserved[4]; };
// The algorithms the heuristic returns are made-up bytes that, like the
// real ones, follow the batch rows (B's columns): a tile id by rows and,
// for few rows, split-K over 4 with a reduction scheme; its second result
// is another tile. cublasLtMatmul ignores them (it is one loop).
enum { EMU_ALGO_TILE = 0, EMU_ALGO_SPLITK = 2, EMU_ALGO_REDUCTION = 3 };
int cublasLtMatmulAlgoGetHeuristic(void *, void *dv, void *av, void *bv, void *, void *, void *, int want, Heur *res, int *got) {
	Desc *d = (Desc *)dv;
	Layout *a = (Layout *)av, *b = (Layout *)bv;
	*got = 0;
	if (d->transa != 1 || d->transb != 0) return 15;
	bool fp8 = a->type == 28;
	if (fp8 && (a->rows % 16 || a->cols % 16)) return 0; // no algorithm
	if (!fp8 && (d->aMode || d->bMode)) return 0;
	if (a->type != b->type) return 0;
	uint64_t rows = b->cols;
	for (int i = 0; i < want && i < 2; i++) {
		memset(&res[i], 0, sizeof res[i]);
		res[i].algo[EMU_ALGO_TILE] = (rows <= 16 ? 1 : rows <= 64 ? 2 : 3) + 10 * i;
		res[i].algo[EMU_ALGO_SPLITK] = rows <= 16 ? 4 : 1;
		res[i].algo[EMU_ALGO_REDUCTION] = rows <= 16 ? 1 : 0;
		res[i].waves = 1;
		*got = i + 1;
	}
	return 0;
}
int cublasLtMatmulAlgoConfigSetAttribute(uint64_t *algo, int attr, const void *v, size_t n) {
	uint32_t x = 0;
	memcpy(&x, v, std::min(n, sizeof x));
	switch (attr) {
	case 2: algo[EMU_ALGO_SPLITK] = x; return 0;
	case 3: algo[EMU_ALGO_REDUCTION] = x; return 0;
	}
	return 7; // CUBLAS_STATUS_INVALID_VALUE
}
int cublasLtMatmulAlgoConfigGetAttribute(const uint64_t *algo, int attr, void *v, size_t n, size_t *got) {
	uint64_t x = 0;
	switch (attr) {
	case 1: x = algo[EMU_ALGO_TILE]; break;
	case 2: x = algo[EMU_ALGO_SPLITK]; break;
	case 3: x = algo[EMU_ALGO_REDUCTION]; break;
	default:
		if (attr < 0 || attr > 8) return 7; // CUBLAS_STATUS_INVALID_VALUE
	}
	if (n == 0) { // the size the attribute needs
		*got = sizeof(uint32_t);
		return 0;
	}
	if (n != sizeof(uint32_t)) return 7;
	memcpy(v, &x, n);
	*got = n;
	return 0;
}
int cublasLtMatmulAlgoCheck(void *, void *dv, void *av, void *bv, void *, void *, const uint64_t *algo, Heur *res) {
	Desc *d = (Desc *)dv;
	Layout *a = (Layout *)av, *b = (Layout *)bv;
	if (d->transa != 1 || d->transb != 0 || a->type != b->type) return 15;
	memset(res, 0, sizeof *res);
	memcpy(res->algo, algo, sizeof res->algo);
	res->waves = 1;
	return 0;
}
static float ld_elem(int type, const void *p, uint64_t i) {
	switch (type) {
	case 0: return ((const float *)p)[i];
	case 14: return bf2f(((const u16 *)p)[i]);
	case 2: return h2f(((const u16 *)p)[i]);
	case 28: return emu_e4m3_value(((const u8 *)p)[i]);
	}
	fprintf(stderr, "emu: matmul type %d\n", type);
	abort();
}
static int matmul(Desc dd, float al, const void *A, Layout la, const void *B, Layout lb, void *D, Layout lo);
// capture_add is the driver's emu_capture_add (this library is loaded a
// second time as cuBLASLt: its own statics are not the driver's).
static int capture_add(std::function<void()> op) {
	static int (*add)(std::function<void()> *);
	if (!add) {
		std::string path = std::string(getenv("GEARBOX_CUDA_LIB_DIR") ? getenv("GEARBOX_CUDA_LIB_DIR") : ".") + "/libcuda.so.1";
		void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
		if (h) add = (int (*)(std::function<void()> *))dlsym(h, "emu_capture_add");
		if (!add) return 0;
	}
	return add(&op);
}
int cublasLtMatmul(void *, void *dv, const void *alpha, const void *A, void *av, const void *B, void *bv, const void *, const void *,
                   void *, void *D, void *dl, const void *, void *, size_t, void *) {
	Desc dd = *(Desc *)dv;
	Layout la = *(Layout *)av, lb = *(Layout *)bv, lo = *(Layout *)dl;
	float al = *(const float *)alpha;
	if (capture_add([=] { matmul(dd, al, A, la, B, lb, D, lo); })) return 0;
	return matmul(dd, al, A, la, B, lb, D, lo);
}
static int matmul(Desc dd, float al, const void *A, Layout la, const void *B, Layout lb, void *D, Layout lo) {
	Desc *d = &dd;
	Layout *a = &la, *b = &lb, *o = &lo;
	uint64_t m = o->rows, n = o->cols, k = a->rows;
	if (a->cols != m || b->rows != k || b->cols != n) {
		fprintf(stderr, "emu: matmul shapes A %llux%llu B %llux%llu D %llux%llu\n", (unsigned long long)a->rows, (unsigned long long)a->cols,
		        (unsigned long long)b->rows, (unsigned long long)b->cols, (unsigned long long)m, (unsigned long long)n);
		return 7;
	}
	bool tf32 = d->compute == 77;
	for (uint64_t j = 0; j < n; j++)
		for (uint64_t i = 0; i < m; i++) {
			float acc = 0;
			for (uint64_t p = 0; p < k; p++) {
				float x = ld_elem(a->type, A, p + i * a->ld), y = ld_elem(b->type, B, p + j * b->ld);
				if (tf32) x = f2tf32(x), y = f2tf32(y);
				volatile float prod = x * y;
				acc += prod;
			}
			float v = acc;
			if (d->aScale) v *= d->aMode == 3 ? ((const float *)d->aScale)[i] : *(const float *)d->aScale;
			if (d->bScale) v *= d->bMode == 3 ? ((const float *)d->bScale)[j] : *(const float *)d->bScale;
			v *= al;
			if ((d->epilogue == 4 || d->epilogue == 6) && d->bias) v += ((const float *)d->bias)[i];
			if (d->epilogue == 2 || d->epilogue == 6) v = v != v ? v : (v > 0 ? v : 0);
			((float *)D)[i + j * o->ld] = v;
		}
	return 0;
}
}
