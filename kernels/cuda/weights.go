//go:build cgo

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/gearbox-inference/gearbox/internal/par"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// weightKey names one model's weights at one precision.
type weightKey struct {
	m *model.Model
	p precision.Format
}

// devWeights is a model's parameters on the device at one precision, by
// layer index.
type devWeights struct {
	layers []devLayer
	bytes  uint64
}

// devLayer is one layer's parameters on the device. For a linear layer w is
// the weight [N, K] in the precision's layout:
//
//	fp32  float32
//	tf32  float32 rounded to tf32 (RoundTF32)
//	bf16  bf16 bits; fp16: fp16 bits
//	fp8   E4M3 bytes with one float32 scale per row in wscale
//	      (QuantizeFP8PerChannel, margin 0); when K or N is not a multiple
//	      of 16 (cuBLASLt's fp8 kernels need it) the E4M3 values as float32
//	fp4   NVFP4 (QuantizeNVFP4): packed E2M1 in fp4Data, E4M3 block scales in
//	      fp4Scales (in the kernel's tiled layout where fp4Tileable, fp4Tiled
//	      set), the tensor scale in ts; and, for the GEMM path, w holds
//	      the block-scaled values E2M1 × s_b as bf16 (exact: at most 6
//	      significant bits), multiplied by ts in the GEMM's alpha
//
// Norm layers keep their weight and bias as float32 in w and bias.
type devLayer struct {
	op        model.Op
	in, out   int
	w         uint64
	wscale    uint64 // fp8: per-row scales [N] (per-tensor bench variant: [1])
	bias      uint64
	ts        float32 // fp4 tensor scale
	fp4Data   uint64
	fp4Scale  uint64
	fp4Tiled  bool // fp4Data, fp4Scale in the NVFP4 kernel's tiled layout (tileNVFP4)
	fp8F32    bool // fp8 weights stored as float32 E4M3 values (unaligned shapes)
	perTensor bool // fp8 bench variant: one weight scale
	eps       float64
}

// weightsFor returns m's weights at p on the device, uploading them on
// first use.
func (d *devState) weightsFor(m *model.Model, p precision.Format) (*devWeights, error) {
	k := weightKey{m, p}
	if w := d.weights[k]; w != nil {
		return w, nil
	}
	w := &devWeights{layers: make([]devLayer, len(m.Layers))}
	d.weights[k] = w
	for i := range m.Layers {
		if err := d.uploadLayer(w, &w.layers[i], &m.Layers[i], p, false); err != nil {
			d.freeWeights(k)
			return nil, fmt.Errorf("cuda: model %q layer %d: uploading %s weights: %w", m.Name, i, p, err)
		}
	}
	if p == precision.FP4 && d.fp4Kernels(false) { // a tensor model's fp4 weights are row-major
		// The NVFP4 kernel's module with the weights, not in the first
		// small batch (a compile of seconds); if it fails, that batch runs
		// the bf16 GEMM as before.
		_ = d.k.load(modFP4)
	}
	return w, nil
}

