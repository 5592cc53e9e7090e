//go:build cgo

package cuda

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// Scratch budgets of a step: attention's per-split partial results and the
// logits are computed in chunks of rows that fit these (variables for the
// tests, which shrink them to force many chunks).
var (
	attnScratchBytes = 64 << 20
	logitsBytes      = 256 << 20
)

// lmState is the language-model state of a device, owned by the device
// goroutine: weights by (model, precision), the step buffers (grown as
// steps need), the open KV caches and the decode steps' CUDA graphs
// (lmgraph.go).
type lmState struct {
	weights  map[lmKey]*lmWeights
	caches   map[*kvCache]bool
	bufs     lmBufs
	graphs   map[lmGraphKey]*lmGraph
	seen     map[lmGraphKey]int // eager decode steps per shape; -1: capture failed
	graphErr error              // the last capture failure, for tests
	replays  int                // decode steps run from a graph, for tests
}

func newLMState() lmState {
	return lmState{weights: map[lmKey]*lmWeights{}, caches: map[*kvCache]bool{}, graphs: map[lmGraphKey]*lmGraph{}, seen: map[lmGraphKey]int{}}
}

// close frees everything (the device is closing).
func (s *lmState) close(d *devState) {
	_ = d.stream.sync()
	s.dropGraphs()
	for k, w := range s.weights {
		d.freeLMWeights(w)
		delete(s.weights, k)
	}
	for c := range s.caches {
		_ = cuFree(c.ptr)
		c.ptr = 0
		delete(s.caches, c)
	}
	s.bufs.free()
}

// devBuf is a device buffer that grows.
type devBuf struct {
	p uint64
	n int
}

// hostBuf is a pinned host buffer that grows.
type hostBuf struct {
	h pinned
}

// lmBufs are the buffers of a step, each grown to the largest step seen.
type lmBufs struct {
	hdr                     devBuf // the packed plan
	x, f, cv, xs, g, out    devBuf // activations (see lmRun)
	part, logits, lse, outs devBuf
	lpPart                  devBuf // gbx_lm_logprobs_part's chunks of the head's rows
	hdrHost, outHost        hostBuf
}

func (b *lmBufs) free() {
	for _, p := range []*devBuf{&b.hdr, &b.x, &b.f, &b.cv, &b.xs, &b.g, &b.out, &b.part, &b.logits, &b.lse, &b.outs, &b.lpPart} {
		_ = cuFree(p.p)
		*p = devBuf{}
	}
	for _, h := range []*hostBuf{&b.hdrHost, &b.outHost} {
		_ = h.h.free()
		*h = hostBuf{}
	}
}

// grow makes b hold at least n bytes (rounded up to 1 MiB, and at least
// 1.5× its old size, so a growing workload reallocates rarely).
func (d *devState) grow(b *devBuf, n int) error {
	if n <= b.n {
		return nil
	}
	n = max(roundMiB(n), b.n*3/2)
	_ = d.stream.sync()
	d.lm.dropGraphs()
	_ = cuFree(b.p)
	*b = devBuf{}
	p, err := cuMalloc(uint64(n))
	if err != nil {
		return err
	}
	*b = devBuf{p, n}
	return nil
}

// growHost makes h hold at least n bytes.
func (d *devState) growHost(h *hostBuf, n int) error {
	if n <= h.h.n {
		return nil
	}
	n = max(roundMiB(n), h.h.n*3/2)
	_ = d.stream.sync()
	d.lm.dropGraphs()
	_ = h.h.free()
	h.h = pinned{}
	p, err := cuMallocHost(n)
	if err != nil {
		return err
	}
	h.h = p
	return nil
}

func roundMiB(n int) int { return (n + 1<<20 - 1) &^ (1<<20 - 1) }

// at is the pinned memory from byte off on (for copies into part of h).
func (h pinned) at(off int) pinned { return pinned{unsafe.Add(h.p, off), h.n - off} }

// bytes is h's memory as a byte slice.
func (h pinned) bytes() []byte { return unsafe.Slice((*byte)(h.p), h.n) }

