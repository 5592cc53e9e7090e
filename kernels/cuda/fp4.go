//go:build cgo

package cuda

import "fmt"

// useFP4Kernel reports whether an fp4 layer of n × k weights (tiled: in the
// NVFP4 kernels' tiled layout) runs on an NVFP4 kernel at rows rows (it
// reads 4.5-bit weights): the small-batch kernel up to FP4SmallM rows, the
// wide one up to FP4WideM (fp4Wide); otherwise the dequantized-bf16 GEMM
// (cuBLASLt's tensor-core GEMM). The kernels' module is loaded the first
// time it is wanted; if that fails, fp4 runs the GEMM.
func (d *devState) useFP4Kernel(rows, n, k int, tiled bool) bool {
	if !d.fp4Small(rows) && !d.fp4Wide(rows, n, k, tiled) {
		return false
	}
	return d.k.load(modFP4) == nil
}

// fp4Small reports whether rows rows take the small-batch NVFP4 kernel.
func (d *devState) fp4Small(rows int) bool { return d.fp4SmallM >= 0 && rows <= d.fp4SmallM }

// fp4Wide reports whether rows rows of an n × k layer of tiled weights take
// the wide NVFP4 kernel: past the small-batch kernel, up to FP4WideM, a
// layer of at least FP4WideMinWeights weights, on compute capability 9.0
// (its wgmma needs sm_90a).
func (d *devState) fp4Wide(rows, n, k int, tiled bool) bool {
	return tiled && !d.fp4Small(rows) && rows <= d.fp4WideM && int64(n)*int64(k) >= d.fp4WideMinW && d.sm90a()
}

// fp4Kernels reports whether some batch may run an NVFP4 kernel: a batch
// of one row the small-batch kernel, or, tiled weights allowing, some
// batch the wide one (fp4Small, fp4Wide).
func (d *devState) fp4Kernels(tiled bool) bool {
	return d.fp4Small(1) || tiled && d.fp4WideM > max(d.fp4SmallM, 0) && d.sm90a()
}

// sm90a reports whether the device takes sm_90a's wgmma (compute
// capability 9.0).
func (d *devState) sm90a() bool { return d.info.Major == 9 && d.info.Minor == 0 }

// fp4Linear enqueues an fp4 layer on the NVFP4 kernel: the input rounded to
// bf16 into conv, then y = x·(E2M1 × s_b × s_t)ᵀ + bias, then relu.
func (d *devState) fp4Linear(dl *devLayer, x, y, conv uint64, rows int, relu bool) error {
	n, k := dl.out, dl.in
	if err := d.k.toBF16(d.stream, x, conv, rows*k); err != nil {
		return err
	}
	if err := d.markMid(); err != nil {
		return err
	}
	if err := d.nvfp4(conv, dl.fp4Data, dl.fp4Scale, dl.ts, 0, dl.bias, y, rows, n, k, dl.fp4Tiled); err != nil {
		return err
	}
	if !relu {
		return nil
	}
	return d.k.scaleBias(d.stream, y, 0, 0, 0, rows, n, actReLU)
}

// nvfp4 enqueues y [rows, n] = x·(E2M1 × s_b × s_t)ᵀ + bias on the NVFP4
// kernel: x bf16 [rows, k]; w, ws the packed codes and block scales (tiled:
// in the kernel's tiled layout, tileNVFP4); the tensor scale ts, or one a
// channel in tsv (if not 0).
func (d *devState) nvfp4(x, w, ws uint64, ts float32, tsv, bias, y uint64, rows, n, k int, tiled bool) error {
	if tiled && x%16 != 0 {
		return fmt.Errorf("cuda: NVFP4 kernel: operand at %#x, want 16-byte alignment for the tiled layout", x)
	}
	if !d.fp4Wide(rows, n, k, tiled) {
		return d.k.nvfp4Gemm(d.stream, x, w, ws, ts, tsv, bias, y, rows, n, k, tiled)
	}
	// The wide kernel's partial sums go to cuBLASLt's workspace: the same
	// stream, read back by nvfp4WideSum before any later GEMM runs.
	z := d.k.fp4WideSplits(rows, n, k, workspaceBytes)
	if err := d.k.nvfp4GemmWide(d.stream, x, w, ws, ts, tsv, bias, y, d.workspace, rows, n, k, z); err != nil || z == 1 {
		return err
	}
	return d.k.nvfp4WideSum(d.stream, d.workspace, ts, tsv, bias, y, rows, n, z)
}

// fp4Tileable reports whether an n × k NVFP4 weight is stored in the
// kernel's tiled layout: whole 16-row tiles and whole chunks of 128
// columns, the shapes of the kernel's fast path.
func fp4Tileable(n, k int) bool { return n%16 == 0 && k%128 == 0 && n > 0 && k > 0 }

// tileNVFP4 returns the row-major NVFP4 codes data [n, k/2] and block
// scales [n, k/16] of an fp4Tileable weight in the kernel's tiled layout
// (gbx_nvfp4_gemm_tiled in src/fp4_linear.cu, docs/cuda.md): for each
// 16-row tile and chunk of 128 columns in turn, the tile's rows' 64 code
// bytes of the chunk one after another (1,024 bytes), and likewise their 8
// scale bytes (128). A warp's copy instruction then reads 512 contiguous
// bytes where row-major it read 64 from each of eight rows.
func tileNVFP4(data, scales []byte, n, k int) (td, ts []byte) {
	nc := k / 128
	td, ts = make([]byte, len(data)), make([]byte, len(scales))
	for r := range n {
		tile, i := r/16, r%16
		for c := range nc {
			u := tile*nc + c
			copy(td[u*1024+i*64:][:64], data[r*k/2+c*64:][:64])
			copy(ts[u*128+i*8:][:8], scales[r*k/16+c*8:][:8])
		}
	}
	return td, ts
}
