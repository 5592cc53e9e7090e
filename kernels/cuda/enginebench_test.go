//go:build cgo

package cuda_test

import (
	"context"
	"flag"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cuda"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

var (
	engineBench       = flag.Bool("enginebench", false, "run TestEngineBench, the continuous-batching engine on Llama-3.1-8B's shapes")
	engineBenchConc   = flag.String("enginebench.conc", "64,256", "concurrent sequences, comma-separated")
	engineBenchPrompt = flag.Int("enginebench.prompt", 128, "prompt tokens per sequence")
	engineBenchGen    = flag.Int("enginebench.gen", 128, "tokens generated per sequence")
)

// TestEngineBench runs the engine (package engine: continuous batching,
// chunked prefill, paged KV) with N sequences at once on random weights of
// Llama-3.1-8B's shapes, and reports generated tokens/s over the whole run
// and over its decode phase (every sequence prefilled), next to the bare
// model loop (BenchLM: Step on a batch of N decoding sequences, nothing
// else) at the same batch and context.
func TestEngineBench(t *testing.T) {
	if !*engineBench {
		t.Skip("the engine benchmark runs with -enginebench")
	}
	g, err := cudaBackend()
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	b := g.(*cuda.Backend)
	ctx := context.Background()
	prompt, gen := *engineBenchPrompt, *engineBenchGen
	t.Logf("| precision | sequences | engine tok/s (run) | engine tok/s (decode phase) | bare loop tok/s | engine/bare | steps |")
	t.Logf("|---|---|---|---|---|---|---|")
	for _, p := range []precision.Format{precision.BF16, precision.FP8, precision.FP4} {
		for _, n := range ints(t, *engineBenchConc) {
			m := &lm.Model{Name: "engine-bench", Config: cuda.Llama31_8B}
			bare, err := b.BenchLM(ctx, cuda.LMBench{Config: &m.Config, Precisions: []precision.Format{p},
				Batches: []int{n}, Prompts: []int{prompt + gen/2}, Steps: 20})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.SynthLM(ctx, m, p); err != nil {
				t.Fatal(err)
			}
			run, decode, steps := runEngine(t, b, m, p, n, prompt, gen)
			b.EvictLM(m)
			t.Logf("| %s | %d | %.0f | %.0f | %.0f | %.2f | %d |", p, n, run, decode, bare[0].TokPerS, decode/bare[0].TokPerS, steps)
		}
	}
}

// runEngine generates gen tokens for each of n random prompts of prompt
// tokens through one engine, and returns generated tokens/s over the run
// and over its decode phase (the steps after the last one that prefilled:
// tokens they decoded over the wall time from that step's end to the
// last's), and the steps taken.
func runEngine(t *testing.T, b kernels.LM, m *lm.Model, p precision.Format, n, prompt, gen int) (run, decode float64, steps int) {
	per := (prompt + gen + kernels.KVBlockSize) / kernels.KVBlockSize
	var (
		mu                 sync.Mutex
		lastPrefill, last  time.Time
		decoded, allTokens int
	)
	cfg := engine.Config{OnStep: func(dec, pre int, _ time.Duration) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		steps++
		last = now
		if pre > 0 {
			lastPrefill, decoded = now, 0
			return
		}
		decoded += dec
	}}
	e, err := engine.New(b, m, p, n*per, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = e.Run(ctx) }()
	var wg sync.WaitGroup
	r := rand.New(rand.NewPCG(7, uint64(n)))
	start := time.Now()
	for i := range n {
		toks := make([]int32, prompt)
		for j := range toks {
			toks[j] = int32(r.IntN(m.Config.Vocab))
		}
		wg.Add(1)
		q := &engine.Seq{Task: engine.Generate, Prompt: toks, MaxTokens: gen, Done: func(o *engine.Outcome) {
			defer wg.Done()
			if o.Err != nil {
				t.Error(o.Err)
			}
			mu.Lock()
			allTokens += len(o.Tokens)
			mu.Unlock()
		}}
		if err := e.Add(ctx, q); err != nil {
			t.Fatalf("sequence %d: %v", i, err)
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return float64(allTokens) / last.Sub(start).Seconds(), float64(decoded) / last.Sub(lastPrefill).Seconds(), steps
}