// lmRun is one step's device addresses and its downloads.
type lmRun struct {
	pl  *lmPlan
	lay planLayout
	hdr uint64 // the packed plan on the device
	// x [rows, hidden]: the residual stream; f [rows, max(hidden, qDim,
	// intermediate)]: a norm's fp32 output, attention's output, SiLU's
	// output; cv: the same converted for the next linear layer; xs [rows]:
	// fp8 activation scales; g [rows, max(qkv, 2·intermediate)]: q/k/v and
	// gate/up; out [rows, hidden]: o_proj's and down_proj's output, added
	// to x by the next norm.
	x, f, cv, xs, g, out uint64
	part                 uint64 // attention's partial results
	attnRows             int    // rows per attention launch
	logits               uint64 // [headRows, vocab]
	headRows             int    // logit rows per head launch
	lse                  uint64 // [nLogit] float64
	amax                 uint64 // [nLogit] int32: each logit row's argmax, after lse in its buffer
	lpPart               uint64 // gbx_lm_logprobs_part's scratch for headRows rows
	// outs: the sampled tokens, their log-probabilities, the
	// alternatives and the teacher-forced log-probabilities (outLayout).
	outs    uint64
	outCap  int
	host    pinned
	hidden  []int // per sequence: where its hidden state lands in host, or -1
	logitAt []int // per sequence: where its logits land in host, or -1
}

// outLayout is where gbx_lm_sample's and gbx_lm_logprobs' outputs are in
// the outs buffer, for capacity c (sequences and logit rows): tok [c] int32,
// tokLp [c], topIDs [c·maxTop] int32, topLp [c·maxTop], lp [c].
func outLayout(c int) (tok, tokLp, topIDs, topLp, lp, size int) {
	return 0, 4 * c, 8 * c, 8*c + 4*maxTop*c, 8*c + 8*maxTop*c, 12*c + 8*maxTop*c
}

// lmStep runs one planned step of m at p over kv: from a CUDA graph when
// a decode step of its shape has been captured, else eagerly.
func (d *devState) lmStep(ctx context.Context, m *lm.Model, p precision.Format, kv *kvCache, pl *lmPlan) ([]kernels.SeqOut, error) {
	key, decode := lmGraphKeyOf(m, p, kv, pl)
	if decode {
		if outs, ok, err := d.lmGraphStep(key, &m.Config, pl); ok {
			return outs, err
		}
	}
	w, err := d.lmWeightsFor(m, p)
	if err != nil {
		return nil, err
	}
	r, err := d.lmPrepare(m, pl)
	if err != nil {
		return nil, err
	}
	if err := d.lmEnqueue(ctx, m, w, kv, r); err != nil {
		_ = d.stream.sync()
		return nil, err
	}
	if err := d.stream.sync(); err != nil {
		return nil, err
	}
	outs := r.outputs(&m.Config)
	if decode {
		d.lmAfterEager(key, m, w, kv, r)
	}
	return outs, nil
}

