//go:build cgo

package cuda

import (
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// A module is one NVRTC program, compiled into one cubin and loaded as one
// CUDA module: a generated source that #includes the module's files of
// src/ (one translation unit), compiled with the module's options.
type module struct {
	name    string   // the program's name, in NVRTC's messages and errors
	sources []string // the files of src/ it includes, in order
	options []string // NVRTC options beyond compiler.options
}

// The modules. A new op family joins ops (or gets its own module when it
// needs other options or is loaded only on demand) and declares its kernels
// with defKernel, next to their typed wrappers (kernels.go).
var (
	// modOps holds the kernels every forward pass uses; it is loaded when
	// a device opens. No FMA contraction: each result is the correctly
	// rounded IEEE operation the CPU backend performs.
	modOps = &module{
		name:    "ops",
		sources: []string{"convert.cu", "fp8.cu", "epilogue.cu", "act.cu", "softmax.cu", "norm.cu", "bench.cu"},
		options: []string{"-fmad=false"},
	}
	// modFP4 holds the NVFP4 kernel; it is loaded with a model's fp4
	// weights (lmPreload, weightsFor) or the first time an fp4 layer of a
	// small batch runs, and without it fp4 runs the bf16 GEMM.
	modFP4 = &module{name: "fp4_linear", sources: []string{"fp4_linear.cu"}}
	// modLM holds the language-model kernels (lm.cu, attention.cu,
	// sample.cu); it is loaded by the first NewKVCache or Step. No FMA
	// contraction, as in ops (attention's dot products use fmaf
	// explicitly).
	modLM = &module{name: "lm", sources: []string{"lm.cu", "attention.cu", "sample.cu"}, options: []string{"-fmad=false"}}

	// modGEMV holds the small-batch linear kernel (gemv.cu); it is loaded
	// with a language model's weights (lmPreload) or the first time a
	// linear layer of few rows runs, and without it those run on cuBLASLt.
	modGEMV = &module{name: "gemv", sources: []string{"gemv.cu"}}

	// modAttnMMA holds gbx_attn_mma (attn_mma.cu), the decode attention
	// of a BF16 or E4M3 cache; it needs compute capability 8.0 and is loaded
	// with a language model's weights there (lmPreload).
	modAttnMMA = &module{name: "attn_mma", sources: []string{"attn_mma.cu"}, options: []string{"-fmad=false"}}

	// modAttnPrefill holds gbx_attn_prefill (attn_prefill.cu), prefill
	// chunks' attention over a BF16 or E4M3 cache with the queries on the
	// products' M side; loaded with a language model's weights (lmPreload)
	// or by the first step that has such chunks (not with
	// Config.NoPrefillAttention).
	modAttnPrefill = &module{name: "attn_prefill", sources: []string{"attn_prefill.cu"}, options: []string{"-fmad=false"}}

	modules = []*module{modOps, modFP4, modLM, modGEMV, modAttnMMA, modAttnPrefill}
)

// program returns the module's NVRTC program, with every file of src/ as a
// header.
func (m *module) program() program {
	var b strings.Builder
	for _, s := range m.sources {
		fmt.Fprintf(&b, "#include \"%s\"\n", s)
	}
	return program{name: m.name, src: b.String(), headers: srcFiles()}
}

// A kernel is one extern "C" kernel of a module. Each is declared once, by
// defKernel, next to the typed method of kernelSet that launches it.
type kernel struct {
	mod  *module
	name string // its extern "C" name
	smem int    // dynamic shared memory it may use, bytes (0: the default 48 KiB)
	// serial: launched without programmatic dependent launch even where
	// kernelSet.pdl is on (see streamed).
	serial bool
	id     int // its index in kernelDefs and kernelSet.fns
}

// kernelDefs is every kernel, in declaration order.
var kernelDefs []*kernel

// defKernel declares the kernel name of module m, which uses up to smem
// bytes of dynamic shared memory (0: at most the default 48 KiB).
func defKernel(m *module, name string, smem int) *kernel {
	k := &kernel{mod: m, name: name, smem: smem, id: len(kernelDefs)}
	kernelDefs = append(kernelDefs, k)
	return k
}

// streamed marks k, a kernel that streams weights over several waves of
// blocks, to be launched after the previous kernel completes: launched
// early, the NVFP4 kernel ran 4–5 % slower at batch 1–8 on the H200
// (docs/benchmarks.md).
func (k *kernel) streamed() *kernel {
	k.serial = true
	return k
}

// kernelSet is one device's loaded modules and its kernels' functions. Its
// methods run on the device goroutine; the typed launch methods are in
// kernels.go.
type kernelSet struct {
	comp *compiler
	sms  int // the device's SMs: grid-stride kernels launch at most 16 blocks per SM

	mods map[*module]*loadedModule
	fns  []cuFunc // by kernel.id; the zero cuFunc until its module is loaded

	// pdl launches every kernel with programmatic dependent launch (sm_90
	// and a driver with cuLaunchKernelEx, unless Config.NoPDL): each
	// kernel's blocks are scheduled while the previous kernel finishes and
	// wait for it in gbx_pdl, their first statement (src/common.cuh).
	pdl bool

	// Benchmarks' overrides of the row kernels' choices (LMBench): the
	// most rows whose row kernels run their _small forms (0: regsMaxRows),
	// and the fewest rows whose SiLU runs gbx_lm_silu_row (0:
	// siluRowMinRows; -1 never); and the threads of perRowLM's blocks in
	// a step of more rows than the _small forms take, up to lmWideRows
	// (0: 1,024).
	regsRows, siluRowMin, rowThreads int

	// launchFunc, when set (tests), runs in place of cuLaunchKernel.
	launchFunc func(s cuStream, l launch) error

	// log gets a line for each module compiled (not found in the cache).
	log zerolog.Logger
}

// loadedModule is the outcome of loading a module, kept so a module that
// failed is not compiled again.
type loadedModule struct {
	mod cuModule
	err error
}

func newKernelSet(comp *compiler, sms int) *kernelSet {
	return &kernelSet{comp: comp, sms: sms, mods: map[*module]*loadedModule{}, fns: make([]cuFunc, len(kernelDefs))}
}

// load compiles m (or reads its cubin from the cache), loads it and looks up
// its kernels, once; later calls return the first call's error.
func (k *kernelSet) load(m *module) error {
	if l := k.mods[m]; l != nil {
		return l.err
	}
	l := &loadedModule{}
	k.mods[m] = l
	start, compiles := time.Now(), k.comp.compiles
	cubin, err := k.comp.compile(m.program(), k.comp.options(m.options...))
	if err != nil {
		l.err = err
		return err
	}
	if k.comp.compiles > compiles {
		k.log.Info().Str("module", m.name).Dur("took", time.Since(start)).Msg("CUDA module compiled")
	}
	if l.mod, err = cuModuleLoad(cubin); err != nil {
		l.err = err
		return err
	}
	for _, kd := range kernelDefs {
		if kd.mod != m {
			continue
		}
		f, err := l.mod.function(kd.name)
		if err == nil && kd.smem > 0 {
			err = f.setMaxDynamicShared(kd.smem)
		}
		if err != nil {
			_ = l.mod.unload()
			l.mod, l.err = cuModule{}, fmt.Errorf("cuda: module %s: %w", m.name, err)
			return l.err
		}
		k.fns[kd.id] = f
	}
	return nil
}

// close unloads every module.
func (k *kernelSet) close() {
	for m, l := range k.mods {
		if l.mod.m != nil {
			_ = l.mod.unload()
		}
		delete(k.mods, m)
	}
	clear(k.fns)
}

// launch is one kernel launch: the kernel, its grid and blocks, its dynamic
// shared memory and its packed arguments.
type launch struct {
	kernel      *kernel
	grid, block [3]uint32
	smem        uint32
	args        *args
}

// run enqueues l on stream s.
func (k *kernelSet) run(s cuStream, l launch) error {
	if k.launchFunc != nil {
		return k.launchFunc(s, l)
	}
	f := k.fns[l.kernel.id]
	if f.f == nil {
		return fmt.Errorf("cuda: kernel %s: module %s is not loaded", l.kernel.name, l.kernel.mod.name)
	}
	return f.launch(s, l.kernel.name, l.grid, l.block, l.smem, l.args, k.pdl && !l.kernel.serial)
}

// threads is the block size of the grid-stride and per-row kernels.
const threads = 256

// gridStride is a launch of a grid-stride kernel over n work items: blocks
// of 256 threads, enough to cover n, at most 16 per SM.
func (k *kernelSet) gridStride(kd *kernel, n int, a *args) launch {
	blocks := min(max((n+threads-1)/threads, 1), k.sms*16)
	return launch{kernel: kd, grid: [3]uint32{uint32(blocks), 1, 1}, block: [3]uint32{threads, 1, 1}, args: a}
}

// perRow is a launch of one 256-thread block per row.
func perRow(kd *kernel, rows int, a *args) launch {
	return launch{kernel: kd, grid: [3]uint32{uint32(rows), 1, 1}, block: [3]uint32{threads, 1, 1}, args: a}
}
