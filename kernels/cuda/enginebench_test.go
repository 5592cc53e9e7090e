//go:build cgo

package cuda_test

import (
	"context"
	"flag"
	"math/rand/v2"
	"slices"
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
	engineBench            = flag.Bool("enginebench", false, "run TestEngineBench, the continuous-batching engine on Llama-3.1-8B's shapes")
	engineBenchConc        = flag.String("enginebench.conc", "64,256", "concurrent sequences, comma-separated")
	engineBenchPrompt      = flag.Int("enginebench.prompt", 128, "prompt tokens per sequence")
	engineBenchGen         = flag.Int("enginebench.gen", 128, "tokens generated per sequence")
	engineBenchPrecs       = flag.String("enginebench.precisions", "bf16,fp8,fp4", "precisions, comma-separated")
	engineBenchNoPrefillAt = flag.Bool("enginebench.noprefillattn", false, "run on a backend of its own with Config.NoPrefillAttention (prefill chunks' attention on the decode kernels)")
	engineBenchSeqs        = flag.Int("enginebench.seqs", 0, "sequences in all, each case's -enginebench.conc at a time (0: as many as -enginebench.conc): more than conc admits later prompts as earlier sequences finish, prefill beside decode, as a throughput run under maximum load does")
	engineBenchModel       = flag.String("enginebench.model", "8b", "the model's shapes: 8b (Llama-3.1-8B's) or tiny (a smoke test)")
	engineBenchPrefix      = flag.Int("enginebench.prefix", 0, "tokens of a random prefix every sequence shares, before its own -enginebench.prompt tokens: runs each case with the engine's prefix cache on and off instead of beside the bare loop")
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
	var b *cuda.Backend
	if *engineBenchNoPrefillAt {
		var err error
		if b, err = cuda.New(cuda.Config{NoPrefillAttention: true}); err != nil {
			t.Skipf("no CUDA device: %v", err)
		}
		defer b.Close()
	} else {
		g, err := cudaBackend()
		if err != nil {
			t.Skipf("no CUDA device: %v", err)
		}
		b = g.(*cuda.Backend)
	}
	ctx := context.Background()
	prompt, gen := *engineBenchPrompt, *engineBenchGen
	if *engineBenchPrefix > 0 {
		benchPrefix(t, b, *engineBenchPrefix, prompt, gen)
		return
	}
	t.Logf("| precision | sequences (at a time, in all) | engine tok/s (run) | engine tok/s (decode phase) | bare loop tok/s | engine/bare | steps | full-batch step ms, engine (median) | bare step ms | decode phase in Step | tail steps, share of the decode phase's Step time | tail step ms, rows (means) |")
	t.Logf("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, p := range precisions(t, *engineBenchPrecs) {
		for _, n := range ints(t, *engineBenchConc) {
			m := &lm.Model{Name: "engine-bench", Config: benchModel(t, "-enginebench.model", *engineBenchModel)}
			bare, err := b.BenchLM(ctx, cuda.LMBench{Config: &m.Config, Precisions: []precision.Format{p},
				Batches: []int{n}, Prompts: []int{prompt + gen/2}, Steps: 20})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.SynthLM(ctx, m, p); err != nil {
				t.Fatal(err)
			}
			r := runEngine(t, b, m, p, n, max(n, *engineBenchSeqs), nil, prompt, gen, engine.Config{})
			b.EvictLM(m)
			tailMS, tailRows := 0.0, 0.0
			if r.tailSteps > 0 {
				tailMS, tailRows = 1e3*r.tailSec/float64(r.tailSteps), float64(r.tailTokens)/float64(r.tailSteps)
			}
			t.Logf("| %s | %d, %d | %.0f | %.0f | %.0f | %.2f | %d | %.2f | %.2f | %.3f | %d, %.2f | %.2f, %.0f |", p, n, max(n, *engineBenchSeqs), r.run, r.decode, bare[0].TokPerS, r.decode/bare[0].TokPerS,
				r.steps, r.fullStepMS, 1e3*float64(n)/bare[0].TokPerS, r.inStep, r.tailSteps, r.tailShare, tailMS, tailRows)
		}
	}
}

