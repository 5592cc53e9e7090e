//go:build cgo

package cuda

import "errors"

// The weight-only NVFP4 × bf16 kernel of src/fp4_linear.cu and its launch
// geometry (from the comment at the top of that file): 256 threads, a CTA
// per 64 output channels × 64 batch rows, 120 KiB of dynamic shared memory.
const (
	fp4Threads   = 256
	fp4TileN     = 64
	fp4TileM     = 64
	fp4SmemBytes = 122880
)

// fp4Kernel is the loaded NVFP4 kernel.
type fp4Kernel struct {
	mod cuModule
	fn  cuFunc
}

// errNoFP4Kernel: the source is not in this build.
var errNoFP4Kernel = errors.New("cuda: src/fp4_linear.cu is not in this build")

// useFP4Kernel reports whether an fp4 layer of rows rows runs on the NVFP4
// kernel (small batches: it reads 4.5-bit weights) rather than the
// dequantized-bf16 GEMM (large batches: cuBLASLt's tensor-core GEMM).
func (d *devState) useFP4Kernel(rows int) bool {
	if d.fp4SmallM < 0 || rows > d.fp4SmallM {
		return false
	}
	return d.loadFP4() == nil
}

// loadFP4 compiles (or loads from the cache) and loads the NVFP4 kernel,
// once; later calls return the first call's error.
func (d *devState) loadFP4() error {
	if d.fp4Tried {
		return d.fp4Err
	}
	d.fp4Tried = true
	src, ok := source("fp4_linear.cu")
	if !ok {
		d.fp4Err = errNoFP4Kernel
		return d.fp4Err
	}
	cubin, err := d.comp.compile("fp4_linear.cu", src, d.comp.options())
	if err != nil {
		d.fp4Err = err
		return err
	}
	k := &fp4Kernel{}
	if k.mod, err = cuModuleLoad(cubin); err == nil {
		if k.fn, err = k.mod.function("gbx_nvfp4_linear"); err == nil {
			err = k.fn.setMaxDynamicShared(fp4SmemBytes)
		}
		if err != nil {
			_ = k.mod.unload()
		}
	}
	if err != nil {
		d.fp4Err = err
		return err
	}
	d.fp4 = k
	return nil
}

// fp4Linear enqueues an fp4 layer on the NVFP4 kernel: the input rounded to
// bf16 into conv, then y = x·(E2M1 × s_b × s_t)ᵀ + bias, then relu.
func (d *devState) fp4Linear(dl *devLayer, x, y, conv uint64, rows int, relu bool) error {
	n, k := dl.out, dl.in
	cnt := rows * k
	if err := d.launch1D("gbx_to_bf16", cnt/4, newArgs("gbx_to_bf16").ptr(x).ptr(conv).i64(cnt)); err != nil {
		return err
	}
	if err := d.markMid(); err != nil {
		return err
	}
	kp := (k + 15) / 16 * 16
	a := newArgs("gbx_nvfp4_linear").ptr(conv).ptr(dl.fp4Data).ptr(dl.fp4Scale).f32(dl.ts).ptr(dl.bias).ptr(y).
		i32(rows).i32(n).i32(k).i32(kp)
	grid := [3]uint32{uint32((n + fp4TileN - 1) / fp4TileN), uint32((rows + fp4TileM - 1) / fp4TileM), 1}
	if err := d.fp4.fn.launch(d.stream, grid, [3]uint32{fp4Threads, 1, 1}, fp4SmemBytes, a); err != nil {
		return err
	}
	if !relu {
		return nil
	}
	tot := rows * n
	return d.launch1D("gbx_scale_bias", tot, newArgs("gbx_scale_bias").ptr(y).ptr(0).ptr(0).ptr(0).i64(rows).i32(n).i32(1))
}