// upload copies b to a new device allocation.
func (d *devState) upload(w *devWeights, b []byte) (uint64, error) {
	p, err := cuMalloc(uint64(len(b)))
	if err != nil {
		return 0, err
	}
	if err := cuUpload(p, b); err != nil {
		_ = cuFree(p)
		return 0, err
	}
	w.bytes += uint64(len(b))
	return p, nil
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func u16Bytes(x []uint16) []byte {
	b := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

// fp8Aligned reports whether cuBLASLt's fp8 GEMM takes a [N, K] weight.
func fp8Aligned(n, k int) bool { return n%16 == 0 && k%16 == 0 }

// uploadLayer converts and uploads one layer's parameters (into dl, whose
// allocations w accounts for). perTensor selects the per-tensor fp8 weight
// scale (benchmarks).
func (d *devState) uploadLayer(w *devWeights, dl *devLayer, l *model.Layer, p precision.Format, perTensor bool) error {
	*dl = devLayer{op: l.Op, in: l.In, out: l.Out, eps: l.Eps}
	var err error
	if l.Bias != nil {
		if dl.bias, err = d.upload(w, f32Bytes(l.Bias.Data)); err != nil {
			return err
		}
	}
	if l.Op != model.Linear {
		if l.Weight != nil {
			dl.w, err = d.upload(w, f32Bytes(l.Weight.Data))
		}
		return err
	}
	src := l.Weight.Data
	switch p {
	case precision.FP32:
		dl.w, err = d.upload(w, f32Bytes(src))
	case precision.TF32:
		t := make([]float32, len(src))
		precision.RoundTF32Slice(t, src)
		dl.w, err = d.upload(w, f32Bytes(t))
	case precision.BF16, precision.FP16:
		h := make([]uint16, len(src))
		if p == precision.BF16 {
			precision.EncodeBF16Slice(h, src)
		} else {
			precision.EncodeFP16Slice(h, src)
		}
		dl.w, err = d.upload(w, u16Bytes(h))
	case precision.FP8:
		var q *precision.FP8Tensor
		if perTensor {
			q, err = precision.QuantizeFP8PerTensor(src, l.Out, l.In, 0)
		} else {
			q, err = precision.QuantizeFP8PerChannel(src, l.Out, l.In, 0)
		}
		if err != nil {
			return err
		}
		dl.perTensor = perTensor
		if fp8Aligned(l.Out, l.In) {
			dl.w, err = d.upload(w, q.Data)
		} else {
			dl.fp8F32 = true
			v := make([]float32, len(q.Data))
			precision.DecodeE4M3Slice(v, q.Data, 1)
			dl.w, err = d.upload(w, f32Bytes(v))
		}
		if err == nil {
			dl.wscale, err = d.upload(w, f32Bytes(q.Scales))
		}
	case precision.FP4:
		q, qerr := precision.QuantizeNVFP4(src, l.Out, l.In)
		if qerr != nil {
			return qerr
		}
		dl.ts = q.TensorScale
		data, scales := q.Data, q.Scales
		if dl.fp4Tiled = fp4Tileable(l.Out, l.In); dl.fp4Tiled {
			data, scales = tileNVFP4(data, scales, l.Out, l.In)
		}
		if dl.fp4Data, err = d.upload(w, data); err != nil {
			return err
		}
		if dl.fp4Scale, err = d.upload(w, scales); err != nil {
			return err
		}
		dl.w, err = d.upload(w, u16Bytes(nvfp4BlockScaledBF16(q)))
	default:
		return fmt.Errorf("no weight layout for %q", p)
	}
	return err
}

// nvfp4BlockScaledBF16 returns q's values without the tensor scale, E2M1 ×
// s_b, as bf16 bits [Rows, Cols]. Each is exact in bf16 (a 2-bit times a
// 4-bit significand), so the bf16 GEMM with alpha = TensorScale computes
// Σ x·(e·s_b)·s_t where the CPU computes Σ x·((e·s_b)·s_t): the same
// products up to one float32 rounding of each weight.
func nvfp4BlockScaledBF16(q *precision.NVFP4) []uint16 {
	pc := q.PaddedCols()
	out := make([]uint16, q.Rows*q.Cols)
	par.For(q.Rows, max(1, (1<<16)/max(q.Cols, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			data := q.Data[r*pc/2 : (r+1)*pc/2]
			scales := q.Scales[r*pc/precision.NVFP4Block : (r+1)*pc/precision.NVFP4Block]
			for c := range q.Cols {
				nib := data[c/2] >> (4 * (c % 2)) & 0xf
				v := precision.DecodeE2M1(nib) * precision.DecodeE4M3(scales[c/precision.NVFP4Block])
				out[r*q.Cols+c] = precision.EncodeBF16(v)
			}
		}
	})
	return out
}

// freeWeights frees the weights of key k.
func (d *devState) freeWeights(k weightKey) {
	w := d.weights[k]
	if w == nil {
		return
	}
	_ = d.stream.sync()
	d.dropGraphs(k.m)
	for _, l := range w.layers {
		for _, p := range []uint64{l.w, l.wscale, l.bias, l.fp4Data, l.fp4Scale} {
			_ = cuFree(p)
		}
	}
	delete(d.weights, k)
}

// evict frees m's weights at every precision.
func (d *devState) evict(m *model.Model) {
	for k := range d.weights {
		if k.m == m {
			d.freeWeights(k)
		}
	}
}
