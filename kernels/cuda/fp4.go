//go:build cgo

package cuda

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// fp4Geometry is the launch geometry of src/fp4_linear.cu, read from the
// LAUNCH comment at the top of that file (it is written and tuned
// separately; reading it keeps the two in step).
type fp4Geometry struct {
	threads      int // block size
	tileN, tileM int // output channels and batch rows per CTA
	smem         int // dynamic shared memory, bytes
}

var (
	reFP4Block = regexp.MustCompile(`block\s*=\s*\((\d+),\s*1,\s*1\)`)
	reFP4Grid  = regexp.MustCompile(`grid\s*=\s*\(ceil\(N\s*/\s*(\d+)\),\s*ceil\(M\s*/\s*(\d+)\),\s*1\)`)
	reFP4Smem  = regexp.MustCompile(`dynamic shared memory\s*=\s*(\d+)\s*bytes`)
)

// parseFP4Geometry reads the geometry from the kernel source's comment.
func parseFP4Geometry(src string) (fp4Geometry, error) {
	var g fp4Geometry
	b, gr, sm := reFP4Block.FindStringSubmatch(src), reFP4Grid.FindStringSubmatch(src), reFP4Smem.FindStringSubmatch(src)
	if b == nil || gr == nil || sm == nil {
		return g, errors.New("cuda: fp4_linear.cu: no LAUNCH geometry (block, grid, dynamic shared memory) in its header comment")
	}
	g.threads, _ = strconv.Atoi(b[1])
	g.tileN, _ = strconv.Atoi(gr[1])
	g.tileM, _ = strconv.Atoi(gr[2])
	g.smem, _ = strconv.Atoi(sm[1])
	if g.threads <= 0 || g.tileN <= 0 || g.tileM <= 0 || g.smem < 0 {
		return g, fmt.Errorf("cuda: fp4_linear.cu: bad LAUNCH geometry %+v", g)
	}
	return g, nil
}

// fp4Kernel is the loaded NVFP4 kernel.
type fp4Kernel struct {
	mod cuModule
	fn  cuFunc
	geo fp4Geometry
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
	geo, err := parseFP4Geometry(src)
	if err != nil {
		d.fp4Err = err
		return err
	}
	cubin, err := d.comp.compile("fp4_linear.cu", src, d.comp.options())
	if err != nil {
		d.fp4Err = err
		return err
	}
	k := &fp4Kernel{geo: geo}
	if k.mod, err = cuModuleLoad(cubin); err == nil {
		if k.fn, err = k.mod.function("gbx_nvfp4_linear"); err == nil {
			err = k.fn.setMaxDynamicShared(geo.smem)
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
	g := d.fp4.geo
	grid := [3]uint32{uint32((n + g.tileN - 1) / g.tileN), uint32((rows + g.tileM - 1) / g.tileM), 1}
	if err := d.fp4.fn.launch(d.stream, grid, [3]uint32{uint32(g.threads), 1, 1}, uint32(g.smem), a); err != nil {
		return err
	}
	if !relu {
		return nil
	}
	tot := rows * n
	return d.launch1D("gbx_scale_bias", tot, newArgs("gbx_scale_bias").ptr(y).ptr(0).ptr(0).ptr(0).i64(rows).i32(n).i32(1))
}
