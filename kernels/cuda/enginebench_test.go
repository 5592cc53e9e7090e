//go:build cgo

package cuda_test

import (
	"context"
	"flag"
	"fmt"
	"math"
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
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
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
	engineBenchBudget      = flag.String("enginebench.budget", "0", "the engine's TokenBudget, comma-separated to run each case at several (0: the engine's default)")
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
	t.Logf("| precision | sequences (at a time, in all) | token budget | engine tok/s (run) | engine tok/s (decode phase) | bare loop tok/s | engine/bare | steps | full-batch step ms, engine (median) | bare step ms | decode phase in Step | tail steps, share of the decode phase's Step time | tail step ms, rows (means) |")
	t.Logf("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	var mixes []string
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
			for _, budget := range ints(t, *engineBenchBudget) {
				r := runEngine(t, b, m, p, n, max(n, *engineBenchSeqs), nil, prompt, gen, engine.Config{TokenBudget: budget})
				tailMS, tailRows := 0.0, 0.0
				if r.tailSteps > 0 {
					tailMS, tailRows = 1e3*r.tailSec/float64(r.tailSteps), float64(r.tailTokens)/float64(r.tailSteps)
				}
				t.Logf("| %s | %d, %d | %d | %.0f | %.0f | %.0f | %.2f | %d | %.2f | %.2f | %.3f | %d, %.2f | %.2f, %.0f |", p, n, max(n, *engineBenchSeqs), budget, r.run, r.decode, bare[0].TokPerS, r.decode/bare[0].TokPerS,
					r.steps, r.fullStepMS, 1e3*float64(n)/bare[0].TokPerS, r.inStep, r.tailSteps, r.tailShare, tailMS, tailRows)
				mixes = append(mixes, r.mix.row(fmt.Sprintf("%s | %d, %d | %d", p, n, max(n, *engineBenchSeqs), budget)))
			}
			b.EvictLM(m)
		}
	}
	// Where the run's wall time went, by kind of step.
	t.Logf("")
	t.Logf("| precision | sequences | token budget | run s | in Step s | steps with prefill: n, s, prefill tokens, decoded | decode-only steps: n, s, decoded | with prefill: ms = a + b·decoded + c·prefilled (a ms, b µs, c µs) |")
	t.Logf("|---|---|---|---|---|---|---|---|")
	for _, m := range mixes {
		t.Log(m)
	}
}

// stepMix sums a run's steps by kind: those that prefilled (and may have
// decoded beside) and those that only decoded.
type stepMix struct {
	runSec, preSec, onlySec        float64
	preDec, preTok, onlyN, onlyDec int
	fit                            [3]float64   // ms = fit[0] + fit[1]·dec/1e3 + fit[2]·pre/1e3 over the prefill steps
	steps                          [][3]float64 // the prefill steps: decoded, prefilled, ms
}

func (m *stepMix) add(dec, pre int, took time.Duration) {
	s := took.Seconds()
	if pre == 0 {
		m.onlyN, m.onlySec, m.onlyDec = m.onlyN+1, m.onlySec+s, m.onlyDec+dec
		return
	}
	m.preSec, m.preDec, m.preTok = m.preSec+s, m.preDec+dec, m.preTok+pre
	m.steps = append(m.steps, [3]float64{float64(dec), float64(pre), 1e3 * s})
}

// solve fits the prefill steps' times by least squares. It reports false
// where the fit says nothing: decoded and prefilled tokens almost in
// proportion across the steps (|correlation| > 0.95, as when every step
// fills a small token budget), or too few steps.
func (m *stepMix) solve() bool {
	n := len(m.steps)
	if n < 3 {
		return false
	}
	a, y := mat.NewDense(n, 3, nil), mat.NewVecDense(n, nil)
	dec, pre := make([]float64, n), make([]float64, n)
	for i, st := range m.steps {
		dec[i], pre[i] = st[0], st[1]
		a.SetRow(i, []float64{1, st[0] / 1e3, st[1] / 1e3})
		y.SetVec(i, st[2])
	}
	if r := stat.Correlation(dec, pre, nil); math.IsNaN(r) || math.Abs(r) > 0.95 {
		return false
	}
	var x mat.VecDense
	if err := x.SolveVec(a, y); err != nil {
		return false
	}
	for i := range 3 {
		m.fit[i] = x.AtVec(i)
	}
	return true
}

func (m *stepMix) row(head string) string {
	fit := "– (decoded and prefilled in proportion)"
	if m.solve() {
		fit = fmt.Sprintf("%.2f, %.1f, %.1f", m.fit[0], m.fit[1], m.fit[2])
	}
	return fmt.Sprintf("| %s | %.1f | %.1f | %d, %.1f, %d, %d | %d, %.1f, %d | %s |", head, m.runSec, m.preSec+m.onlySec,
		len(m.steps), m.preSec, m.preTok, m.preDec, m.onlyN, m.onlySec, m.onlyDec, fit)
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
	mix         stepMix
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
		r.mix.add(dec, pre, took)
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
	r.mix.runSec = last.Sub(start).Seconds()
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

// TestStepMixFit: the engine bench's fit of prefill steps' times recovers
// a known linear cost, and declines when decoded and prefilled tokens move
// together.
func TestStepMixFit(t *testing.T) {
	var m stepMix
	for i := range 50 {
		dec, pre := 100+7*i, 2000-31*(i%9)
		m.add(dec, pre, time.Duration((2+0.05*float64(dec)+0.02*float64(pre))*float64(time.Millisecond)))
	}
	if !m.solve() {
		t.Fatal("no fit of independent decoded and prefilled tokens")
	}
	for i, want := range [3]float64{2, 50, 20} {
		if math.Abs(m.fit[i]-want) > 1e-6*math.Max(1, want) {
			t.Errorf("fit[%d] = %g; want %g", i, m.fit[i], want)
		}
	}
	var full stepMix // every step fills a budget of 2,048 tokens
	for i := range 50 {
		full.add(100+7*i, 2048-100-7*i, time.Duration(30+i)*time.Millisecond)
	}
	if full.solve() {
		t.Errorf("a fit %v of decoded and prefilled tokens that add up to the budget", full.fit)
	}
}
