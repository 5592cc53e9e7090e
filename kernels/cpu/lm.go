package cpu

import (
	"context"
	"fmt"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

var _ kernels.LM = (*Backend)(nil)

// Step runs one engine step of m at precision p over the cache kv (see
// kernels.LM). It fails with kernels.ErrUnsupported for a p that is not a
// concrete format, with kernels.ErrInvalidBatch (naming the sequence and
// field) for a batch that breaks kernels.CheckStep's rules or a cache of
// another model or precision, and with ctx.Err() when ctx ends first (it
// checks between layers).
//
// The first Step of m at p converts m's weights (see the package
// documentation); later ones reuse them until EvictLM.
func (b *Backend) Step(ctx context.Context, m *lm.Model, p precision.Format, kv kernels.KVCache, batch *kernels.Batch) ([]kernels.SeqOut, error) {
	if !b.Supports(p) {
		return nil, fmt.Errorf("cpu: %w: %q", kernels.ErrUnsupported, p)
	}
	cache, ok := kv.(*kvCache)
	switch {
	case !ok:
		return nil, fmt.Errorf("cpu: %w: KV cache of type %T is not the CPU backend's", kernels.ErrInvalidBatch, kv)
	case cache.m != m || cache.p != p:
		return nil, fmt.Errorf("cpu: %w: KV cache belongs to another model or precision (%s at %s)", kernels.ErrInvalidBatch, cache.m.Name, cache.p)
	case cache.closed():
		return nil, fmt.Errorf("cpu: %w: KV cache is closed", kernels.ErrInvalidBatch)
	}
	if err := kernels.CheckStep(m, KVBlockSize, cache.blocks, batch); err != nil {
		return nil, fmt.Errorf("cpu: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(batch.Seqs) == 0 {
		return nil, nil
	}
	w, err := b.lmWeightsFor(m, p)
	if err != nil {
		return nil, err
	}
	st := newLMStep(b, m, p, w, cache, batch.Seqs)
	for i := range w.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st.layer(i)
	}
	return st.outputs(), nil
}

// lmStep is one Step's state: the rows of every sequence, one per token,
// and the activations of those rows.
type lmStep struct {
	b     *Backend
	c     *lm.Config
	p     precision.Format
	w     *lmWeights
	kv    *kvCache
	seqs  []kernels.Seq
	first []int // first[s] is sequence s's first row; first[len(seqs)] = rows
	rows  int
	pos   []int     // position of each row
	seq   []int     // sequence of each row
	cos   []float32 // RoPE's cos, [rows, headDim/2]
	sin   []float32 // and sin
	x     []float32 // the residual stream, [rows, hidden]
	h     []float32 // a normed (and rounded) copy of x, [rows, hidden]
	qkv   []float32 // q, k, v, [rows, qDim + 2·kvDim]
	attn  []float32 // attention's output, [rows, qDim]
	gu    []float32 // gate and up, [rows, 2·intermediate]
	act   []float32 // SiLU(gate)·up, [rows, intermediate]
	out   []float32 // o_proj's and down_proj's output, [rows, hidden]
}

// newLMStep lays the batch out in rows, looks up the embeddings and
// computes RoPE's angles.
func newLMStep(b *Backend, m *lm.Model, p precision.Format, w *lmWeights, kv *kvCache, seqs []kernels.Seq) *lmStep {
	c := &m.Config
	st := &lmStep{b: b, c: c, p: p, w: w, kv: kv, seqs: seqs, first: make([]int, len(seqs)+1)}
	for s := range seqs {
		st.first[s+1] = st.first[s] + len(seqs[s].Tokens)
	}
	n := st.first[len(seqs)]
	st.rows = n
	st.pos, st.seq = make([]int, n), make([]int, n)
	half := c.HeadDim / 2
	st.cos, st.sin = make([]float32, n*half), make([]float32, n*half)
	st.x = make([]float32, n*c.Hidden)
	st.h = make([]float32, n*c.Hidden)
	st.qkv = make([]float32, n*(c.QDim()+2*c.KVDim()))
	st.attn = make([]float32, n*c.QDim())
	st.gu = make([]float32, n*2*c.Intermediate)
	st.act = make([]float32, n*c.Intermediate)
	st.out = make([]float32, n*c.Hidden)
	for s := range seqs {
		for i, tok := range seqs[s].Tokens {
			r := st.first[s] + i
			st.pos[r], st.seq[r] = seqs[s].Pos+i, s
			copy(st.x[r*c.Hidden:(r+1)*c.Hidden], w.embed[int(tok)*c.Hidden:])
			ropeAngles(st.cos[r*half:(r+1)*half], st.sin[r*half:(r+1)*half], w.invFreq, st.pos[r])
		}
	}
	return st
}
