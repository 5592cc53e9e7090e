//go:build cgo

package cuda

/*
#cgo LDFLAGS: -ldl
#include "gbx.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"
)

// This file is the only one that calls C functions: the function tables in
// gbx.h are static to its translation unit. Everything else in the package
// goes through the small Go functions here (other files read only the
// constants of src/abi.h through cgo). Device addresses are uint64 in Go.

// errors.go builds without cgo too, so it keeps its own copies of two codes
// of src/abi.h. An "invalid array index" compiler error here means they
// have drifted apart.
func _() {
	var x [1]struct{}
	_ = x[cudaErrorOutOfMemory-C.GBX_CUDA_ERROR_OUT_OF_MEMORY]
	_ = x[cublasStatusAllocFailed-C.GBX_CUBLAS_STATUS_ALLOC_FAILED]
}

// Library file names, and the folders searched for them (see libDirs).
const (
	libCUDA          = "libcuda.so.1"
	libNVRTC         = "libnvrtc.so.13"
	libNVRTCBuiltins = "libnvrtc-builtins.so.13.0"
	libCublasLt      = "libcublasLt.so.13"
)

var (
	loadOnce sync.Once
	loadErr  error
	// loadedFrom records where each library came from, for messages.
	loadedFrom = map[string]string{}
)

// libDirs is the search order for the CUDA libraries: GEARBOX_CUDA_LIB_DIR,
// then the soname through the loader's own search (""), then
// $CUDA_HOME/lib64 and /usr/local/cuda/lib64.
func libDirs() []string {
	var dirs []string
	if d := os.Getenv(EnvLibDir); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "")
	if h := os.Getenv("CUDA_HOME"); h != "" {
		dirs = append(dirs, filepath.Join(h, "lib64"))
	}
	return append(dirs, "/usr/local/cuda/lib64")
}

// dlopen opens name from the first folder of dirs that has it.
func dlopen(dirs []string, name string, global bool) (unsafe.Pointer, string, error) {
	flags := C.int(C.RTLD_NOW | C.RTLD_LOCAL)
	if global {
		flags = C.RTLD_NOW | C.RTLD_GLOBAL
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var msgs []string
	for _, d := range dirs {
		cdir := C.CString(d)
		var buf [512]C.char
		h := C.gbx_open(cdir, cname, flags, &buf[0], C.size_t(len(buf)))
		C.free(unsafe.Pointer(cdir))
		if h != nil {
			where := d
			if where == "" {
				where = "(loader search path)"
			}
			return h, where, nil
		}
		msgs = append(msgs, C.GoString(&buf[0]))
	}
	return nil, "", fmt.Errorf("%w: cannot load %s: %s", ErrUnavailable, name, msgs[len(msgs)-1])
}

// loadLibraries dlopens libcuda, NVRTC (its builtins first, globally) and
// cuBLASLt, and resolves every symbol, once per process.
func loadLibraries() error {
	loadOnce.Do(func() { loadErr = loadLibrariesOnce() })
	return loadErr
}

func loadLibrariesOnce() error {
	var errBuf [512]C.char
	dirs := libDirs()
	h, where, err := dlopen(dirs, libCUDA, false)
	if err != nil {
		return fmt.Errorf("%w (is the NVIDIA driver installed?)", err)
	}
	loadedFrom[libCUDA] = where
	if C.gbx_load_driver(h, &errBuf[0], C.size_t(len(errBuf))) != 0 {
		return fmt.Errorf("%w: %s: %s", ErrUnavailable, libCUDA, C.GoString(&errBuf[0]))
	}
	// NVRTC: its builtins must be loaded first, globally, from the folder
	// NVRTC itself comes from, or compiles fail with
	// NVRTC_ERROR_BUILTIN_OPERATION_FAILURE.
	var nerr error
	for _, d := range dirs {
		if _, _, err := dlopen([]string{d}, libNVRTCBuiltins, true); err != nil {
			nerr = err
			continue
		}
		h, where, err := dlopen([]string{d}, libNVRTC, false)
		if err != nil {
			nerr = err
			continue
		}
		loadedFrom[libNVRTC] = where
		if C.gbx_load_nvrtc(h, &errBuf[0], C.size_t(len(errBuf))) != 0 {
			return fmt.Errorf("%w: %s: %s", ErrUnavailable, libNVRTC, C.GoString(&errBuf[0]))
		}
		nerr = nil
		break
	}
	if nerr != nil {
		return nerr
	}
	h, where, err = dlopen(dirs, libCublasLt, false)
	if err != nil {
		return err
	}
	loadedFrom[libCublasLt] = where
	if C.gbx_load_cublaslt(h, &errBuf[0], C.size_t(len(errBuf))) != 0 {
		return fmt.Errorf("%w: %s: %s", ErrUnavailable, libCublasLt, C.GoString(&errBuf[0]))
	}
	return nil
}

// cuErr turns a CUresult into an error naming op, or nil.
func cuErr(r C.CUresult, op string) error {
	if r == 0 {
		return nil
	}
	return &Error{Op: op, Code: int(r), Name: C.GoString(C.gbx_cu_error_name(r)), Msg: C.GoString(C.gbx_cu_error(r))}
}

// ---- driver ----

type (
	cuDevice  struct{ d C.CUdevice }
	cuContext struct{ c C.CUcontext }
	cuStream  struct{ s C.CUstream }
	cuEvent   struct{ e C.CUevent }
	cuModule  struct{ m C.CUmodule }
	cuFunc    struct{ f C.CUfunction }
)

func cuInit() error { return cuErr(C.gbx_init(), "cuInit") }

func cuDriverVersion() (int, error) {
	var v C.int
	return int(v), cuErr(C.gbx_driver_version(&v), "cuDriverGetVersion")
}

func cuDeviceCount() (int, error) {
	var n C.int
	return int(n), cuErr(C.gbx_device_count(&n), "cuDeviceGetCount")
}

func cuDeviceGet(i int) (cuDevice, error) {
	var d C.CUdevice
	return cuDevice{d}, cuErr(C.gbx_device_get(&d, C.int(i)), "cuDeviceGet")
}

func (d cuDevice) name() (string, error) {
	var buf [256]C.char
	if err := cuErr(C.gbx_device_name(&buf[0], C.int(len(buf)), d.d), "cuDeviceGetName"); err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}

func (d cuDevice) attr(a int) (int, error) {
	var v C.int
	return int(v), cuErr(C.gbx_device_attr(&v, C.int(a), d.d), "cuDeviceGetAttribute")
}

func (d cuDevice) totalMem() (uint64, error) {
	var b C.size_t
	return uint64(b), cuErr(C.gbx_device_mem(&b, d.d), "cuDeviceTotalMem")
}

// uuid returns d's UUID as nvidia-smi prints it (formatUUID), or "" when
// the driver has no cuDeviceGetUuid.
func (d cuDevice) uuid() (string, error) {
	var gpu, own [16]byte
	if r := C.gbx_device_uuid((*C.uchar)(&gpu[0]), 0, d.d); r == C.GBX_CUDA_ERROR_NOT_SUPPORTED {
		return "", nil
	} else if err := cuErr(r, "cuDeviceGetUuid"); err != nil {
		return "", err
	}
	own = gpu
	if r := C.gbx_device_uuid((*C.uchar)(&own[0]), 1, d.d); r != C.GBX_CUDA_ERROR_NOT_SUPPORTED {
		if err := cuErr(r, "cuDeviceGetUuid_v2"); err != nil {
			return "", err
		}
	}
	return formatUUID(gpu, own), nil
}

func (d cuDevice) retainPrimary() (cuContext, error) {
	var c C.CUcontext
	return cuContext{c}, cuErr(C.gbx_ctx_retain(&c, d.d), "cuDevicePrimaryCtxRetain")
}

func (d cuDevice) releasePrimary() error {
	return cuErr(C.gbx_ctx_release(d.d), "cuDevicePrimaryCtxRelease")
}

func (c cuContext) setCurrent() error { return cuErr(C.gbx_ctx_set(c.c), "cuCtxSetCurrent") }

func cuMemInfo() (free, total uint64, err error) {
	var f, t C.size_t
	err = cuErr(C.gbx_mem_info(&f, &t), "cuMemGetInfo")
	return uint64(f), uint64(t), err
}

func cuMalloc(n uint64) (uint64, error) {
	var p C.CUdeviceptr
	if n == 0 {
		n = 1
	}
	if err := cuErr(C.gbx_malloc(&p, C.size_t(n)), "cuMemAlloc"); err != nil {
		return 0, err
	}
	return uint64(p), nil
}

func cuFree(p uint64) error {
	if p == 0 {
		return nil
	}
	return cuErr(C.gbx_free(C.CUdeviceptr(p)), "cuMemFree")
}

// pinned is page-locked host memory from cuMemAllocHost. Its bytes are C
// memory: Go may read and write them through the slice views.
type pinned struct {
	p unsafe.Pointer
	n int
}

func cuMallocHost(n int) (pinned, error) {
	var p unsafe.Pointer
	if err := cuErr(C.gbx_malloc_host(&p, C.size_t(max(n, 1))), "cuMemAllocHost"); err != nil {
		return pinned{}, err
	}
	return pinned{p, n}, nil
}

func (h pinned) free() error {
	if h.p == nil {
		return nil
	}
	return cuErr(C.gbx_free_host(h.p), "cuMemFreeHost")
}

// floats returns the first n float32 values of h.
func (h pinned) floats(n int) []float32 { return unsafe.Slice((*float32)(h.p), n) }

// cuUpload copies b to device address d (weights) and returns once d holds
// it. cuMemcpyHtoD from pageable memory returns as soon as b is staged for
// DMA, the transfer to d possibly still in flight on the legacy stream
// (CUDA's "API synchronization behavior"), and the backend's streams are
// non-blocking: they do not wait for it. A kernel queued next — the
// conversion of a staged tensor, a step's first GEMM — could read d before
// the copy lands; so cuUpload waits for the context.
func cuUpload(d uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := cuErr(C.gbx_htod(C.CUdeviceptr(d), unsafe.Pointer(&b[0]), C.size_t(len(b))), "cuMemcpyHtoD"); err != nil {
		return err
	}
	return cuErr(C.gbx_ctx_sync(), "cuCtxSynchronize")
}

// cuDownload copies len(b) bytes from device address d into b, synchronously.
func cuDownload(b []byte, d uint64) error {
	if len(b) == 0 {
		return nil
	}
	return cuErr(C.gbx_dtoh(unsafe.Pointer(&b[0]), C.CUdeviceptr(d), C.size_t(len(b))), "cuMemcpyDtoH")
}

// htodAsync copies n bytes of pinned memory h to d on stream s.
func (s cuStream) htodAsync(d uint64, h pinned, n int) error {
	return cuErr(C.gbx_htod_async(C.CUdeviceptr(d), h.p, C.size_t(n), s.s), "cuMemcpyHtoDAsync")
}

// dtohAsync copies n bytes from d into pinned memory h on stream s.
func (s cuStream) dtohAsync(h pinned, d uint64, n int) error {
	return cuErr(C.gbx_dtoh_async(h.p, C.CUdeviceptr(d), C.size_t(n), s.s), "cuMemcpyDtoHAsync")
}

func (s cuStream) memset32(d uint64, v uint32, n int) error {
	return cuErr(C.gbx_memset32_async(C.CUdeviceptr(d), C.uint(v), C.size_t(n), s.s), "cuMemsetD32Async")
}

func cuStreamCreate() (cuStream, error) {
	var s C.CUstream
	return cuStream{s}, cuErr(C.gbx_stream_create(&s), "cuStreamCreate")
}

func (s cuStream) destroy() error { return cuErr(C.gbx_stream_destroy(s.s), "cuStreamDestroy") }
func (s cuStream) sync() error    { return cuErr(C.gbx_stream_sync(s.s), "cuStreamSynchronize") }

func cuEventCreate() (cuEvent, error) {
	var e C.CUevent
	return cuEvent{e}, cuErr(C.gbx_event_create(&e), "cuEventCreate")
}

func (e cuEvent) record(s cuStream) error {
	return cuErr(C.gbx_event_record(e.e, s.s), "cuEventRecord")
}
func (e cuEvent) sync() error    { return cuErr(C.gbx_event_sync(e.e), "cuEventSynchronize") }
func (e cuEvent) destroy() error { return cuErr(C.gbx_event_destroy(e.e), "cuEventDestroy") }

// elapsed returns the milliseconds from e to end.
func (e cuEvent) elapsed(end cuEvent) (float32, error) {
	var ms C.float
	return float32(ms), cuErr(C.gbx_event_elapsed(&ms, e.e, end.e), "cuEventElapsedTime")
}

func cuModuleLoad(image []byte) (cuModule, error) {
	var m C.CUmodule
	if len(image) == 0 {
		return cuModule{}, errors.New("cuda: empty module image")
	}
	// The image is copied into C memory: the driver may read it after the
	// call in theory, and cgo forbids keeping Go pointers.
	p := C.CBytes(image)
	defer C.free(p)
	return cuModule{m}, cuErr(C.gbx_module_load(&m, p), "cuModuleLoadData")
}

func (m cuModule) function(name string) (cuFunc, error) {
	var f C.CUfunction
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	return cuFunc{f}, cuErr(C.gbx_module_func(&f, m.m, cn), "cuModuleGetFunction "+name)
}

func (m cuModule) unload() error { return cuErr(C.gbx_module_unload(m.m), "cuModuleUnload") }

// setMaxDynamicShared raises f's dynamic shared memory limit to n bytes.
func (f cuFunc) setMaxDynamicShared(n int) error {
	return cuErr(C.gbx_func_max_dynamic_shared(f.f, C.int(n)), "cuFuncSetAttribute")
}

// launch runs f, the kernel called name, on stream s with the packed
// arguments a; with pdl, as a programmatic dependent launch (gbx_launch).
func (f cuFunc) launch(s cuStream, name string, grid, block [3]uint32, smem uint32, a *args, pdl bool) error {
	// a.buf holds no Go pointers, so C may read it during the call;
	// cuLaunchKernel copies the arguments before it returns.
	var buf *C.uchar
	if len(a.buf) > 0 {
		buf = (*C.uchar)(unsafe.Pointer(&a.buf[0]))
	}
	var offs [C.GBX_MAX_KERNEL_ARGS]C.int
	if len(a.offs) > len(offs) {
		return fmt.Errorf("cuda: kernel %s: %d arguments, at most %d", name, len(a.offs), len(offs))
	}
	for i, o := range a.offs {
		offs[i] = C.int(o)
	}
	r := C.gbx_launch(f.f, C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]), C.uint(block[0]), C.uint(block[1]),
		C.uint(block[2]), C.uint(smem), s.s, buf, &offs[0], C.int(len(a.offs)), C.int(boolInt(pdl)))
	return cuErr(r, "cuLaunchKernel "+name)
}

// haveLaunchEx reports whether the driver has cuLaunchKernelEx, which
// programmatic dependent launch needs.
func haveLaunchEx() bool { return C.gbx_has_launch_ex() != 0 }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- CUDA graphs ----

type cuGraphExec struct{ e C.CUgraphExec }

// haveGraphs reports whether the driver has the graph entry points.
func haveGraphs() bool { return C.gbx_have_graphs() != 0 }

// missingGraphSymbol names a graph entry point the driver lacks, or "".
func missingGraphSymbol() string { return C.GoString(C.gbx_missing_graph_symbol()) }

// beginCapture starts capturing s's work into a graph (thread-local mode).
func (s cuStream) beginCapture() error {
	return cuErr(C.gbx_capture_begin(s.s), "cuStreamBeginCapture")
}

// endCapture ends the capture and instantiates the captured graph.
func (s cuStream) endCapture() (cuGraphExec, error) {
	var e C.CUgraphExec
	return cuGraphExec{e}, cuErr(C.gbx_capture_end(s.s, &e), "cuStreamEndCapture/cuGraphInstantiate")
}

func (g cuGraphExec) launch(s cuStream) error {
	return cuErr(C.gbx_graph_launch(g.e, s.s), "cuGraphLaunch")
}

func (g cuGraphExec) destroy() {
	if g.e != nil {
		C.gbx_graph_destroy(g.e)
	}
}

// ---- NVRTC ----

func nvrtcVersion() (major, minor int, err error) {
	var a, b C.int
	if r := C.gbx_nvrtc_version(&a, &b); r != 0 {
		return 0, 0, fmt.Errorf("nvrtcVersion: %s", C.GoString(C.gbx_nvrtc_error(r)))
	}
	return int(a), int(b), nil
}

// cStrings copies ss into a C array of C strings; free releases it all.
func cStrings(ss []string) (arr **C.char, free func()) {
	p := C.malloc(C.size_t(len(ss)+1) * C.size_t(unsafe.Sizeof(uintptr(0))))
	v := unsafe.Slice((**C.char)(p), len(ss)+1)
	for i, s := range ss {
		v[i] = C.CString(s)
	}
	v[len(ss)] = nil
	return (**C.char)(p), func() {
		for _, c := range v[:len(ss)] {
			C.free(unsafe.Pointer(c))
		}
		C.free(p)
	}
}

// nvrtcCompile compiles p with opts and returns the cubin, or an error
// wrapping ErrCompile that holds NVRTC's log.
func nvrtcCompile(p program, opts []string) ([]byte, string, error) {
	csrc := C.CString(p.src)
	defer C.free(unsafe.Pointer(csrc))
	cname := C.CString(p.name)
	defer C.free(unsafe.Pointer(cname))
	copts, freeOpts := cStrings(opts)
	defer freeOpts()
	names := make([]string, len(p.headers))
	texts := make([]string, len(p.headers))
	for i, h := range p.headers {
		names[i], texts[i] = h.name, h.text
	}
	cnames, freeNames := cStrings(names)
	defer freeNames()
	ctexts, freeTexts := cStrings(texts)
	defer freeTexts()
	var cubin, clog *C.char
	var n C.size_t
	r := C.gbx_nvrtc_compile(csrc, cname, C.int(len(p.headers)), ctexts, cnames, copts, C.int(len(opts)), &cubin, &n,
		&clog)
	var log string
	if clog != nil {
		log = C.GoString(clog)
		C.free(unsafe.Pointer(clog))
	}
	if r != 0 {
		if cubin != nil {
			C.free(unsafe.Pointer(cubin))
		}
		return nil, log, &CompileError{Source: p.name, Status: C.GoString(C.gbx_nvrtc_error(r)), Log: log}
	}
	b := C.GoBytes(unsafe.Pointer(cubin), C.int(n))
	C.free(unsafe.Pointer(cubin))
	return b, log, nil
}

// ---- cuBLASLt ----

type ltHandle struct{ h C.cublasLtHandle_t }

func ltCreate() (ltHandle, error) {
	var h C.cublasLtHandle_t
	if r := C.gbx_lt_create(&h); r != 0 {
		return ltHandle{}, &BlasError{Op: "cublasLtCreate", Status: int(r)}
	}
	return ltHandle{h}, nil
}

func (h ltHandle) destroy() { C.gbx_lt_destroy(h.h) }

func ltVersion() int { return int(C.gbx_lt_version()) }

// planArgs describes one cuBLASLt matmul (see gbx_plan_args).
type planArgs struct {
	compute, scale, aType, bType, cType, dType int
	m, n, k                                    int
	epilogue                                   int
	biasType, aScaleMode, bScaleMode           int // GBX_PLAN_UNSET: default
	fastAccum                                  int // GBX_PLAN_UNSET: default
	bias, aScale, bScale                       uint64
	workspace                                  int
	refN                                       int // > 0: batch-invariant, the algorithm chosen for n = refN
	cand                                       int // without refN: the heuristic's result to take (benchmarks; 0 its first)
}

type ltPlan struct{ p *C.gbx_plan }

func (h ltHandle) plan(a planArgs) (ltPlan, error) {
	g := C.gbx_plan_args{
		computeType: C.int(a.compute), scaleType: C.int(a.scale),
		aType: C.int(a.aType), bType: C.int(a.bType), cType: C.int(a.cType), dType: C.int(a.dType),
		m: C.uint64_t(a.m), n: C.uint64_t(a.n), k: C.uint64_t(a.k),
		epilogue: C.int(a.epilogue), biasType: C.int(a.biasType),
		aScaleMode: C.int(a.aScaleMode), bScaleMode: C.int(a.bScaleMode), fastAccum: C.int(a.fastAccum),
		bias: C.CUdeviceptr(a.bias), aScale: C.CUdeviceptr(a.aScale), bScale: C.CUdeviceptr(a.bScale),
		workspace: C.size_t(a.workspace), refN: C.uint64_t(a.refN), cand: C.int(a.cand),
	}
	var p *C.gbx_plan
	var step C.int
	if r := C.gbx_plan_create(h.h, &g, &p, &step); r != 0 {
		return ltPlan{}, &BlasError{Op: fmt.Sprintf("cuBLASLt plan (gbx.h line %d)", int(step)), Status: int(r)}
	}
	return ltPlan{p}, nil
}

func (p ltPlan) free() {
	if p.p != nil {
		C.gbx_plan_free(p.p)
	}
}

func (p ltPlan) workspace() int { return int(C.gbx_plan_workspace(p.p)) }

// algo returns p's algorithm's opaque bytes and, for a batch-invariant
// plan, which of the reference heuristic's results it is (else -1).
// algo returns the plan's algorithm configuration (cuBLASLt's
// CUBLASLT_ALGO_CONFIG_* attributes 0 … 8) and the reference candidate it
// is (-1: not a batch-invariant plan).
func (p ltPlan) algo() (cfg [9]uint64, cand int, err error) {
	var c C.int
	if r := C.gbx_plan_algo(p.p, (*C.uint64_t)(unsafe.Pointer(&cfg[0])), &c); r != 0 {
		return cfg, 0, &BlasError{Op: "cublasLtMatmulAlgoConfigGetAttribute", Status: int(r)}
	}
	return cfg, int(c), nil
}

func (h ltHandle) run(p ltPlan, alpha float32, a, b, d, bias, aScale, bScale, ws uint64, wsLen int, s cuStream) error {
	r := C.gbx_plan_run(h.h, p.p, C.float(alpha), C.CUdeviceptr(a), C.CUdeviceptr(b), C.CUdeviceptr(d),
		C.CUdeviceptr(bias), C.CUdeviceptr(aScale), C.CUdeviceptr(bScale), C.CUdeviceptr(ws), C.size_t(wsLen), s.s)
	if r != 0 {
		return &BlasError{Op: "cublasLtMatmul", Status: int(r)}
	}
	return nil
}
