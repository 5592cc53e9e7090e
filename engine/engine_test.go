package engine_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// tiny is a small random llama (hidden 64, 2 layers, vocab 256, 256
// positions).
var tiny = sync.OnceValues(func() (*lm.Model, error) { return synth(256) })

// synth writes and loads tiny's shapes with a context of maxPos positions.
func synth(maxPos int) (*lm.Model, error) {
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	c := lm.Config{Arch: lm.Llama, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Intermediate: 128,
		Vocab: 256, RMSEps: 1e-5, RopeTheta: 10000, MaxPositions: maxPos, BOS: lm.NoToken, TieEmbeddings: true}
	if err := lm.Synth(dir, lm.SynthConfig{Config: c, Seed: 3}); err != nil {
		return nil, err
	}
	return lm.Load(dir)
}

func setup(t *testing.T) (*lm.Model, *cpu.Backend) {
	t.Helper()
	m, err := tiny()
	if err != nil {
		t.Fatal(err)
	}
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

// start runs an engine of blocks blocks for the test.
func start(t *testing.T, b *cpu.Backend, m *lm.Model, p precision.Format, blocks int, cfg engine.Config) *engine.Engine {
	t.Helper()
	e, err := engine.New(b, m, p, blocks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = e.Close() })
	return e
}

type request struct {
	prompt []int32
	max    int
	samp   kernels.Sampling
}

func requests(n int) []request {
	r := rand.New(rand.NewPCG(5, 6))
	out := make([]request, n)
	for i := range out {
		p := make([]int32, 3+r.IntN(40))
		for j := range p {
			p[j] = int32(r.IntN(256))
		}
		out[i] = request{prompt: p, max: 4 + r.IntN(24)}
		if i%2 == 1 { // half sample with a seed
			out[i].samp = kernels.Sampling{Temperature: 0.8, TopK: 20, TopP: 0.9, Seed: uint64(i), TopLogprobs: 2}
		}
	}
	return out
}