// lmPrepare sizes the step's buffers and fills the pinned copy of the plan.
func (d *devState) lmPrepare(m *lm.Model, pl *lmPlan) (*lmRun, error) {
	c := &m.Config
	b := &d.lm.bufs
	rows := pl.rows
	wide := max(c.Hidden, c.QDim(), c.Intermediate)
	lay := pl.layout()
	r := &lmRun{pl: pl, lay: lay}
	heads := c.Heads
	r.attnRows = min(rows, 65535)
	partBytes := 0
	if pl.maxSplits > 1 {
		perRow := heads * pl.maxSplits * (c.HeadDim + 2) * 4
		r.attnRows = min(r.attnRows, max(1, attnScratchBytes/perRow))
		partBytes = r.attnRows * perRow
	}
	nl := pl.nLogit
	r.headRows = max(1, min(nl, logitsBytes/(4*c.Vocab)))
	r.outCap = max(len(pl.sRow), nl, 1)
	_, _, _, _, _, outSize := outLayout(r.outCap)
	// Host: the outputs, then each hidden state and logits row asked for.
	hostSize := outSize
	r.hidden, r.logitAt = make([]int, len(pl.outs)), make([]int, len(pl.outs))
	for s, o := range pl.outs {
		r.hidden[s], r.logitAt[s] = -1, -1
		if o.want&kernels.WantHidden != 0 {
			r.hidden[s] = hostSize
			hostSize += 4 * c.Hidden
		}
		if o.want&kernels.WantLogits != 0 {
			r.logitAt[s] = hostSize
			hostSize += 4 * c.Vocab * (1 + o.rowsN)
		}
	}
	for _, g := range []struct {
		b *devBuf
		n int
	}{
		{&b.hdr, lay.size}, {&b.x, 4 * rows * c.Hidden}, {&b.f, 4 * rows * wide}, {&b.cv, 4 * rows * wide},
		{&b.xs, 4 * rows}, {&b.g, 4 * rows * max(c.QDim()+2*c.KVDim(), 2*c.Intermediate)}, {&b.out, 4 * rows * c.Hidden},
		{&b.part, max(partBytes, lmSiLUAmaxBytes)}, {&b.logits, 4 * r.headRows * c.Vocab}, {&b.lse, 12 * max(nl, 1)}, {&b.outs, outSize},
		{&b.lpPart, logprobsPartBytes(r.headRows, c.Vocab)},
	} {
		if err := d.grow(g.b, g.n); err != nil {
			return nil, err
		}
	}
	if err := d.growHost(&b.hdrHost, lay.size); err != nil {
		return nil, err
	}
	if err := d.growHost(&b.outHost, hostSize); err != nil {
		return nil, err
	}
	pl.packInto(b.hdrHost.h.bytes(), lay)
	r.hdr, r.x, r.f, r.cv, r.xs, r.g, r.out = b.hdr.p, b.x.p, b.f.p, b.cv.p, b.xs.p, b.g.p, b.out.p
	r.part, r.logits, r.lse, r.outs, r.host = b.part.p, b.logits.p, b.lse.p, b.outs.p, b.outHost.h
	r.amax, r.lpPart = r.lse+uint64(8*nl), b.lpPart.p
	return r, nil
}

// at is the device address of the plan array at byte offset off.
func (r *lmRun) at(off int) uint64 { return r.hdr + uint64(off) }

