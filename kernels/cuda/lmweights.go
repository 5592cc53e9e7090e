//go:build cgo

package cuda

import (
	"fmt"
	"slices"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// lmKey names one language model's weights on the device at one precision.
type lmKey struct {
	m *lm.Model
	p precision.Format
}

// lmWeights are a language model's weights on the device at one precision,
// laid out as kernels/cpu's lmWeights (convertLM) holds them, in the
// precision's storage formats rather than widened to float32:
//
//	embed       the table in the activation format: f32 at fp32 and tf32,
//	            bf16 at bf16, fp8 and fp4, f16 at fp16
//	norms       f32 (attnNorm, mlpNorm, qNorm, kNorm, norm)
//	linears     lmLin, q/k/v and gate/up stacked along N
//	head        an lmLin at kernels.LMHeadFormat(p); a tied head shares the table
//	            except at tf32 (whose head is rounded, the table not)
//	invFreq     RoPE's inverse frequencies, lm.Config.InvFreq32
type lmWeights struct {
	p        precision.Format
	embed    uint64
	embedFmt fmtCode
	layers   []lmLayerW
	norm     uint64
	invFreq  uint64
	head     lmLin
	allocs   []uint64 // every allocation, freed by free
	bytes    uint64
}

// lmLayerW is one decoder layer's weights.
type lmLayerW struct {
	attnNorm, mlpNorm uint64
	qNorm, kNorm      uint64 // 0 unless qwen3
	qkv, o, gu, down  lmLin
}

// lmLin is a linear layer y = x·Wᵀ (+ bias) on the device, W [n, k] stored
// for precision f:
//
//	fp32       f32; tf32: f32 rounded to tf32 (RoundTF32)
//	bf16, fp16 bf16 / f16 bits
//	fp8        E4M3 bytes (QuantizeFP8PerChannel of each stacked tensor,
//	           margin 0), the per-channel scales in ws; where n or k is not
//	           a multiple of 16 (fp8F32) the E4M3 values as f32, for the
//	           fp32 GEMM
//	fp4        NVFP4 (QuantizeNVFP4 of each stacked tensor): packed E2M1
//	           in fp4Data, E4M3 block scales in fp4Scale (tiled where every
//	           stacked tensor is fp4Tileable: fp4Tiled), each channel's
//	           tensor scale in ws (one value per stacked tensor, repeated);
//	           and w holds E2M1 × block scale as bf16 (exact) for the bf16
//	           GEMM of large batches
type lmLin struct {
	f                 precision.Format
	n, k              int
	w, bias, ws       uint64
	fp4Data, fp4Scale uint64
	fp4Tiled          bool // fp4Data, fp4Scale in the NVFP4 kernel's tiled layout
	fp8F32            bool
}

// actFmt is the format a linear layer of format f reads its input in (the
// CPU's roundRows): tf32, bf16 (also for fp4's bf16 activations) or fp16
// rounding, per-row E4M3 for fp8 (its values as f32 for fp8F32 layers),
// f32 unchanged.
func (l *lmLin) actFmt() fmtCode {
	switch l.f {
	case precision.TF32:
		return fmtTF32
	case precision.BF16, precision.FP4:
		return fmtBF16
	case precision.FP16:
		return fmtF16
	case precision.FP8:
		if l.fp8F32 {
			return fmtE4M3F32
		}
		return fmtE4M3
	}
	return fmtF32
}

// tableFmt is the embedding table's storage at p: the activation format
// (kernels/cpu's roundTable: a lookup does no arithmetic).
func tableFmt(p precision.Format) fmtCode {
	switch p {
	case precision.BF16, precision.FP8, precision.FP4:
		return fmtBF16
	case precision.FP16:
		return fmtF16
	}
	return fmtF32
}

// dtypeFmt is the format of a checkpoint dtype.
func dtypeFmt(dtype string) (fmtCode, error) {
	switch dtype {
	case model.DTypeF32:
		return fmtF32, nil
	case model.DTypeBF16:
		return fmtBF16, nil
	case model.DTypeF16:
		return fmtF16, nil
	}
	return 0, fmt.Errorf("dtype %q is not F32, BF16 or F16", dtype)
}

// fmtSize is the bytes per element of a weight or activation format.
func fmtSize(f fmtCode) int {
	switch f {
	case fmtBF16, fmtF16:
		return 2
	case fmtE4M3, fmtU8:
		return 1
	}
	return 4
}

// lmSupported reports whether the CUDA kernels run m's shapes: the
// attention kernel takes head dims that are multiples of 8 up to
// attnMaxDim, and up to attnMaxGroup query heads per KV head. Errors wrap
// kernels.ErrUnsupported and name the config field.
func lmSupported(m *lm.Model) error {
	c := &m.Config
	switch {
	case c.HeadDim%8 != 0 || c.HeadDim > attnMaxDim:
		return fmt.Errorf("cuda: %w: model %q: head_dim %d (the CUDA attention kernel takes multiples of 8 up to %d)", kernels.ErrUnsupported, m.Name, c.HeadDim, attnMaxDim)
	case c.Heads/c.KVHeads > attnMaxGroup:
		return fmt.Errorf("cuda: %w: model %q: %d query heads per KV head (num_attention_heads %d / num_key_value_heads %d; the CUDA attention kernel takes up to %d)",
			kernels.ErrUnsupported, m.Name, c.Heads/c.KVHeads, c.Heads, c.KVHeads, attnMaxGroup)
	}
	return nil
}

// lmWeightsFor returns m's weights at p on the device, uploading them on
// first use.
func (d *devState) lmWeightsFor(m *lm.Model, p precision.Format) (*lmWeights, error) {
	k := lmKey{m, p}
	if w := d.lm.weights[k]; w != nil {
		return w, nil
	}
	start := time.Now()
	u := &lmUploader{d: d, w: &lmWeights{p: p}}
	err := u.model(m)
	if serr := d.stream.sync(); err == nil {
		err = serr
	}
	_ = cuFree(u.stage)
	if err != nil {
		d.freeLMWeights(u.w)
		return nil, fmt.Errorf("cuda: model %q: uploading %s weights: %w", m.Name, p, err)
	}
	d.lm.weights[k] = u.w
	d.log.Info().Str("model", m.Name).Str("precision", string(p)).Uint64("bytes", u.w.bytes).
		Dur("took", time.Since(start)).Dur("quantize", u.quantize).Msg("language-model weights uploaded")
	d.lmPreload(&m.Config, p)
	return u.w, nil
}

// freeLMWeights frees w's allocations (the stream must be idle or w unused
// by queued work: it syncs first).
func (d *devState) freeLMWeights(w *lmWeights) {
	_ = d.stream.sync()
	d.lm.dropGraphs()
	for _, p := range w.allocs {
		_ = cuFree(p)
	}
	w.allocs = nil
}

// evictLM frees m's weights at every precision.
func (d *devState) evictLM(m *lm.Model) {
	for k, w := range d.lm.weights {
		if k.m == m {
			d.freeLMWeights(w)
			delete(d.lm.weights, k)
		}
	}
}

// lmUploader uploads one model's weights: raw checkpoint bytes go to the
// device as stored and are converted there (fp32, tf32, bf16, fp16), through
// one staging buffer; fp8 and fp4 weights are quantized on the host, one
// tensor at a time, by package precision (the CPU emulation's bytes by
// construction).
type lmUploader struct {
	d        *devState
	w        *lmWeights
	stage    uint64
	stageCap int
	quantize time.Duration // spent quantizing on the host
}

// alloc allocates n bytes for w.
func (u *lmUploader) alloc(n int) (uint64, error) {
	p, err := cuMalloc(uint64(n))
	if err != nil {
		return 0, err
	}
	u.w.allocs = append(u.w.allocs, p)
	u.w.bytes += uint64(n)
	return p, nil
}

// put writes tensor t's elements to dst in format f: uploaded as they are
// when t is stored in f, else uploaded to the staging buffer and converted
// on the device.
func (u *lmUploader) put(t *model.RawTensor, dst uint64, f fmtCode) error {
	src, err := dtypeFmt(t.DType)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if src == f {
		return cuUpload(dst, t.Data)
	}
	if len(t.Data) > u.stageCap {
		if err := u.d.stream.sync(); err != nil {
			return err
		}
		_ = cuFree(u.stage)
		u.stage, u.stageCap = 0, 0
		p, err := cuMalloc(uint64(len(t.Data)))
		if err != nil {
			return err
		}
		u.stage, u.stageCap = p, len(t.Data)
	}
	// The staging buffer is rewritten by the next put: the conversion
	// queued on the stream must have read it first (a synchronous copy
	// does not wait for a non-blocking stream).
	if err := u.d.stream.sync(); err != nil {
		return err
	}
	if err := cuUpload(u.stage, t.Data); err != nil {
		return err
	}
	return u.d.k.lmConvert(u.d.stream, u.stage, src, dst, f, t.Len())
}

// vec uploads a vector (norm weights, biases) as f32; nil gives 0.
func (u *lmUploader) vec(t *model.RawTensor) (uint64, error) {
	if t == nil {
		return 0, nil
	}
	p, err := u.alloc(4 * t.Len())
	if err != nil {
		return 0, err
	}
	return p, u.put(t, p, fmtF32)
}

// model uploads all of m's weights at u.w.p.
func (u *lmUploader) model(m *lm.Model) error {
	if err := u.d.k.load(modLM); err != nil {
		return err
	}
	p, c, mw := u.w.p, &m.Config, &m.Weights
	w := u.w
	var err error
	w.embedFmt = tableFmt(p)
	if w.embed, err = u.alloc(mw.Embed.Len() * fmtSize(w.embedFmt)); err != nil {
		return err
	}
	if err := u.put(mw.Embed, w.embed, w.embedFmt); err != nil {
		return err
	}
	w.layers = make([]lmLayerW, len(mw.Layers))
	for i := range mw.Layers {
		l, lw := &mw.Layers[i], &w.layers[i]
		for _, v := range []struct {
			dst *uint64
			t   *model.RawTensor
		}{{&lw.attnNorm, l.AttnNorm}, {&lw.mlpNorm, l.MLPNorm}, {&lw.qNorm, l.QNorm}, {&lw.kNorm, l.KNorm}} {
			if *v.dst, err = u.vec(v.t); err != nil {
				return err
			}
		}
		for _, v := range []struct {
			dst  *lmLin
			lins []lm.Linear
		}{{&lw.qkv, []lm.Linear{l.Q, l.K, l.V}}, {&lw.o, []lm.Linear{l.O}}, {&lw.gu, []lm.Linear{l.Gate, l.Up}}, {&lw.down, []lm.Linear{l.Down}}} {
			if *v.dst, err = u.linear(p, v.lins); err != nil {
				return fmt.Errorf("layer %d: %w", i, err)
			}
		}
	}
	if w.norm, err = u.vec(mw.Norm); err != nil {
		return err
	}
	hf := kernels.LMHeadFormat(p)
	if mw.Head == mw.Embed && p != precision.TF32 {
		// Tied: the table is already in the head's format (f32, bf16 or
		// f16).
		w.head = lmLin{f: hf, n: c.Vocab, k: c.Hidden, w: w.embed}
	} else if w.head, err = u.linear(hf, []lm.Linear{{Weight: mw.Head}}); err != nil {
		return fmt.Errorf("head: %w", err)
	}
	if w.invFreq, err = u.alloc(4 * c.HeadDim / 2); err != nil {
		return err
	}
	return cuUpload(w.invFreq, f32Bytes(c.InvFreq32()))
}

// linear uploads the projections lins, which share their input, stacked
// along N into one lmLin at format f.
func (u *lmUploader) linear(f precision.Format, lins []lm.Linear) (lmLin, error) {
	k := lins[0].In()
	l := lmLin{f: f, k: k}
	for _, li := range lins {
		l.n += li.Out()
	}
	n := l.n
	var err error
	if lins[0].Bias != nil {
		if l.bias, err = u.alloc(4 * n); err != nil {
			return l, err
		}
		row := 0
		for _, li := range lins {
			if err := u.put(li.Bias, l.bias+uint64(4*row), fmtF32); err != nil {
				return l, err
			}
			row += li.Out()
		}
	}
	switch f {
	case precision.FP32, precision.TF32, precision.BF16, precision.FP16:
		wf := map[precision.Format]fmtCode{precision.FP32: fmtF32, precision.TF32: fmtTF32, precision.BF16: fmtBF16, precision.FP16: fmtF16}[f]
		es := fmtSize(wf)
		if l.w, err = u.alloc(n * k * es); err != nil {
			return l, err
		}
		row := 0
		for _, li := range lins {
			if err := u.put(li.Weight, l.w+uint64(row*k*es), wf); err != nil {
				return l, err
			}
			row += li.Out()
		}
		return l, nil
	case precision.FP8:
		return l, u.fp8(&l, lins)
	case precision.FP4:
		return l, u.fp4(&l, lins)
	}
	return l, fmt.Errorf("no weight layout for %q", f)
}

// fp8 quantizes and uploads lins per output channel into l.
func (u *lmUploader) fp8(l *lmLin, lins []lm.Linear) error {
	n, k := l.n, l.k
	l.fp8F32 = !fp8Aligned(n, k)
	es := 1
	if l.fp8F32 {
		es = 4
	}
	var err error
	if l.w, err = u.alloc(n * k * es); err != nil {
		return err
	}
	if l.ws, err = u.alloc(4 * n); err != nil {
		return err
	}
	row := 0
	for _, li := range lins {
		t := li.Weight
		start := time.Now()
		q, err := precision.QuantizeFP8PerChannel(t.Float32(nil), li.Out(), k, 0)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		data := q.Data
		if l.fp8F32 {
			v := make([]float32, len(q.Data))
			precision.DecodeE4M3Slice(v, q.Data, 1)
			data = f32Bytes(v)
		}
		u.quantize += time.Since(start)
		if err := cuUpload(l.w+uint64(row*k*es), data); err != nil {
			return err
		}
		if err := cuUpload(l.ws+uint64(4*row), f32Bytes(q.Scales)); err != nil {
			return err
		}
		row += li.Out()
	}
	return nil
}

// fp4 quantizes and uploads lins to NVFP4 (each with its own tensor scale)
// into l, and their block-scaled values as bf16.
func (u *lmUploader) fp4(l *lmLin, lins []lm.Linear) error {
	n, k := l.n, l.k
	kp := precision.PaddedCols(k, precision.NVFP4Block)
	var err error
	if l.fp4Data, err = u.alloc(n * kp / 2); err != nil {
		return err
	}
	if l.fp4Scale, err = u.alloc(n * kp / precision.NVFP4Block); err != nil {
		return err
	}
	if l.ws, err = u.alloc(4 * n); err != nil {
		return err
	}
	if l.w, err = u.alloc(2 * n * k); err != nil {
		return err
	}
	// Tiled if every stacked tensor is: a tensor of whole 16-row tiles
	// starting at a row that is a multiple of 16 has its units at the same
	// offsets as its rows.
	l.fp4Tiled = true
	for _, li := range lins {
		l.fp4Tiled = l.fp4Tiled && fp4Tileable(li.Out(), k)
	}
	row := 0
	for _, li := range lins {
		t, out := li.Weight, li.Out()
		start := time.Now()
		q, err := precision.QuantizeNVFP4(t.Float32(nil), out, k)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		bf16 := u16Bytes(nvfp4BlockScaledBF16(q))
		data, scales := q.Data, q.Scales
		if l.fp4Tiled {
			data, scales = tileNVFP4(data, scales, out, k)
		}
		u.quantize += time.Since(start)
		for _, c := range []struct {
			dst  uint64
			data []byte
		}{
			{l.fp4Data + uint64(row*kp/2), data},
			{l.fp4Scale + uint64(row*kp/precision.NVFP4Block), scales},
			{l.ws + uint64(4*row), f32Bytes(slices.Repeat([]float32{q.TensorScale}, out))},
			{l.w + uint64(2*row*k), bf16},
		} {
			if err := cuUpload(c.dst, c.data); err != nil {
				return err
			}
		}
		row += out
	}
	return nil
}
