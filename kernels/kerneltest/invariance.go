package kerneltest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// Batchmates are the numbers of other sequences BatchInvariance runs
// sequence X among.
var Batchmates = []int{1, 7, 40}

// BatchInvariance checks batch invariance on backend b for m at p: a
// sequence X generated greedily alone on an engine (package engine:
// continuous batching, chunked prefill) and then among 1, 7 and 40 other
// sequences of other prompt lengths and output lengths (X added first,
// in the middle, last: so it lands at other rows of steps of other
// sizes, is prefilled in other chunks beside other prompts, and decodes
// in batches that shrink as the others end) must generate bitwise the
// same tokens with bitwise the same log-probabilities each time. cfg is
// the engines' configuration (the token budget decides how prompts are
// chunked); each run has an engine of its own with a cache of blocks
// blocks (enough for X and 40 others at once). X's prompt holds
// promptX tokens, others' 1 to 2·promptX; X generates genX tokens.
func BatchInvariance(t *testing.T, b kernels.LM, m *lm.Model, p precision.Format, blocks int, cfg engine.Config, promptX, genX int) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(m.Config.Vocab), 14))
	vocab := m.Config.Vocab
	prompt := func(n int) []int32 {
		q := make([]int32, n)
		for i := range q {
			q[i] = int32(r.IntN(vocab))
		}
		return q
	}
	x := prompt(promptX)
	// Greedy, never stopped early: X's length is the same every run.
	seqX := func() *engine.Seq {
		return &engine.Seq{Prompt: x, MaxTokens: genX}
	}
	alone := runInvariance(t, b, m, p, blocks, cfg, []*engine.Seq{seqX()}, 0)
	if len(alone) != genX {
		t.Fatalf("%s: X alone generated %d tokens; want %d", p, len(alone), genX)
	}
	for _, n := range Batchmates {
		for _, at := range []int{0, n / 2, n} {
			seqs := make([]*engine.Seq, 0, n+1)
			for range n {
				seqs = append(seqs, &engine.Seq{Prompt: prompt(1 + r.IntN(2*promptX)), MaxTokens: 1 + r.IntN(2*genX)})
			}
			seqs = append(seqs[:at], append([]*engine.Seq{seqX()}, seqs[at:]...)...)
			got := runInvariance(t, b, m, p, blocks, cfg, seqs, at)
			if d := diffTokens(alone, got); d != "" {
				t.Errorf("%s: X at %d of %d sequences: %s", p, at, n+1, d)
			}
		}
	}
}

// runInvariance runs seqs on an engine of their own, added in order at
// once, and returns the tokens of seqs[x].
func runInvariance(t *testing.T, b kernels.LM, m *lm.Model, p precision.Format, blocks int, cfg engine.Config, seqs []*engine.Seq, x int) []engine.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e, err := engine.New(b, m, p, blocks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	started := false
	defer func() {
		_ = e.Close()
		if started {
			<-ran
		}
	}()
	outs := make(chan struct {
		i int
		o *engine.Outcome
	}, len(seqs))
	for i, q := range seqs {
		q.Done = func(o *engine.Outcome) {
			outs <- struct {
				i int
				o *engine.Outcome
			}{i, o}
		}
		if err := e.Add(ctx, q); err != nil {
			t.Fatalf("add sequence %d of %d: %v", i, len(seqs), err)
		}
	}
	started = true
	go func() { ran <- e.Run(ctx) }() // after every Add: the first step sees them all
	var tokens []engine.Token
	for range seqs {
		select {
		case d := <-outs:
			if d.o.Err != nil {
				t.Fatalf("sequence %d of %d: %v", d.i, len(seqs), d.o.Err)
			}
			if d.i == x {
				tokens = d.o.Tokens
			}
		case <-ctx.Done():
			t.Fatalf("%d sequences: %v", len(seqs), ctx.Err())
		}
	}
	return tokens
}

// diffTokens says where got differs from want, bit for bit, token ids and
// log-probabilities; "" if nowhere.
func diffTokens(want, got []engine.Token) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d tokens; alone %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.ID != w.ID || math.Float32bits(g.Logprob) != math.Float32bits(w.Logprob) {
			return fmt.Sprintf("token %d is %d (logprob %v, bits %08x); alone %d (logprob %v, bits %08x)",
				i, g.ID, g.Logprob, math.Float32bits(g.Logprob), w.ID, w.Logprob, math.Float32bits(w.Logprob))
		}
	}
	return ""
}