// benchPrefix runs n sequences of a shared random prefix of prefix tokens
// and prompt random tokens of their own, generating gen tokens each, with
// the engine's prefix cache on and off, and reports the time to finish
// them all, the prompt tokens prefilled and taken from the cache, and the
// most KV blocks held at once.
func benchPrefix(t *testing.T, b *cuda.Backend, prefix, prompt, gen int) {
	ctx := context.Background()
	t.Logf("| precision | sequences | prefix cache | seconds to finish all | generated tok/s | prefilled tokens | reused tokens | peak KV blocks | steps |")
	t.Logf("|---|---|---|---|---|---|---|---|---|")
	for _, p := range precisions(t, *engineBenchPrecs) {
		for _, n := range ints(t, *engineBenchConc) {
			m := &lm.Model{Name: "engine-bench", Config: benchModel(t, "-enginebench.model", *engineBenchModel)}
			if err := b.SynthLM(ctx, m, p); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(11, uint64(prefix)))
			shared := make([]int32, prefix)
			for j := range shared {
				shared[j] = int32(r.IntN(m.Config.Vocab))
			}
			for _, off := range []bool{false, true} {
				r := runEngine(t, b, m, p, n, n, shared, prompt, gen, engine.Config{NoPrefixCache: off})
				cache := "on"
				if off {
					cache = "off"
				}
				secs := float64(n*gen) / r.run // every sequence generates gen tokens: no end-of-sequence token
				t.Logf("| %s | %d | %s | %.2f | %.0f | %d | %d | %d | %d |", p, n, cache, secs, r.run,
					r.st.PrefillTokens, r.st.ReusedTokens, r.st.BlocksPeak, r.steps)
			}
			b.EvictLM(m)
		}
	}
}

// engineRun is what runEngine measured: generated tokens/s over the run
// and over its decode phase (the steps after the last one that prefilled:
// tokens they decoded over the wall time from that step's end to the
// last's), the steps taken, the median time of a step that decoded every
// sequence and prefilled nothing, the share of the decode phase's wall
// time spent in the backend's Step (the rest: the engine's own work
// between steps), the decode phase's tail (its steps that decoded fewer
// than every sequence, as sequences finished: how many, their Step time
// and its share of the phase's, the tokens they decoded) and the
// engine's statistics at the end.
type engineRun struct {
	run, decode float64
	steps       int
	fullStepMS  float64
	inStep      float64
	tailSteps   int
	tailSec     float64
	tailShare   float64
	tailTokens  int
	st          engine.StepStats
}

// runEngine generates gen tokens for each of total prompts, shared
// followed by prompt random tokens, through one engine of configuration
// cfg with a KV cache and MaxSeqs (unless cfg sets it) for n of them at a
// time: past n, Add waits for room, so later prompts arrive while earlier
// sequences decode.
func runEngine(t *testing.T, b kernels.LM, m *lm.Model, p precision.Format, n, total int, shared []int32, prompt, gen int, cfg engine.Config) engineRun {
	per := (len(shared) + prompt + gen + kernels.KVBlockSize) / kernels.KVBlockSize
	var (
		mu                 sync.Mutex
		lastPrefill, last  time.Time
		decoded, allTokens int
		inStep             time.Duration // the decode phase's steps so far
		full               []float64     // ms of the steps that decoded all n
		r                  engineRun
	)
	cfg.OnStep = func(dec, pre int, took time.Duration) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		r.steps++
		last = now
		if pre > 0 {
			lastPrefill, decoded, inStep = now, 0, 0
			r.tailSteps, r.tailSec, r.tailTokens = 0, 0, 0
			return
		}
		decoded += dec
		inStep += took
		if dec == n {
			full = append(full, float64(took)/1e6)
		} else {
			r.tailSteps, r.tailSec, r.tailTokens = r.tailSteps+1, r.tailSec+took.Seconds(), r.tailTokens+dec
		}
	}
	if cfg.MaxSeqs == 0 {
		cfg.MaxSeqs = n // every sequence in every decode step, past the default 256
	}
	e, err := engine.New(b, m, p, n*per, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = e.Run(ctx) }()
	var wg sync.WaitGroup
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	start := time.Now()
	for i := range total {
		toks := append([]int32(nil), shared...)
		for range prompt {
			toks = append(toks, int32(rng.IntN(m.Config.Vocab)))
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
	phase := last.Sub(lastPrefill)
	r.run, r.decode = float64(allTokens)/last.Sub(start).Seconds(), float64(decoded)/phase.Seconds()
	r.inStep = inStep.Seconds() / phase.Seconds()
	if inStep > 0 {
		r.tailShare = r.tailSec / inStep.Seconds()
	}
	if len(full) > 0 {
		slices.Sort(full)
		r.fullStepMS = full[len(full)/2]
	}
	r.st = e.Stats()
	return r
}
