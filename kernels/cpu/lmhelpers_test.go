package cpu_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// lmConfig returns a small config of architecture a (hidden 64, 2
// layers, 4 heads over 2 KV heads, vocab 256): llama with llama3 RoPE
// scaling and tied embeddings, qwen2 with q/k/v biases, qwen3 with q/k
// norms and a head_dim other than hidden/heads.
func lmConfig(a lm.Arch) lm.Config {
	c := lm.Config{
		Arch: a, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Intermediate: 160, Vocab: 256,
		RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 512, BOS: lm.NoToken,
	}
	switch a {
	case lm.Llama:
		c.RopeScaling = &lm.RopeScaling{Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}
		c.TieEmbeddings = true
	case lm.Qwen2:
		c.QKVBias = true
	case lm.Qwen3:
		c.HeadDim = 32
		c.QKNorm = true
	}
	return c
}

// lmModels loads one random model per architecture (llama stored as BF16,
// the others F32), once per test binary: they are immutable.
var lmModels = sync.OnceValues(func() (map[lm.Arch]*lm.Model, error) {
	ms := map[lm.Arch]*lm.Model{}
	// lm.Load reads every file into memory, so the checkpoints can go as
	// soon as they are loaded.
	root, err := os.MkdirTemp("", "gearbox-lm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	for i, a := range lm.Archs {
		dtype := model.DTypeF32
		if a == lm.Llama {
			dtype = model.DTypeBF16
		}
		dir := filepath.Join(root, string(a))
		if err := lm.Synth(dir, lm.SynthConfig{Config: lmConfig(a), DType: dtype, Seed: uint64(i + 1)}); err != nil {
			return nil, err
		}
		if ms[a], err = lm.Load(dir); err != nil {
			return nil, err
		}
	}
	return ms, nil
})

// lmModel returns the shared random model of architecture a.
func lmModel(t testing.TB, a lm.Arch) *lm.Model {
	t.Helper()
	ms, err := lmModels()
	if err != nil {
		t.Fatal(err)
	}
	return ms[a]
}

// randTokens returns n token ids below vocab from seed.
func randTokens(seed uint64, n, vocab int) []int32 {
	r := rand.New(rand.NewPCG(seed, 99))
	ts := make([]int32, n)
	for i := range ts {
		ts[i] = int32(r.IntN(vocab))
	}
	return ts
}

// session drives one model at one precision over one cache, handing out
// blocks in a scrambled order so that every block table is
// non-contiguous.
type session struct {
	t    testing.TB
	b    *cpu.Backend
	m    *lm.Model
	p    precision.Format
	kv   kernels.KVCache
	free []int32
}

func newSession(t testing.TB, b *cpu.Backend, m *lm.Model, p precision.Format, blocks int) *session {
	t.Helper()
	kv, err := b.NewKVCache(m, p, blocks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	free := make([]int32, blocks)
	for i, j := range rand.New(rand.NewPCG(uint64(blocks), 1)).Perm(blocks) {
		free[i] = int32(j)
	}
	return &session{t: t, b: b, m: m, p: p, kv: kv, free: free}
}

// alloc takes enough blocks for n positions.
func (s *session) alloc(n int) []int32 {
	k := (n + cpu.KVBlockSize - 1) / cpu.KVBlockSize
	if k > len(s.free) {
		s.t.Fatalf("out of KV blocks: want %d, %d free", k, len(s.free))
	}
	blocks := s.free[:k:k]
	s.free = s.free[k:]
	return blocks
}

// step runs one step and fails the test on error.
func (s *session) step(seqs ...kernels.Seq) []kernels.SeqOut {
	s.t.Helper()
	outs, err := s.b.Step(context.Background(), s.m, s.p, s.kv, &kernels.Batch{Seqs: seqs})
	if err != nil {
		s.t.Fatal(err)
	}
	return outs
}

// decodeLogits feeds tokens one step each (a prefill of one token, then
// decode steps) and returns the logits after each: len(tokens) × vocab.
func (s *session) decodeLogits(tokens []int32) []float32 {
	blocks := s.alloc(len(tokens))
	var out []float32
	for i, tok := range tokens {
		o := s.step(kernels.Seq{Tokens: []int32{tok}, Pos: i, Blocks: blocks, Want: kernels.WantLogits})
		out = append(out, o[0].Logits...)
	}
	return out
}

// prefillLogits feeds tokens in one step and returns the last row's
// logits.
func (s *session) prefillLogits(tokens []int32) []float32 {
	o := s.step(kernels.Seq{Tokens: tokens, Blocks: s.alloc(len(tokens)), Want: kernels.WantLogits})
	return o[0].Logits
}
