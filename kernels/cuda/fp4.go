//go:build cgo

package cuda

import "errors"

// fp4Kernel is the weight-only NVFP4 × bf16 kernel of src/fp4_linear.cu.
type fp4Kernel struct {
	mod cuModule
	fn  cuFunc
}

// errNoFP4Kernel: the source is not in this build.
var errNoFP4Kernel = errors.New("cuda: src/fp4_linear.cu is not in this build")

// useFP4Kernel reports whether an fp4 layer of rows rows runs on the NVFP4
// kernel (small batches) rather than the dequantized-bf16 GEMM.
func (d *devState) useFP4Kernel(rows int) bool {
	if d.fp4SmallM < 0 || rows > d.fp4SmallM {
		return false
	}
	return d.loadFP4() == nil
}

// loadFP4 compiles and loads the NVFP4 kernel once.
func (d *devState) loadFP4() error {
	if d.fp4Tried {
		return d.fp4Err
	}
	d.fp4Tried = true
	d.fp4Err = errNoFP4Kernel
	return d.fp4Err
}

func (d *devState) fp4Linear(dl *devLayer, x, y, conv uint64, rows int, relu bool) error {
	return errNoFP4Kernel
}