// lmEnqueue queues the step on the stream: the plan's upload, the
// embedding, every layer, the final norm and head of the rows that need
// them, log-probabilities and sampling, and the downloads. ctx is checked
// between layers.
func (d *devState) lmEnqueue(ctx context.Context, m *lm.Model, w *lmWeights, kv *kvCache, r *lmRun) error {
	c, pl, k, s := &m.Config, r.pl, d.k, d.stream
	rows, hid, qd, kvd, inter := pl.rows, c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	if err := s.htodAsync(r.hdr, d.lm.bufs.hdrHost.h, r.lay.size); err != nil {
		return err
	}
	if err := k.lmEmbed(s, w.embed, w.embedFmt, r.at(r.lay.tokens), r.x, rows, hid); err != nil {
		return err
	}
	rope := ropeArgs{
		qkv: r.g, stride: qd + 2*kvd, eps: c.RMSEps, invFreq: w.invFreq, pos: r.at(r.lay.pos), seq: r.at(r.lay.seq),
		btOff: r.at(r.lay.btOff), blocks: r.at(r.lay.blocks), cache: kv.ptr, cacheFmt: kv.f, kvScale: kv.scale, layers: c.Layers,
		heads: c.Heads, kvHeads: c.KVHeads, dim: c.HeadDim,
	}
	attn := attnArgs{
		qkv: r.g, stride: qd + 2*kvd, cache: kv.ptr, cacheFmt: kv.f, kvScale: kv.scale, layers: c.Layers, kvHeads: c.KVHeads,
		group: c.Heads / c.KVHeads, dim: c.HeadDim, pos: rope.pos, seq: rope.seq, btOff: rope.btOff, blocks: rope.blocks,
		split: r.at(r.lay.split), scale: float32(1 / math.Sqrt(float64(c.HeadDim))), partO: r.part,
		partML: r.part + uint64(4*r.attnRows*c.Heads*pl.maxSplits*c.HeadDim), maxSplits: pl.maxSplits, out: r.f, outStride: qd,
		pfForm: d.attnPrefillForm,
	}
	// Unless Config.NoPrefillAttention (LMBench.NoAttnPrefill): a step's
	// prefill chunks (after its decode rows, if any) over a BF16 or E4M3
	// cache attend on gbx_attn_prefill (mma.sync, ldmatrix and cp.async:
	// compute capability 8.0; its wgmma form on 9.0), the decode rows
	// [0, from) on the decode kernels.
	var from int
	prefill := d.prefillAttnFor(c, kv.f)
	if prefill {
		from, prefill = pl.prefillFrom()
		if prefill {
			if err := d.k.load(modAttnPrefill); err != nil {
				// Not fatal: the decode kernels serve prompts too, slower.
				d.log.Warn().Err(err).Msg("prefill attention unavailable: prompts attend on the decode kernels")
				d.attnPrefill, prefill = false, false
			}
		}
	}
	decRows := rows // the rows on the decode kernels
	if prefill {
		decRows = from
	}
	if !d.attnPartial {
		mma := d.attnMMA()
		if mma {
			if err := k.load(modAttnMMA); err != nil {
				return fmt.Errorf("cuda: model %q: %w", m.Name, err)
			}
		}
		attn.dec = k.attnKernel(mma, kv.f, c.HeadDim, c.Heads/c.KVHeads)
		// A step that feeds a sequence several rows (more rows than
		// sequences) attends them grouped: the same bits, fewer loads.
		if kr := k.attnRowsKernel(kv.f, c.HeadDim, c.Heads/c.KVHeads); mma && kr != nil && !prefill && pl.rows > len(pl.btOff) {
			attn.dec = kr
		} else if kp := k.attnPFKernel(kv.f, c.HeadDim, c.Heads/c.KVHeads); mma && kp != nil &&
			decRows*c.KVHeads*pl.maxSplits <= attnPFBlocks(kv.f)*d.info.SMs {
			// A launch of few blocks: the same bits, the next block's loads
			// in flight while the warp attends the current one.
			attn.dec = kp
		} else if kr := k.attnRingKernel(kv.f, c.HeadDim, c.Heads/c.KVHeads); mma && kr != nil && d.info.Major >= 9 &&
			(d.attnRing > 0 || d.attnRing == 0 && decRows*c.KVHeads*pl.maxSplits > attnRingMinBlocks*d.info.SMs) {
			// The same bits, more KV blocks in flight (bulk copies, sm_90).
			attn.dec = kr
		}
	}
	// Between layers: the previous block's output, added to x by the next
	// norm, and its epilogue, which that norm applies.
	var delta uint64
	var deltaEpi lmEpi
	for l := range w.layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		L := &w.layers[l]
		fail := func(op string, err error) error {
			return fmt.Errorf("cuda: model %q layer %d (%s, %s): %w", m.Name, l, op, w.p, err)
		}
		in, err := d.lmNormTo(r, L.qkv.actFmt(), delta, deltaEpi, L.attnNorm, 0, rows, hid, c.RMSEps)
		if err != nil {
			return fail("attention norm", err)
		}
		// Each linear layer's epilogue (scales, bias) is left to the kernel
		// that reads its output, except the last layer's down projection,
		// which the head's norm reads by row index.
		if rope.epi, err = d.lmLinear(&L.qkv, in, r.xs, r.g, rows, true); err != nil {
			return fail("q/k/v projection", err)
		}
		rope.qNorm, rope.kNorm, rope.layer = L.qNorm, L.kNorm, l
		if err := k.lmRope(s, rows, rope); err != nil {
			return fail("rope", err)
		}
		attn.layer = l
		oFmt := L.o.actFmt()
		attn.yq, attn.yqFmt = 0, oFmt
		fused := (attn.dec != nil || prefill && decRows == 0) && (oFmt == fmtTF32 || oFmt == fmtBF16 || oFmt == fmtF16)
		if fused {
			attn.yq = r.cv // attention writes the o projection's operand itself
		}
		err = d.lmAttentionFrom(0, decRows, r.attnRows, attn)
		if err == nil && prefill {
			err = d.k.attnPrefill(s, decRows, rows-decRows, attn)
		}
		if err != nil {
			return fail("attention", err)
		}
		in = r.cv
		if !fused {
			if in, err = d.lmQuantTo(r, oFmt, r.f, rows, qd); err != nil {
				return fail("attention output", err)
			}
		}
		oEpi, err := d.lmLinear(&L.o, in, r.xs, r.out, rows, true)
		if err != nil {
			return fail("o projection", err)
		}
		if in, err = d.lmNormTo(r, L.gu.actFmt(), r.out, oEpi, L.mlpNorm, 0, rows, hid, c.RMSEps); err != nil {
			return fail("mlp norm", err)
		}
		guEpi, err := d.lmLinear(&L.gu, in, r.xs, r.g, rows, true)
		if err != nil {
			return fail("gate/up projection", err)
		}
		if in, err = d.lmSiLUTo(r, guEpi, L.down.actFmt(), rows, inter); err != nil {
			return fail("silu", err)
		}
		if deltaEpi, err = d.lmLinear(&L.down, in, r.xs, r.out, rows, l+1 < len(w.layers)); err != nil {
			return fail("down projection", err)
		}
		delta = r.out
	}
	if err := d.lmOutputs(m, w, r); err != nil {
		return fmt.Errorf("cuda: model %q (head and outputs, %s): %w", m.Name, w.p, err)
	}
	return nil
}

