// gbx.h: our own declarations of the CUDA driver, NVRTC and cuBLASLt entry
// points Gearbox uses, resolved at run time with dlopen/dlsym. No NVIDIA
// header or library is needed to build; the constants passed to them are
// named in src/abi.h. Included from cgo.go only.
#ifndef GBX_H
#define GBX_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/abi.h"

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream, *CUevent, *CUgraph, *CUgraphExec;
typedef unsigned long long CUdeviceptr;

// cuLaunchKernelEx's configuration (CUDA 12.0), laid out as cuda.h lays
// it out: an attribute is its id, padding to 8 bytes, and a 64-byte value.
typedef struct {
	int id;
	char pad[4];
	union {
		char bytes[64];
		int programmaticStreamSerializationAllowed;
	} value;
} CUlaunchAttribute;
typedef struct {
	unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
	CUstream hStream;
	CUlaunchAttribute *attrs;
	unsigned numAttrs;
} CUlaunchConfig;

typedef int nvrtcResult;
typedef void *nvrtcProgram;

typedef void *cublasLtHandle_t, *cublasLtMatmulDesc_t, *cublasLtMatrixLayout_t, *cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
	cublasLtMatmulAlgo_t algo;
	size_t workspaceSize;
	int state;
	float wavesCount;
	int reserved[4];
} cublasLtMatmulHeuristicResult_t; // 96 bytes

// The function tables, filled by gbx_load.
typedef struct {
	CUresult (*cuInit)(unsigned);
	CUresult (*cuDriverGetVersion)(int *);
	CUresult (*cuDeviceGetCount)(int *);
	CUresult (*cuDeviceGet)(CUdevice *, int);
	CUresult (*cuDeviceGetName)(char *, int, CUdevice);
	CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
	CUresult (*cuDeviceTotalMem_v2)(size_t *, CUdevice);
	// optional: NULL when the driver lacks them (v2 since CUDA 11.4)
	CUresult (*cuDeviceGetUuid)(unsigned char *, CUdevice);
	CUresult (*cuDeviceGetUuid_v2)(unsigned char *, CUdevice);
	CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
	CUresult (*cuDevicePrimaryCtxRelease_v2)(CUdevice);
	CUresult (*cuCtxSetCurrent)(CUcontext);
	CUresult (*cuCtxSynchronize)(void);
	CUresult (*cuMemGetInfo_v2)(size_t *, size_t *);
	CUresult (*cuMemAlloc_v2)(CUdeviceptr *, size_t);
	CUresult (*cuMemFree_v2)(CUdeviceptr);
	CUresult (*cuMemAllocHost_v2)(void **, size_t);
	CUresult (*cuMemFreeHost)(void *);
	CUresult (*cuMemcpyHtoD_v2)(CUdeviceptr, const void *, size_t);
	CUresult (*cuMemcpyDtoH_v2)(void *, CUdeviceptr, size_t);
	CUresult (*cuMemcpyHtoDAsync_v2)(CUdeviceptr, const void *, size_t, CUstream);
	CUresult (*cuMemcpyDtoHAsync_v2)(void *, CUdeviceptr, size_t, CUstream);
	CUresult (*cuMemsetD32Async)(CUdeviceptr, unsigned, size_t, CUstream);
	CUresult (*cuModuleLoadData)(CUmodule *, const void *);
	CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*cuModuleUnload)(CUmodule);
	CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
	CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
	                           unsigned, CUstream, void **, void **);
	// optional: NULL when the driver lacks it (CUDA 12.0)
	CUresult (*cuLaunchKernelEx)(const CUlaunchConfig *, CUfunction, void **, void **);
	CUresult (*cuStreamCreate)(CUstream *, unsigned);
	CUresult (*cuStreamDestroy_v2)(CUstream);
	CUresult (*cuStreamSynchronize)(CUstream);
	CUresult (*cuEventCreate)(CUevent *, unsigned);
	CUresult (*cuEventRecord)(CUevent, CUstream);
	CUresult (*cuEventSynchronize)(CUevent);
	CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
	CUresult (*cuEventDestroy_v2)(CUevent);
	CUresult (*cuGetErrorName)(CUresult, const char **);
	CUresult (*cuGetErrorString)(CUresult, const char **);
	// CUDA graphs (optional: NULL when the driver lacks them)
	CUresult (*cuStreamBeginCapture_v2)(CUstream, int);
	CUresult (*cuStreamEndCapture)(CUstream, CUgraph *);
	CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph, unsigned long long);
	CUresult (*cuGraphLaunch)(CUgraphExec, CUstream);
	CUresult (*cuGraphExecDestroy)(CUgraphExec);
	CUresult (*cuGraphDestroy)(CUgraph);

	nvrtcResult (*nvrtcVersion)(int *, int *);
	nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
	                                  const char *const *);
	nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram, int, const char *const *);
	nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t *);
	nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram, char *);
	nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram, size_t *);
	nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram, char *);
	nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram *);
	const char *(*nvrtcGetErrorString)(nvrtcResult);

	int (*cublasLtCreate)(cublasLtHandle_t *);
	int (*cublasLtDestroy)(cublasLtHandle_t);
	size_t (*cublasLtGetVersion)(void);
	int (*cublasLtMatmulDescCreate)(cublasLtMatmulDesc_t *, int, int);
	int (*cublasLtMatmulDescSetAttribute)(cublasLtMatmulDesc_t, int, const void *, size_t);
	int (*cublasLtMatmulDescDestroy)(cublasLtMatmulDesc_t);
	int (*cublasLtMatrixLayoutCreate)(cublasLtMatrixLayout_t *, int, uint64_t, uint64_t, int64_t);
	int (*cublasLtMatrixLayoutDestroy)(cublasLtMatrixLayout_t);
	int (*cublasLtMatmulPreferenceCreate)(cublasLtMatmulPreference_t *);
	int (*cublasLtMatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t, int, const void *, size_t);
	int (*cublasLtMatmulPreferenceDestroy)(cublasLtMatmulPreference_t);
	int (*cublasLtMatmulAlgoGetHeuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
	                                      cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
	                                      cublasLtMatmulPreference_t, int, cublasLtMatmulHeuristicResult_t *, int *);
	int (*cublasLtMatmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *, const void *, cublasLtMatrixLayout_t,
	                      const void *, cublasLtMatrixLayout_t, const void *, const void *, cublasLtMatrixLayout_t,
	                      void *, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t *, void *, size_t, CUstream);
	int (*cublasLtMatmulAlgoConfigSetAttribute)(cublasLtMatmulAlgo_t *, int, const void *, size_t);
	int (*cublasLtMatmulAlgoConfigGetAttribute)(const cublasLtMatmulAlgo_t *, int, void *, size_t, size_t *);
	int (*cublasLtMatmulAlgoCheck)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
	                               cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t *,
	                               cublasLtMatmulHeuristicResult_t *);
} gbx_api;