// generate runs reqs through e at once and returns each one's tokens.
func generate(t testing.TB, e *engine.Engine, reqs []request) ([][]int32, []*engine.Outcome) {
	t.Helper()
	toks := make([][]int32, len(reqs))
	outs := make([]*engine.Outcome, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		q := &engine.Seq{Prompt: r.prompt, MaxTokens: r.max, Sampling: r.samp, Done: func(o *engine.Outcome) {
			outs[i] = o
			for _, tk := range o.Tokens {
				toks[i] = append(toks[i], tk.ID)
			}
			wg.Done()
		}}
		if err := e.Add(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i, o := range outs {
		if o.Err != nil {
			t.Fatalf("request %d: %v", i, o.Err)
		}
	}
	return toks, outs
}

// TestEngineBatchInvariant: sequences run together in continuous batches
// produce exactly the tokens each produces alone (greedy and seeded
// sampling alike): what shares a step does not change a job's output.
func TestEngineBatchInvariant(t *testing.T) {
	m, b := setup(t)
	reqs := requests(12)
	together, _ := generate(t, start(t, b, m, precision.BF16, 128, engine.Config{TokenBudget: 64}), reqs)
	for i, r := range reqs {
		alone, _ := generate(t, start(t, b, m, precision.BF16, 128, engine.Config{}), []request{r})
		if !slices.Equal(together[i], alone[0]) {
			t.Errorf("request %d: together %v; alone %v", i, together[i], alone[0])
		}
	}
}

// TestEnginePreemption: a cache too small for every sequence at once
// preempts and recomputes, and still produces exactly the same tokens.
func TestEnginePreemption(t *testing.T) {
	// Short prompts are all admitted at once; their generations then
	// outgrow the cache.
	reqs := requests(8)
	for i := range reqs {
		reqs[i].prompt, reqs[i].max = reqs[i].prompt[:4], 60
	}
	small, preempted := preempting(t, reqs, 12, engine.Config{}) // 192 positions for 8 sequences of 64
	if st := small.Stats(); preempted == 0 || st.Preemptions != preempted {
		t.Errorf("%d preemptions (stats %d); want some on a cache this small", preempted, st.Preemptions)
	}
}

// preempting runs reqs on an engine of blocks blocks and cfg, checks that
// they produce the tokens of an engine with room for all at once and no
// prefix sharing, and returns the engine and the preemptions its
// sequences counted.
func preempting(t *testing.T, reqs []request, blocks int, cfg engine.Config) (*engine.Engine, int) {
	t.Helper()
	m, b := setup(t)
	want, _ := generate(t, start(t, b, m, precision.FP32, 256, engine.Config{NoPrefixCache: true}), reqs)
	small := start(t, b, m, precision.FP32, blocks, cfg)
	got, outs := generate(t, small, reqs)
	for i := range reqs {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("request %d: %v on %d blocks; want %v", i, got[i], blocks, want[i])
		}
	}
	preempted := 0
	for _, o := range outs {
		preempted += o.Preempted
	}
	return small, preempted
}

// TestEngineGreedyMatchesReference: greedy generation at fp32 picks the
// float64 reference's most likely token at every step.
func TestEngineGreedyMatchesReference(t *testing.T) {
	m, b := setup(t)
	reqs := requests(4)
	for i := range reqs {
		reqs[i].samp = kernels.Sampling{}
	}
	got, _ := generate(t, start(t, b, m, precision.FP32, 64, engine.Config{}), reqs)
	for i, r := range reqs {
		all := append(slices.Clone(r.prompt), got[i]...)
		ref, err := cpu.LMReference(m, all[:len(all)-1])
		if err != nil {
			t.Fatal(err)
		}
		v := m.Config.Vocab
		for j, tok := range got[i] {
			row := ref[(len(r.prompt)-1+j)*v : (len(r.prompt)+j)*v]
			best := 0
			for k := range row {
				if row[k] > row[best] {
					best = k
				}
			}
			if int32(best) != tok {
				t.Fatalf("request %d token %d: %d; the reference's argmax is %d", i, j, tok, best)
			}
		}
	}
}

// TestEngineEmbedAndScore: embed and score run beside generations and give
// what a direct step gives.
func TestEngineEmbedAndScore(t *testing.T) {
	m, b := setup(t)
	e := start(t, b, m, precision.FP32, 64, engine.Config{TokenBudget: 16})
	p := requests(1)[0].prompt
	var wg sync.WaitGroup
	var emb, score *engine.Outcome
	wg.Add(2)
	for _, q := range []*engine.Seq{
		{Task: engine.Embed, Prompt: p, Done: func(o *engine.Outcome) { emb = o; wg.Done() }},
		{Task: engine.Score, Prompt: p, Done: func(o *engine.Outcome) { score = o; wg.Done() }},
	} {
		if err := e.Add(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	kv, err := b.NewKVCache(m, precision.FP32, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	outs, err := b.Step(context.Background(), m, precision.FP32, kv, &kernels.Batch{Seqs: []kernels.Seq{{
		Tokens: p, Blocks: []int32{0, 1, 2, 3, 4, 5, 6, 7}[:(len(p)+15)/16], Want: kernels.WantHidden | kernels.WantLogprobs}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(emb.Hidden, outs[0].Hidden) {
		t.Errorf("embedding differs from a direct step's")
	}
	if !slices.Equal(score.Logprobs, outs[0].Logprobs) || len(score.Logprobs) != len(p)-1 {
		t.Errorf("scores (%d) differ from a direct step's (%d)", len(score.Logprobs), len(outs[0].Logprobs))
	}
}

// TestEngineAddWaitsForRoom: while queued sequences commit the whole cache
// Add waits (the worker stops pulling); it proceeds once they end.
func TestEngineAddWaitsForRoom(t *testing.T) {
	m, b := setup(t)
	e, err := engine.New(b, m, precision.FP32, 4, engine.Config{}) // 64 positions
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	done := make(chan *engine.Outcome, 2)
	first := &engine.Seq{Prompt: make([]int32, 40), MaxTokens: 8, Done: func(o *engine.Outcome) { done <- o }}
	if err := e.Add(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	// Another prompt: the same one would share first's blocks and fit.
	second := &engine.Seq{Prompt: slices.Repeat([]int32{1}, 30), MaxTokens: 8, Done: func(o *engine.Outcome) { done <- o }}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.Add(ctx, second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add with the cache committed: %v; want it to wait", err)
	}
	rctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = e.Run(rctx) }()
	if err := e.Add(context.Background(), second); err != nil {
		t.Fatalf("Add once room frees: %v", err)
	}
	for range 2 {
		if o := <-done; o.Err != nil {
			t.Fatal(o.Err)
		}
	}
}

// TestEngineStepTime: Stats splits Run's time into steps (their
// durations, summed) and waits for work, so that what is left is the
// engine's own work between steps.
func TestEngineStepTime(t *testing.T) {
	m, b := setup(t)
	var mu sync.Mutex
	var took time.Duration
	e := start(t, b, m, precision.BF16, 128, engine.Config{OnStep: func(_, _ int, d time.Duration) {
		mu.Lock()
		took += d
		mu.Unlock()
	}})
	generate(t, e, requests(3))
	st := e.Stats()
	mu.Lock()
	want := took.Seconds()
	mu.Unlock()
	if st.Steps < 1 || math.Abs(st.StepSeconds-want) > 1e-9 {
		t.Errorf("%d steps in %g s; want steps, in the %g s OnStep saw", st.Steps, st.StepSeconds, want)
	}
	// With nothing to run the engine waits, and the wait counts as idle
	// while it lasts.
	for i := 0; e.Stats().IdleSeconds <= st.IdleSeconds; i++ {
		if i == 10000 {
			t.Fatalf("idle %g s after its sequences ended; want it to grow", e.Stats().IdleSeconds)
		}
		time.Sleep(time.Millisecond)
	}
	idle := e.Stats().IdleSeconds
	generate(t, e, requests(1))
	if st2 := e.Stats(); !(st2.IdleSeconds >= idle) || !(st2.StepSeconds > st.StepSeconds) {
		t.Errorf("idle %g → %g s, steps %g → %g s across a wait and a sequence; want the wait kept and the steps' time to grow",
			idle, st2.IdleSeconds, st.StepSeconds, st2.StepSeconds)
	}
}