// lmNormTo runs the norm of rows rows of x (rowIdx: which, or 0 for the
// first rows; delta, with its epilogue de, added first) into r.f and, in
// format f, the operand of the next linear layer; it returns the operand's
// address (r.f itself for f32).
func (d *devState) lmNormTo(r *lmRun, f fmtCode, delta uint64, de lmEpi, w, rowIdx uint64, rows, cols int, eps float64) (uint64, error) {
	yq := r.cv
	if f == fmtF32 {
		yq = r.f
	}
	return yq, d.k.lmNorm(d.stream, r.x, delta, de, w, rowIdx, r.f, yq, f, r.xs, rows, cols, eps, d.margin)
}

// lmQuantTo converts rows rows of src [rows, cols] to format f into r.cv
// and returns the operand's address (src itself for f32).
func (d *devState) lmQuantTo(r *lmRun, f fmtCode, src uint64, rows, cols int) (uint64, error) {
	if f == fmtF32 {
		return src, nil
	}
	return r.cv, d.k.quantRows(d.stream, src, r.cv, f, r.xs, rows, cols, d.margin)
}

// lmSiLUTo writes SiLU(gate)·up of r.g (with its epilogue e) into r.f
// and, in format f, the down projection's operand; it returns the
// operand's address (r.f itself for f32).
func (d *devState) lmSiLUTo(r *lmRun, e lmEpi, f fmtCode, rows, inter int) (uint64, error) {
	yq := r.cv
	if f == fmtF32 {
		yq = r.f
	}
	// The scratch for a split row's fp8 maxima is attention's: free until
	// the next layer's attention.
	return yq, d.k.lmSiLURows(d.stream, r.g, e, r.f, yq, f, r.xs, r.part, rows, inter, d.margin)
}

// lmAttention runs attention for rows rows, chunk rows per launch (as many
// as the partial results' scratch holds).
func (d *devState) lmAttention(rows, chunk int, a attnArgs) error {
	return d.lmAttentionFrom(0, rows, chunk, a)
}