static gbx_api gbx;
static void *gbx_libs[4];

// gbx_open tries dir/name (dir non-empty) or name alone; flags for dlopen.
static void *gbx_open(const char *dir, const char *name, int flags, char *err, size_t errlen) {
	char path[4096];
	if (dir && dir[0]) {
		snprintf(path, sizeof path, "%s/%s", dir, name);
	} else {
		snprintf(path, sizeof path, "%s", name);
	}
	void *h = dlopen(path, flags);
	if (!h) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
	}
	return h;
}

#define GBX_SYM(lib, name)                                                           \
	do {                                                                             \
		*(void **)(&gbx.name) = dlsym(lib, #name);                                   \
		if (!gbx.name) {                                                             \
			snprintf(err, errlen, "symbol %s not found", #name);                     \
			return -1;                                                               \
		}                                                                            \
	} while (0)

// gbx_load_driver resolves libcuda's symbols from the library handle h.
static int gbx_load_driver(void *h, char *err, size_t errlen) {
	gbx_libs[0] = h;
	GBX_SYM(h, cuInit);
	GBX_SYM(h, cuDriverGetVersion);
	GBX_SYM(h, cuDeviceGetCount);
	GBX_SYM(h, cuDeviceGet);
	GBX_SYM(h, cuDeviceGetName);
	GBX_SYM(h, cuDeviceGetAttribute);
	GBX_SYM(h, cuDeviceTotalMem_v2);
	*(void **)(&gbx.cuDeviceGetUuid) = dlsym(h, "cuDeviceGetUuid");
	*(void **)(&gbx.cuDeviceGetUuid_v2) = dlsym(h, "cuDeviceGetUuid_v2");
	GBX_SYM(h, cuDevicePrimaryCtxRetain);
	GBX_SYM(h, cuDevicePrimaryCtxRelease_v2);
	GBX_SYM(h, cuCtxSetCurrent);
	GBX_SYM(h, cuCtxSynchronize);
	GBX_SYM(h, cuMemGetInfo_v2);
	GBX_SYM(h, cuMemAlloc_v2);
	GBX_SYM(h, cuMemFree_v2);
	GBX_SYM(h, cuMemAllocHost_v2);
	GBX_SYM(h, cuMemFreeHost);
	GBX_SYM(h, cuMemcpyHtoD_v2);
	GBX_SYM(h, cuMemcpyDtoH_v2);
	GBX_SYM(h, cuMemcpyHtoDAsync_v2);
	GBX_SYM(h, cuMemcpyDtoHAsync_v2);
	GBX_SYM(h, cuMemsetD32Async);
	GBX_SYM(h, cuModuleLoadData);
	GBX_SYM(h, cuModuleGetFunction);
	GBX_SYM(h, cuModuleUnload);
	GBX_SYM(h, cuFuncSetAttribute);
	GBX_SYM(h, cuLaunchKernel);
	*(void **)(&gbx.cuLaunchKernelEx) = dlsym(h, "cuLaunchKernelEx");
	GBX_SYM(h, cuStreamCreate);
	GBX_SYM(h, cuStreamDestroy_v2);
	GBX_SYM(h, cuStreamSynchronize);
	GBX_SYM(h, cuEventCreate);
	GBX_SYM(h, cuEventRecord);
	GBX_SYM(h, cuEventSynchronize);
	GBX_SYM(h, cuEventDestroy_v2);
	GBX_SYM(h, cuGetErrorName);
	GBX_SYM(h, cuGetErrorString);
	*(void **)(&gbx.cuStreamBeginCapture_v2) = dlsym(h, "cuStreamBeginCapture_v2");
	*(void **)(&gbx.cuStreamEndCapture) = dlsym(h, "cuStreamEndCapture");
	*(void **)(&gbx.cuGraphInstantiateWithFlags) = dlsym(h, "cuGraphInstantiateWithFlags");
	*(void **)(&gbx.cuGraphLaunch) = dlsym(h, "cuGraphLaunch");
	*(void **)(&gbx.cuGraphExecDestroy) = dlsym(h, "cuGraphExecDestroy");
	*(void **)(&gbx.cuGraphDestroy) = dlsym(h, "cuGraphDestroy");
	*(void **)(&gbx.cuEventElapsedTime) = dlsym(h, "cuEventElapsedTime_v2");
	if (!gbx.cuEventElapsedTime) {
		GBX_SYM(h, cuEventElapsedTime);
	}
	return 0;
}

static int gbx_load_nvrtc(void *h, char *err, size_t errlen) {
	gbx_libs[1] = h;
	GBX_SYM(h, nvrtcVersion);
	GBX_SYM(h, nvrtcCreateProgram);
	GBX_SYM(h, nvrtcCompileProgram);
	GBX_SYM(h, nvrtcGetProgramLogSize);
	GBX_SYM(h, nvrtcGetProgramLog);
	GBX_SYM(h, nvrtcGetCUBINSize);
	GBX_SYM(h, nvrtcGetCUBIN);
	GBX_SYM(h, nvrtcDestroyProgram);
	GBX_SYM(h, nvrtcGetErrorString);
	return 0;
}

static int gbx_load_cublaslt(void *h, char *err, size_t errlen) {
	gbx_libs[2] = h;
	GBX_SYM(h, cublasLtCreate);
	GBX_SYM(h, cublasLtDestroy);
	GBX_SYM(h, cublasLtGetVersion);
	GBX_SYM(h, cublasLtMatmulDescCreate);
	GBX_SYM(h, cublasLtMatmulDescSetAttribute);
	GBX_SYM(h, cublasLtMatmulDescDestroy);
	GBX_SYM(h, cublasLtMatrixLayoutCreate);
	GBX_SYM(h, cublasLtMatrixLayoutDestroy);
	GBX_SYM(h, cublasLtMatmulPreferenceCreate);
	GBX_SYM(h, cublasLtMatmulPreferenceSetAttribute);
	GBX_SYM(h, cublasLtMatmulPreferenceDestroy);
	GBX_SYM(h, cublasLtMatmulAlgoGetHeuristic);
	GBX_SYM(h, cublasLtMatmul);
	GBX_SYM(h, cublasLtMatmulAlgoConfigSetAttribute);
	GBX_SYM(h, cublasLtMatmulAlgoConfigGetAttribute);
	GBX_SYM(h, cublasLtMatmulAlgoCheck);
	return 0;
}

// ---- thin wrappers cgo calls (function pointers cannot be called from Go) ----

static const char *gbx_cu_error(CUresult r) {
	const char *s = NULL;
	if (gbx.cuGetErrorString && gbx.cuGetErrorString(r, &s) == 0 && s) return s;
	return "unknown CUDA error";
}
static const char *gbx_cu_error_name(CUresult r) {
	const char *s = NULL;
	if (gbx.cuGetErrorName && gbx.cuGetErrorName(r, &s) == 0 && s) return s;
	return "CUDA_ERROR_UNKNOWN";
}

static CUresult gbx_init(void) { return gbx.cuInit(0); }
static CUresult gbx_driver_version(int *v) { return gbx.cuDriverGetVersion(v); }
static CUresult gbx_device_count(int *n) { return gbx.cuDeviceGetCount(n); }
static CUresult gbx_device_get(CUdevice *d, int i) { return gbx.cuDeviceGet(d, i); }
static CUresult gbx_device_name(char *s, int n, CUdevice d) { return gbx.cuDeviceGetName(s, n, d); }
static CUresult gbx_device_attr(int *v, int a, CUdevice d) { return gbx.cuDeviceGetAttribute(v, a, d); }
static CUresult gbx_device_mem(size_t *b, CUdevice d) { return gbx.cuDeviceTotalMem_v2(b, d); }
// gbx_device_uuid writes d's 16-byte UUID: cuDeviceGetUuid_v2's (a MIG
// instance's own) when v2 is set, else cuDeviceGetUuid's (the whole GPU's).
// A driver without the function answers CUDA_ERROR_NOT_SUPPORTED.
static CUresult gbx_device_uuid(unsigned char *u, int v2, CUdevice d) {
	CUresult (*f)(unsigned char *, CUdevice) = v2 ? gbx.cuDeviceGetUuid_v2 : gbx.cuDeviceGetUuid;
	if (!f) return GBX_CUDA_ERROR_NOT_SUPPORTED;
	return f(u, d);
}
static CUresult gbx_ctx_retain(CUcontext *c, CUdevice d) { return gbx.cuDevicePrimaryCtxRetain(c, d); }
static CUresult gbx_ctx_release(CUdevice d) { return gbx.cuDevicePrimaryCtxRelease_v2(d); }
static CUresult gbx_ctx_set(CUcontext c) { return gbx.cuCtxSetCurrent(c); }
static CUresult gbx_ctx_sync(void) { return gbx.cuCtxSynchronize(); }
static CUresult gbx_mem_info(size_t *f, size_t *t) { return gbx.cuMemGetInfo_v2(f, t); }
static CUresult gbx_malloc(CUdeviceptr *p, size_t n) { return gbx.cuMemAlloc_v2(p, n); }
static CUresult gbx_free(CUdeviceptr p) { return gbx.cuMemFree_v2(p); }
static CUresult gbx_malloc_host(void **p, size_t n) { return gbx.cuMemAllocHost_v2(p, n); }
static CUresult gbx_free_host(void *p) { return gbx.cuMemFreeHost(p); }
static CUresult gbx_htod(CUdeviceptr d, const void *s, size_t n) { return gbx.cuMemcpyHtoD_v2(d, s, n); }
static CUresult gbx_dtoh(void *d, CUdeviceptr s, size_t n) { return gbx.cuMemcpyDtoH_v2(d, s, n); }
static CUresult gbx_htod_async(CUdeviceptr d, const void *s, size_t n, CUstream st) {
	return gbx.cuMemcpyHtoDAsync_v2(d, s, n, st);
}
static CUresult gbx_dtoh_async(void *d, CUdeviceptr s, size_t n, CUstream st) {
	return gbx.cuMemcpyDtoHAsync_v2(d, s, n, st);
}
static CUresult gbx_memset32_async(CUdeviceptr d, unsigned v, size_t n, CUstream st) {
	return gbx.cuMemsetD32Async(d, v, n, st);
}
static CUresult gbx_module_load(CUmodule *m, const void *img) { return gbx.cuModuleLoadData(m, img); }
static CUresult gbx_module_func(CUfunction *f, CUmodule m, const char *name) {
	return gbx.cuModuleGetFunction(f, m, name);
}
static CUresult gbx_module_unload(CUmodule m) { return gbx.cuModuleUnload(m); }
// gbx_func_max_dynamic_shared lets f use up to n bytes of dynamic shared memory.
static CUresult gbx_func_max_dynamic_shared(CUfunction f, int n) {
	return gbx.cuFuncSetAttribute(f, GBX_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, n);
}
static CUresult gbx_stream_create(CUstream *s) { return gbx.cuStreamCreate(s, GBX_CU_STREAM_NON_BLOCKING); }
static CUresult gbx_stream_destroy(CUstream s) { return gbx.cuStreamDestroy_v2(s); }
static CUresult gbx_stream_sync(CUstream s) { return gbx.cuStreamSynchronize(s); }
static CUresult gbx_event_create(CUevent *e) { return gbx.cuEventCreate(e, 0); }
static CUresult gbx_event_record(CUevent e, CUstream s) { return gbx.cuEventRecord(e, s); }
static CUresult gbx_event_sync(CUevent e) { return gbx.cuEventSynchronize(e); }
static CUresult gbx_event_elapsed(float *ms, CUevent a, CUevent b) { return gbx.cuEventElapsedTime(ms, a, b); }
static CUresult gbx_event_destroy(CUevent e) { return gbx.cuEventDestroy_v2(e); }

// CUDA graphs: stream capture (thread-local mode) and replay.
static const char *gbx_missing_graph_symbol(void) {
	if (!gbx.cuStreamBeginCapture_v2) return "cuStreamBeginCapture_v2";
	if (!gbx.cuStreamEndCapture) return "cuStreamEndCapture";
	if (!gbx.cuGraphInstantiateWithFlags) return "cuGraphInstantiateWithFlags";
	if (!gbx.cuGraphLaunch) return "cuGraphLaunch";
	if (!gbx.cuGraphExecDestroy) return "cuGraphExecDestroy";
	if (!gbx.cuGraphDestroy) return "cuGraphDestroy";
	return "";
}
static int gbx_have_graphs(void) {
	return gbx.cuStreamBeginCapture_v2 && gbx.cuStreamEndCapture && gbx.cuGraphInstantiateWithFlags &&
	       gbx.cuGraphLaunch && gbx.cuGraphExecDestroy && gbx.cuGraphDestroy;
}
static CUresult gbx_capture_begin(CUstream s) {
	return gbx.cuStreamBeginCapture_v2(s, GBX_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
}
// gbx_capture_end ends the capture and instantiates the graph; the graph
// itself is destroyed (the executable graph keeps what it needs).
static CUresult gbx_capture_end(CUstream s, CUgraphExec *exec) {
	CUgraph g = NULL;
	*exec = NULL;
	CUresult r = gbx.cuStreamEndCapture(s, &g);
	if (r) {
		if (g) gbx.cuGraphDestroy(g);
		return r;
	}
	r = gbx.cuGraphInstantiateWithFlags(exec, g, 0);
	gbx.cuGraphDestroy(g);
	return r;
}
static CUresult gbx_graph_launch(CUgraphExec e, CUstream s) { return gbx.cuGraphLaunch(e, s); }
static CUresult gbx_graph_destroy(CUgraphExec e) { return gbx.cuGraphExecDestroy(e); }

// gbx_launch launches f with its arguments packed in args: nargs values at
// the byte offsets offs[i] (each argument's storage, properly aligned). The
// params array of pointers is built here, on the C side. With pdl (and a
// driver that has cuLaunchKernelEx) the launch allows programmatic
// dependent launch: f may start while the stream's previous kernel runs,
// and waits for it in griddepcontrol.wait (gbx_pdl in src/common.cuh).
static CUresult gbx_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                           unsigned bz, unsigned smem, CUstream s, unsigned char *args, const int *offs,
                           int nargs, int pdl) {
	void *params[GBX_MAX_KERNEL_ARGS];
	if (nargs > GBX_MAX_KERNEL_ARGS) return GBX_CUDA_ERROR_INVALID_VALUE;
	for (int i = 0; i < nargs; i++) params[i] = args + offs[i];
	if (pdl && gbx.cuLaunchKernelEx) {
		CUlaunchAttribute attr;
		memset(&attr, 0, sizeof attr);
		attr.id = GBX_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
		attr.value.programmaticStreamSerializationAllowed = 1;
		CUlaunchConfig c = {gx, gy, gz, bx, by, bz, smem, s, &attr, 1};
		return gbx.cuLaunchKernelEx(&c, f, params, NULL);
	}
	return gbx.cuLaunchKernel(f, gx, gy, gz, bx, by, bz, smem, s, params, NULL);
}

// gbx_has_launch_ex reports whether the driver has cuLaunchKernelEx.
static int gbx_has_launch_ex(void) { return gbx.cuLaunchKernelEx != NULL; }

// ---- NVRTC ----

static int gbx_nvrtc_version(int *maj, int *min) { return gbx.nvrtcVersion(maj, min); }
static const char *gbx_nvrtc_error(int r) { return gbx.nvrtcGetErrorString(r); }

// gbx_nvrtc_compile compiles src, whose #include "x" directives NVRTC
// resolves among the nheaders headers (contents headers[i], include name
// names[i]); on success *cubin (malloc'd, caller frees) holds the cubin.
// The log (malloc'd, caller frees) is returned in *log either way.
static int gbx_nvrtc_compile(const char *src, const char *name, int nheaders, const char *const *headers,
                             const char *const *names, const char *const *opts, int nopts, char **cubin,
                             size_t *cubinLen, char **log) {
	nvrtcProgram p;
	*cubin = NULL;
	*log = NULL;
	*cubinLen = 0;
	int r = gbx.nvrtcCreateProgram(&p, src, name, nheaders, headers, names);
	if (r) return r;
	int cr = gbx.nvrtcCompileProgram(p, nopts, opts);
	size_t ln = 0;
	if (gbx.nvrtcGetProgramLogSize(p, &ln) == 0 && ln > 0) {
		*log = (char *)malloc(ln + 1);
		if (*log) {
			if (gbx.nvrtcGetProgramLog(p, *log)) (*log)[0] = 0;
			(*log)[ln] = 0;
		}
	}
	if (cr == 0) {
		size_t n = 0;
		r = gbx.nvrtcGetCUBINSize(p, &n);
		if (r == 0) {
			*cubin = (char *)malloc(n);
			if (!*cubin) {
				r = GBX_NVRTC_ERROR_OUT_OF_MEMORY;
			} else {
				r = gbx.nvrtcGetCUBIN(p, *cubin);
				*cubinLen = n;
			}
		}
	} else {
		r = cr;
	}
	gbx.nvrtcDestroyProgram(&p);
	return r;
}

// ---- cuBLASLt ----

static int gbx_lt_create(cublasLtHandle_t *h) { return gbx.cublasLtCreate(h); }
static int gbx_lt_destroy(cublasLtHandle_t h) { return gbx.cublasLtDestroy(h); }
static size_t gbx_lt_version(void) { return gbx.cublasLtGetVersion(); }

// gbx_plan is one prepared matmul: D[m×n] (column-major, ld m) = op(A)·op(B)
// with A stored k×m (op T), B k×n (op N): Y[M,N] = X[M,K]·W[N,K]ᵀ row-major
// with A = W, B = X, m = N, n = M.
typedef struct {
	cublasLtMatmulDesc_t desc;
	cublasLtMatrixLayout_t a, b, c, d;
	cublasLtMatmulHeuristicResult_t heur;
	int cand; // batch-invariant plans: the reference candidate taken; else -1
} gbx_plan;

typedef struct {
	int computeType, scaleType, aType, bType, cType, dType;
	uint64_t m, n, k;
	int epilogue;       // a cublasLtEpilogue_t (GBX_CUBLASLT_EPILOGUE_DEFAULT: left unset)
	int biasType;       // GBX_PLAN_UNSET: leave default
	int aScaleMode;     // GBX_PLAN_UNSET: leave default
	int bScaleMode;     // GBX_PLAN_UNSET: leave default
	int fastAccum;      // GBX_PLAN_UNSET: leave default
	CUdeviceptr bias;   // set at plan time so the heuristic sees it
	CUdeviceptr aScale;
	CUdeviceptr bScale;
	size_t workspace;
	// refN > 0 makes the plan batch-invariant: its algorithm is chosen
	// for n = refN, not n (see gbx_plan_fixed).
	uint64_t refN;
	// cand > 0 (without refN) takes the heuristic's result cand (0 its
	// first, the default) if it returns that many: for benchmarks.
	int cand;
} gbx_plan_args;

// GBX_PLAN_CANDIDATES is how many heuristic results a batch-invariant plan
// considers at the reference n.
#define GBX_PLAN_CANDIDATES 8

static void gbx_plan_free(gbx_plan *p) {
	if (!p) return;
	if (p->a) gbx.cublasLtMatrixLayoutDestroy(p->a);
	if (p->b) gbx.cublasLtMatrixLayoutDestroy(p->b);
	if (p->c) gbx.cublasLtMatrixLayoutDestroy(p->c);
	if (p->d) gbx.cublasLtMatrixLayoutDestroy(p->d);
	if (p->desc) gbx.cublasLtMatmulDescDestroy(p->desc);
	free(p);
}

#define GBX_LT(call)                                                                  \
	do {                                                                              \
		int _r = (call);                                                              \
		if (_r) {                                                                     \
			*step = __LINE__;                                                         \
			gbx_plan_free(p);                                                         \
			return _r;                                                                \
		}                                                                             \
	} while (0)

// gbx_plan_fixed chooses p's algorithm independently of n (the batch rows)
// for batch invariance: the heuristic's results for n = g->refN, in its
// order, each with split-K off (one CTA walks the whole of k for an output
// tile, no reduction of partial sums); the first that cublasLtMatmulAlgoCheck
// accepts for p's own n. Every n thus runs the same kernel configuration
// unless one is refused at some n. Returns a cuBLAS status
// (GBX_CUBLAS_STATUS_NOT_SUPPORTED when no candidate is accepted).
static int gbx_plan_fixed(cublasLtHandle_t h, const gbx_plan_args *g, gbx_plan *p, cublasLtMatmulPreference_t pref) {
	cublasLtMatrixLayout_t rb = NULL, rc = NULL, rd = NULL;
	cublasLtMatmulHeuristicResult_t res[GBX_PLAN_CANDIDATES];
	int got = 0;
	int r = gbx.cublasLtMatrixLayoutCreate(&rb, g->bType, g->k, g->refN, (int64_t)g->k);
	if (r == 0) r = gbx.cublasLtMatrixLayoutCreate(&rc, g->cType, g->m, g->refN, (int64_t)g->m);
	if (r == 0) r = gbx.cublasLtMatrixLayoutCreate(&rd, g->dType, g->m, g->refN, (int64_t)g->m);
	if (r == 0)
		r = gbx.cublasLtMatmulAlgoGetHeuristic(h, p->desc, p->a, rb, rc, rd, pref, GBX_PLAN_CANDIDATES, res, &got);
	if (rb) gbx.cublasLtMatrixLayoutDestroy(rb);
	if (rc) gbx.cublasLtMatrixLayoutDestroy(rc);
	if (rd) gbx.cublasLtMatrixLayoutDestroy(rd);
	if (r) return r;
	uint32_t one = 1, none = GBX_CUBLASLT_REDUCTION_SCHEME_NONE;
	for (int i = 0; i < got; i++) {
		cublasLtMatmulAlgo_t algo = res[i].algo;
		if (gbx.cublasLtMatmulAlgoConfigSetAttribute(&algo, GBX_CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof one) ||
		    gbx.cublasLtMatmulAlgoConfigSetAttribute(&algo, GBX_CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none,
		                                             sizeof none))
			continue;
		cublasLtMatmulHeuristicResult_t chk;
		memset(&chk, 0, sizeof chk);
		if (gbx.cublasLtMatmulAlgoCheck(h, p->desc, p->a, p->b, p->c, p->d, &algo, &chk) != 0 || chk.state != 0 ||
		    chk.workspaceSize > g->workspace)
			continue;
		p->heur = chk;
		p->heur.algo = algo;
		p->cand = i;
		return 0;
	}
	return GBX_CUBLAS_STATUS_NOT_SUPPORTED;
}

// gbx_plan_create prepares a plan; it returns a cuBLAS status
// (GBX_CUBLAS_STATUS_NOT_SUPPORTED when the heuristic finds no algorithm)
// and sets *step to the source line of the call that failed.
static int gbx_plan_create(cublasLtHandle_t h, const gbx_plan_args *g, gbx_plan **out, int *step) {
	gbx_plan *p = (gbx_plan *)calloc(1, sizeof *p);
	*out = NULL;
	*step = 0;
	if (!p) return GBX_CUBLAS_STATUS_ALLOC_FAILED;
	int opT = GBX_CUBLAS_OP_T, opN = GBX_CUBLAS_OP_N;
	cublasLtMatmulDesc_t d;
	GBX_LT(gbx.cublasLtMatmulDescCreate(&p->desc, g->computeType, g->scaleType));
	d = p->desc;
	GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT));
	GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN));
	if (g->epilogue != GBX_CUBLASLT_EPILOGUE_DEFAULT)
		GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_EPILOGUE, &g->epilogue, sizeof g->epilogue));
	if (g->bias)
		GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias, sizeof g->bias));
	if (g->biasType != GBX_PLAN_UNSET)
		GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &g->biasType,
		                                          sizeof g->biasType));
	if (g->aScale)
		GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g->aScale,
		                                          sizeof g->aScale));
	if (g->bScale)
		GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g->bScale,
		                                          sizeof g->bScale));
	if (g->aScaleMode != GBX_PLAN_UNSET)
		GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &g->aScaleMode, sizeof(int)));
	if (g->bScaleMode != GBX_PLAN_UNSET)
		GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &g->bScaleMode, sizeof(int)));
	if (g->fastAccum != GBX_PLAN_UNSET) {
		int8_t fa = (int8_t)g->fastAccum;
		GBX_LT(gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fa, sizeof fa));
	}
	GBX_LT(gbx.cublasLtMatrixLayoutCreate(&p->a, g->aType, g->k, g->m, (int64_t)g->k));
	GBX_LT(gbx.cublasLtMatrixLayoutCreate(&p->b, g->bType, g->k, g->n, (int64_t)g->k));
	GBX_LT(gbx.cublasLtMatrixLayoutCreate(&p->c, g->cType, g->m, g->n, (int64_t)g->m));
	GBX_LT(gbx.cublasLtMatrixLayoutCreate(&p->d, g->dType, g->m, g->n, (int64_t)g->m));
	cublasLtMatmulPreference_t pref = NULL;
	GBX_LT(gbx.cublasLtMatmulPreferenceCreate(&pref));
	uint64_t ws = g->workspace;
	int r = gbx.cublasLtMatmulPreferenceSetAttribute(pref, GBX_CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
	int got = 0;
	p->cand = -1;
	if (r == 0 && g->refN) {
		r = gbx_plan_fixed(h, g, p, pref);
	} else if (r == 0 && g->cand > 0 && g->cand < GBX_PLAN_CANDIDATES) {
		cublasLtMatmulHeuristicResult_t res[GBX_PLAN_CANDIDATES];
		r = gbx.cublasLtMatmulAlgoGetHeuristic(h, p->desc, p->a, p->b, p->c, p->d, pref, g->cand + 1, res, &got);
		if (r == 0 && got > g->cand) p->heur = res[g->cand];
		else got = 0;
	} else if (r == 0 && g->cand == 0) {
		r = gbx.cublasLtMatmulAlgoGetHeuristic(h, p->desc, p->a, p->b, p->c, p->d, pref, 1, &p->heur, &got);
	}
	gbx.cublasLtMatmulPreferenceDestroy(pref);
	if (r == 0 && !g->refN && got == 0) r = GBX_CUBLAS_STATUS_NOT_SUPPORTED;
	if (r) {
		*step = __LINE__;
		gbx_plan_free(p);
		return r;
	}
	*out = p;
	return 0;
}

