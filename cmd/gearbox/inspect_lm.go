package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"text/tabwriter"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/model/tokenizer"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

// inspectText is what inspect --error feeds a language model that has a
// tokenizer: some Go and some prose.
const inspectText = "// Package ring implements a ring buffer of bytes.\npackage ring\n\n" +
	"// Buffer is a fixed-size ring buffer; the zero value is empty.\ntype Buffer struct {\n" +
	"\tdata []byte\n\thead, n int\n}\n\nfunc (b *Buffer) Len() int { return b.n }\n\n" +
	"The quick brown fox jumps over the lazy dog, and the dog does not mind at all."

// lmInspect describes the language model in dir and, with tokens > 0,
// measures each precision of its ladder against fp32 on the CPU backend,
// teacher-forced over that many tokens: the mean KL divergence of the
// next-token distributions, top-1 agreement, and the logits' relative L2.
func lmInspect(dir string, tokens int, out io.Writer) error {
	m, err := lm.Load(dir)
	if err != nil {
		return err
	}
	c := &m.Config
	fmt.Fprintf(out, "language model %s  version %s  digest %s\n", m.Name, m.Version, m.Digest)
	fmt.Fprintf(out, "%s: %d layers, hidden %d, %d query / %d key-value heads of %d, MLP %d, vocabulary %d, context %d, tied embeddings %v\n",
		c.Arch, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.HeadDim, c.Intermediate, c.Vocab, c.MaxPositions, c.TieEmbeddings)
	fmt.Fprintf(out, "%d parameters, %d weight bytes as stored; tokenizer: %v\n", m.Params(), m.WeightBytes(), m.Tokenizer != nil)
	fmt.Fprintf(out, "quality: %s ≤ %g; precision: initial %s, ladder %v\n", m.Quality.Metric, m.Quality.MaxError, m.Precision.Initial, m.Precision.Ladder)
	if tokens <= 0 {
		return nil
	}
	ids, err := inspectTokens(m, tokens)
	if err != nil {
		return err
	}
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		return err
	}
	ref, err := teacherLogits(b, m, precision.FP32, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nagainst fp32, teacher-forced over %d tokens (CPU backend):\n", len(ids))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "precision\tmean KL\ttop-1 agreement\tlogits rel L2\t")
	for _, p := range m.Precision.Ladder {
		got, err := teacherLogits(b, m, p, ids)
		if err != nil {
			return err
		}
		q := quality.CompareLogits(got, ref, len(ids), c.Vocab)
		fmt.Fprintf(tw, "%s\t%.3g\t%.3f\t%.3g\t\n", p, *q.KL, *q.Top1, q.RelL2)
	}
	return tw.Flush()
}

// inspectTokens is inspectText's tokens (repeated up to n), or n seeded
// random tokens for a model without a tokenizer.
func inspectTokens(m *lm.Model, n int) ([]int32, error) {
	n = min(n, m.Config.MaxPositions)
	var ids []int32
	if m.Tokenizer != nil {
		tok, err := tokenizer.ParseFiles(tokenizer.Files{Tokenizer: m.Tokenizer, Config: m.TokenizerConfig})
		if err != nil {
			return nil, err
		}
		text := tok.Encode(inspectText, true)
		for len(ids) < n {
			for _, id := range text {
				ids = append(ids, int32(id))
			}
		}
		return ids[:n], nil
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range n {
		ids = append(ids, int32(r.IntN(m.Config.Vocab)))
	}
	return ids, nil
}

// teacherLogits feeds ids in one step and returns the logits after each
// token, concatenated (kernels.Seq.LogitRows).
func teacherLogits(b kernels.LM, m *lm.Model, p precision.Format, ids []int32) ([]float32, error) {
	kv, err := b.NewKVCache(m, p, (len(ids)+kernels.KVBlockSize-1)/kernels.KVBlockSize)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	blocks := make([]int32, kv.Blocks())
	for i := range blocks {
		blocks[i] = int32(i)
	}
	o, err := b.Step(context.Background(), m, p, kv, &kernels.Batch{Seqs: []kernels.Seq{
		{Tokens: ids, Blocks: blocks, Want: kernels.WantLogits, LogitRows: len(ids)}}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return o[0].Logits, nil
}