// lmAttentionFrom is lmAttention for rows [from, to).
func (d *devState) lmAttentionFrom(from, to, chunk int, a attnArgs) error {
	for row0 := from; row0 < to; row0 += chunk {
		n := min(chunk, to-row0)
		if err := d.k.attnPartial(d.stream, row0, n, a); err != nil {
			return err
		}
		if a.maxSplits > 1 {
			if err := d.k.attnReduce(d.stream, row0, n, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// lmLinear enqueues y [rows, l.n] = x·Wᵀ + bias for x in l.actFmt() (xs:
// its per-row fp8 scales). What the GEMM does not apply itself (fp8's
// scales below fp8OuterVecMinRows rows, fp4's per-channel scales on the
// bf16 GEMM, a bias cuBLASLt could not fuse) it returns for the next
// kernel to apply on load when fold is set, or applies in a gbx_scale_bias
// pass.
func (d *devState) lmLinear(l *lmLin, x, xs, y uint64, rows int, fold bool) (lmEpi, error) {
	if l.f == precision.FP4 && d.useFP4Kernel(rows, l.n, l.k, l.fp4Tiled) {
		return lmEpi{}, d.nvfp4(x, l.fp4Data, l.fp4Scale, 0, l.ws, l.bias, y, rows, l.n, l.k, l.fp4Tiled)
	}
	if f, kb, ok := d.gemvFor(l, rows); ok {
		var ws uint64
		if f == fmtE4M3 {
			ws = l.ws
		} else {
			xs = 0
		}
		return lmEpi{}, d.k.gemv(d.stream, x, l.w, f, xs, ws, l.bias, y, rows, l.n, kb)
	}
	fp8 := l.f == precision.FP8
	key := planKey{p: l.f, rows: rows, n: l.n, k: l.k, bias: l.bias != 0 && l.f != precision.FP4, fp8F32: l.fp8F32}
	g, err := d.plan(key, &devLayer{bias: l.bias, wscale: l.ws})
	if err != nil {
		return lmEpi{}, err
	}
	var bias, aScale, bScale uint64
	if key.bias && g.mode == modeFused {
		bias = l.bias
	}
	if fp8 && !l.fp8F32 && g.mode != modeEpilogue {
		aScale, bScale = l.ws, xs // outer vectors: per channel, per row
	}
	if err := d.lt.run(g.lt, 1, l.w, x, y, bias, aScale, bScale, d.workspace, workspaceBytes, d.stream); err != nil {
		return lmEpi{}, err
	}
	// What cuBLASLt did not apply: fp8's scales in epilogue mode, fp4's
	// per-channel tensor scales, a bias it could not fuse.
	var e lmEpi
	switch {
	case fp8 && g.mode == modeEpilogue:
		e = lmEpi{xs, l.ws, l.bias}
	case l.f == precision.FP4:
		e = lmEpi{0, l.ws, l.bias}
	case g.mode != modeFused:
		e = lmEpi{0, 0, l.bias}
	}
	if fold || e == (lmEpi{}) {
		return e, nil
	}
	return lmEpi{}, d.k.scaleBias(d.stream, y, e.xs, e.ws, e.bias, rows, l.n, actNone)
}

// gemvFor says whether l runs on gbx_gemv at rows rows: a batch of at most
// gemvMaxM rows (Config.GEMVMaxRows), bf16, fp16 or fp8 operands, whole
// blocks of output channels and 64-byte steps of k; it returns the
// operands' format and a row's bytes. The kernel's module is loaded the
// first time it is wanted; if that fails, cuBLASLt runs these layers.
func (d *devState) gemvFor(l *lmLin, rows int) (fmtCode, int, bool) {
	if rows > d.gemvMaxM || l.n%gemvRows != 0 {
		return 0, 0, false
	}
	f, es, ok := gemvFormat(l.f, l.fp8F32)
	if kb := es * l.k; ok && kb%64 == 0 && d.k.load(modGEMV) == nil {
		return f, kb, true
	}
	return 0, 0, false
}

// gemvFormat is gbx_gemv's operand format for weights at p (fp8 as E4M3
// bytes, not as floats: fp8F32) and its bytes a value; ok is false where
// gbx_gemv takes none.
func gemvFormat(p precision.Format, fp8F32 bool) (f fmtCode, bytes int, ok bool) {
	switch {
	case p == precision.BF16:
		return fmtBF16, 2, true
	case p == precision.FP16:
		return fmtF16, 2, true
	case p == precision.FP8 && !fp8F32:
		return fmtE4M3, 1, true
	}
	return 0, 0, false
}

// attnMMA says whether decode attention runs on gbx_attn_mma (BF16
// mma.sync: compute capability 8.0), not on gbx_attn_dec or
// gbx_attn_partial.
func (d *devState) attnMMA() bool { return !d.attnPartial && !d.attnDec && d.info.Major >= 8 }

// prefillAttnFor says whether a model of c's heads over a cache in format f
// attends prefill chunks on gbx_attn_prefill.
func (d *devState) prefillAttnFor(c *lm.Config, f fmtCode) bool {
	return d.attnPrefill && (f == fmtBF16 || f == fmtE4M3) && (c.HeadDim == 64 || c.HeadDim == 128) && c.Heads/c.KVHeads <= 16
}

// lmPreload loads — compiling them, the first time on a machine — the
// kernel modules that steps of a model c at p may use, as its weights are
// loaded: a module first wanted in mid-run (the NVFP4 kernels when an fp4
// batch first falls to 64 rows or fewer, gbx_gemv at the first step of
// one row, gbx_attn_prefill at the first prompt) would hold every running
// sequence for the compile, seconds. A module that fails to load here is met again,
// and handled as before, by the step that wants it (load keeps its error).
func (d *devState) lmPreload(c *lm.Config, p precision.Format) {
	gemv := func(p precision.Format) bool { _, _, ok := gemvFormat(p, false); return ok }
	var mods []*module
	if d.attnMMA() {
		mods = append(mods, modAttnMMA)
	}
	if d.prefillAttnFor(c, kvFmt(p)) {
		mods = append(mods, modAttnPrefill)
	}
	if d.gemvMaxM >= 1 && (gemv(p) || gemv(kernels.LMHeadFormat(p))) {
		mods = append(mods, modGEMV)
	}
	if p == precision.FP4 && d.fp4Kernels(true) { // tiled where the shapes allow
		mods = append(mods, modFP4)
	}
	for _, m := range mods {
		_ = d.k.load(m)
	}
}

// lmOutputs queues the final norm of the rows that need it, the head,
// log-probabilities, sampling and the downloads, in chunks of r.headRows
// logit rows.
func (d *devState) lmOutputs(m *lm.Model, w *lmWeights, r *lmRun) error {
	c, pl, k, s := &m.Config, r.pl, d.k, d.stream
	hid, vocab, nl := c.Hidden, c.Vocab, pl.nLogit
	tokOff, tokLpOff, topIDsOff, topLpOff, lpOff, outSize := outLayout(r.outCap)
	sa := sampleArgs{
		row: r.at(r.lay.sRow), temp: r.at(r.lay.sTemp), topK: r.at(r.lay.sTopK), topP: r.at(r.lay.sTopP), u: r.at(r.lay.sU),
		nTop: r.at(r.lay.sNTop), lse: r.lse, amax: r.amax, tok: r.outs + uint64(tokOff), tokLp: r.outs + uint64(tokLpOff),
		topIDs: r.outs + uint64(topIDsOff), topLp: r.outs + uint64(topLpOff),
	}
	// hiddenRows downloads the hidden states of the normRows [lo, hi),
	// now in r.f from row 0.
	hiddenRows := func(lo, hi int) error {
		for si, o := range pl.outs {
			if r.hidden[si] >= 0 && o.hidden >= lo && o.hidden < hi {
				if err := s.dtohAsync(r.host.at(r.hidden[si]), r.f+uint64(4*(o.hidden-lo)*hid), 4*hid); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for c0 := 0; c0 < nl; c0 += r.headRows {
		c1 := min(c0+r.headRows, nl)
		n := c1 - c0
		in, err := d.lmNormTo(r, w.head.actFmt(), r.out, lmEpi{}, w.norm, r.at(r.lay.normRows)+uint64(4*c0), n, hid, c.RMSEps)
		if err != nil {
			return err
		}
		if err := hiddenRows(c0, c1); err != nil {
			return err
		}
		if _, err := d.lmLinear(&w.head, in, r.xs, r.logits, n, false); err != nil {
			return err
		}
		if err := k.lmLogprobsPart(s, r.logits, vocab, r.lpPart, n); err != nil {
			return err
		}
		if err := k.lmLogprobs(s, r.lpPart, r.logits, vocab, r.at(r.lay.targets)+uint64(4*c0), r.lse+uint64(8*c0), r.outs+uint64(lpOff+4*c0), r.amax+uint64(4*c0), n); err != nil {
			return err
		}
		if len(pl.sRow) > 0 {
			if err := k.lmSample(s, r.logits, vocab, c0, c1, len(pl.sRow), sa); err != nil {
				return err
			}
		}
		for si, o := range pl.outs {
			if r.logitAt[si] < 0 {
				continue
			}
			// Its rows before the last (Seq.LogitRows), then the last.
			if lo, hi := max(o.rowsFrom, c0), min(o.rowsFrom+o.rowsN, c1); lo < hi {
				if err := s.dtohAsync(r.host.at(r.logitAt[si]+4*(lo-o.rowsFrom)*vocab), r.logits+uint64(4*(lo-c0)*vocab), 4*(hi-lo)*vocab); err != nil {
					return err
				}
			}
			if o.last >= c0 && o.last < c1 {
				if err := s.dtohAsync(r.host.at(r.logitAt[si]+4*o.rowsN*vocab), r.logits+uint64(4*(o.last-c0)*vocab), 4*vocab); err != nil {
					return err
				}
			}
		}
	}
	if rest := len(pl.normRows) - nl; rest > 0 { // rows that want only their hidden state
		if _, err := d.lmNormTo(r, fmtF32, r.out, lmEpi{}, w.norm, r.at(r.lay.normRows)+uint64(4*nl), rest, hid, c.RMSEps); err != nil {
			return err
		}
		if err := hiddenRows(nl, len(pl.normRows)); err != nil {
			return err
		}
	}
	return s.dtohAsync(r.host, r.outs, outSize)
}

// outputs reads the step's results from the pinned host buffer.
func (r *lmRun) outputs(c *lm.Config) []kernels.SeqOut {
	pl, host := r.pl, r.host.bytes()
	tokOff, tokLpOff, topIDsOff, topLpOff, lpOff, _ := outLayout(r.outCap)
	i32 := func(off int) int32 { return int32(binary.LittleEndian.Uint32(host[off:])) }
	f32 := func(off int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(host[off:])) }
	floats := func(off, n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = f32(off + 4*i)
		}
		return v
	}
	outs := make([]kernels.SeqOut, len(pl.outs))
	for si, o := range pl.outs {
		out := &outs[si]
		if r.hidden[si] >= 0 {
			out.Hidden = floats(r.hidden[si], c.Hidden)
		}
		if r.logitAt[si] >= 0 {
			out.Logits = floats(r.logitAt[si], c.Vocab*(1+o.rowsN))
		}
		if o.want&kernels.WantLogprobs != 0 {
			out.Logprobs = make([]float32, 0, o.lpN+1)
			for i := range o.lpN {
				out.Logprobs = append(out.Logprobs, f32(lpOff+4*(o.lpFrom+i)))
			}
			if o.want&kernels.WantTarget != 0 {
				out.Logprobs = append(out.Logprobs, f32(lpOff+4*o.last))
			}
		}
		if o.sample >= 0 {
			out.Token = i32(tokOff + 4*o.sample)
			out.Logprob = f32(tokLpOff + 4*o.sample)
			if o.nTop > 0 {
				out.Top = make([]kernels.TokenLogprob, o.nTop)
				for j := range out.Top {
					at := 4 * (o.sample*maxTop + j)
					out.Top[j] = kernels.TokenLogprob{Token: i32(topIDsOff + at), Logprob: f32(topLpOff + at)}
				}
			}
		}
	}
	return outs
}