// gbx_plan_run runs plan p: D = alpha·(A·B) (+ bias, per its epilogue),
// beta = 0. bias and the scales, when non-zero, replace the plan's.
static int gbx_plan_run(cublasLtHandle_t h, gbx_plan *p, float alpha, CUdeviceptr A, CUdeviceptr B, CUdeviceptr D,
                        CUdeviceptr bias, CUdeviceptr aScale, CUdeviceptr bScale, CUdeviceptr ws, size_t wsLen,
                        CUstream s) {
	float beta = 0;
	int r;
	cublasLtMatmulDesc_t d = p->desc;
	if (bias && (r = gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias)))
		return r;
	if (aScale &&
	    (r = gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &aScale, sizeof aScale)))
		return r;
	if (bScale &&
	    (r = gbx.cublasLtMatmulDescSetAttribute(d, GBX_CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &bScale, sizeof bScale)))
		return r;
	return gbx.cublasLtMatmul(h, p->desc, &alpha, (const void *)A, p->a, (const void *)B, p->b, &beta, (const void *)D,
	                          p->c, (void *)D, p->d, &p->heur.algo, (void *)ws, wsLen, s);
}

static size_t gbx_plan_workspace(gbx_plan *p) { return p->heur.workspaceSize; }

// gbx_plan_algo writes p's algorithm's configuration — cuBLASLt's
// attributes CUBLASLT_ALGO_CONFIG_ID … _CLUSTER_SHAPE_ID (0 … 8), each
// zero-extended — to cfg, sets *cand to the reference candidate it is (-1:
// not a batch-invariant plan) and returns a cuBLAS status. (The
// algorithm's 64 bytes themselves are opaque and may differ between row
// counts for one configuration.)
static int gbx_plan_algo(gbx_plan *p, uint64_t cfg[9], int *cand) {
	*cand = p->cand;
	for (int a = 0; a < 9; a++) {
		// The attributes are 2 to 4 bytes, and the size asked for must be
		// the attribute's own: ask for it first.
		size_t need = 0, got = 0;
		cfg[a] = 0;
		int r = gbx.cublasLtMatmulAlgoConfigGetAttribute(&p->heur.algo, a, NULL, 0, &need);
		if (r) return r;
		if (need == 0 || need > sizeof cfg[a]) return GBX_CUBLAS_STATUS_NOT_SUPPORTED;
		r = gbx.cublasLtMatmulAlgoConfigGetAttribute(&p->heur.algo, a, &cfg[a], need, &got);
		if (r) return r;
	}
	return 0;
}

#endif
