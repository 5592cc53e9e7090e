//go:build cgo

package cuda

// useFP4Kernel reports whether an fp4 layer of rows rows runs on the NVFP4
// kernel (small batches: it reads 4.5-bit weights) rather than the
// dequantized-bf16 GEMM (large batches: cuBLASLt's tensor-core GEMM). The
// kernel's module is loaded the first time it is wanted; if that fails, fp4
// runs the GEMM.
func (d *devState) useFP4Kernel(rows int) bool {
	if d.fp4SmallM < 0 || rows > d.fp4SmallM {
		return false
	}
	return d.k.load(modFP4) == nil
}

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
	kp := (k + 15) / 16 * 16
	if err := d.k.nvfp4Linear(d.stream, conv, dl.fp4Data, dl.fp4Scale, dl.ts, dl.bias, y, rows, n, k, kp); err != nil {
		return err
	}
	if !relu {
		return nil
	}
	return d.k.scaleBias(d.stream, y, 0, 0, 0, rows, n, actReLU)
}
