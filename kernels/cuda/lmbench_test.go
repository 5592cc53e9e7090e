package cuda_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/kernels/cuda"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// The decode benchmark runs from the test binary on the GPU host:
//
//	.gpubin/cuda.test -test.run TestLMBench -test.v -test.timeout 30m -lmbench -lmbench.json $OUT/lmbench.json
var (
	lmBench            = flag.Bool("lmbench", false, "run TestLMBench, the language-model decode benchmark")
	lmBenchModel       = flag.String("lmbench.model", "8b", "the model's shapes: 8b (Llama-3.1-8B's) or tiny (a smoke test)")
	lmBenchPrecisions  = flag.String("lmbench.precisions", "bf16,fp8,fp4", "precisions, comma-separated")
	lmBenchBatches     = flag.String("lmbench.batches", "1,8,64,256", "batch sizes, comma-separated")
	lmBenchPrompts     = flag.String("lmbench.prompts", "128,2048", "context lengths decoding starts from, comma-separated")
	lmBenchSteps       = flag.Int("lmbench.steps", 20, "timed decode steps per case")
	lmBenchJSON        = flag.String("lmbench.json", "", "also write the results to this file as JSON")
	lmBenchGEMV        = flag.Int("lmbench.gemv", 0, "GEMVMaxRows for the run (0: the backend's; -1: cuBLASLt only)")
	lmBenchNoAttnPref  = flag.Bool("lmbench.noattnprefill", false, "LMBench.NoAttnPrefill: prefill chunks' attention on the decode kernels, not gbx_attn_prefill")
	lmBenchPFWG        = flag.Int("lmbench.attnprefillwg", 0, "LMBench.AttnPrefillWG: gbx_attn_prefill's form, 1 warpgroup (wgmma, compute capability 9.0), -1 mma.sync (0: the backend's)")
	lmBenchAttnScratch = flag.Int("lmbench.attnscratch", 0, "LMBench.AttnScratchMiB: attention's partial-results scratch in MiB (0: 64)")
	lmBenchFP4SmallM   = flag.Int("lmbench.fp4smallm", 0, "FP4SmallM for the run (0: the backend's; -1: the dequantized-bf16 GEMM only)")
	lmBenchFP4WideM    = flag.Int("lmbench.fp4wide", 0, "FP4WideM for the run (0: the backend's; -1: the wide NVFP4 kernel off)")
	lmBenchFP4WideMinW = flag.Int64("lmbench.fp4wideminw", 0, "FP4WideMinWeights for the run (0: the backend's; -1: any layer)")
	lmBenchFP4RowMajor = flag.Bool("lmbench.fp4rowmajor", false, "random fp4 weights row-major instead of tiled (FP4RowMajor)")
	lmBenchAttnDec     = flag.Bool("lmbench.attndec", false, "run attention on gbx_attn_dec instead of gbx_attn_mma (LMBench.AttnDec)")
	lmBenchAttnRing    = flag.Int("lmbench.attnring", 0, "gbx_attn_mma's _ring entry points for the run (LMBench.AttnRing): 0 the backend's choice, -1 never, 1 always")
	lmBenchRegsRows    = flag.Int("lmbench.regsrows", 0, "the most rows whose row kernels run their _small forms (LMBench.RegsRows; 0 the default)")
	lmBenchSiLURow     = flag.Int("lmbench.silurow", 0, "the fewest rows whose SiLU runs gbx_lm_silu_row (LMBench.SiLURow; 0 the default, -1 never)")
	lmBenchAttnPartial = flag.Bool("lmbench.attnpartial", false, "run every attention on gbx_attn_partial (LMBench.AttnPartial)")
	lmBenchNoPDL       = flag.Bool("lmbench.nopdl", false, "launch without programmatic dependent launch (LMBench.NoPDL)")
	lmBenchNoGraphs    = flag.Bool("lmbench.nographs", false, "run every decode step eagerly, no CUDA graphs (LMBench.NoGraphs): an engine step of a new shape")
	lmBenchRowThreads  = flag.Int("lmbench.rowthreads", 0, "threads of the per-row kernels' blocks from RegsRows+1 to 256 rows (LMBench.RowThreads; 0 the default, 1,024)")
	lmBenchScatter     = flag.Bool("lmbench.scatter", false, "hand the KV blocks out in a random order over the cache (LMBench.ScatterBlocks)")
	lmBenchInvariant   = flag.Bool("lmbench.invariant", false, "run on a batch-invariant backend (Config.BatchInvariant)")
	lmBenchPrefill     = flag.Bool("lmbench.prefill", false, "prefill the prompts for real and time it (LMBench.Prefill): TTFT")
)

func ints(t *testing.T, s string) []int {
	t.Helper()
	var v []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("bad list %q: %v", s, err)
		}
		v = append(v, n)
	}
	return v
}

// precisions parses a comma-separated list of precisions.
func precisions(t *testing.T, list string) []precision.Format {
	t.Helper()
	var ps []precision.Format
	for _, s := range strings.Split(list, ",") {
		p, err := precision.Parse(strings.TrimSpace(s))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// TestLMBench times decode steps of a random model (Llama-3.1-8B's shapes
// by default) at bf16, fp8 and fp4, batch 1 to 256, from contexts of 128
// and 2,048 tokens, and prints tokens/s and the fraction of the bandwidth
// ceiling (bytes of weights and KV cache read per step ÷ 4.8 TB/s).
func TestLMBench(t *testing.T) {
	if !*lmBench {
		t.Skip("the decode benchmark runs with -lmbench")
	}
	g, err := cudaBackend()
	if *lmBenchInvariant {
		g, err = cudaInvariant()
	}
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	cfg := cuda.LMBench{Batches: ints(t, *lmBenchBatches), Prompts: ints(t, *lmBenchPrompts), Steps: *lmBenchSteps, GEMVMaxRows: *lmBenchGEMV, AttnScratchMiB: *lmBenchAttnScratch, NoAttnPrefill: *lmBenchNoAttnPref, AttnPrefillWG: *lmBenchPFWG, FP4SmallM: *lmBenchFP4SmallM, FP4WideM: *lmBenchFP4WideM, FP4WideMinWeights: *lmBenchFP4WideMinW, FP4RowMajor: *lmBenchFP4RowMajor, AttnPartial: *lmBenchAttnPartial, AttnDec: *lmBenchAttnDec, AttnRing: *lmBenchAttnRing, RegsRows: *lmBenchRegsRows, SiLURow: *lmBenchSiLURow, RowThreads: *lmBenchRowThreads, NoPDL: *lmBenchNoPDL, NoGraphs: *lmBenchNoGraphs, ScatterBlocks: *lmBenchScatter, Prefill: *lmBenchPrefill}
	cfg.Precisions = precisions(t, *lmBenchPrecisions)
	c := benchModel(t, "-lmbench.model", *lmBenchModel)
	cfg.Config = &c
	t.Logf("| precision | batch | prompt | step ms | tok/s | weights GB | KV GB | ceiling tok/s | of ceiling | TTFT p50 ms | prefill ms |")
	t.Logf("|---|---|---|---|---|---|---|---|---|---|---|")
	cfg.Progress = func(r cuda.LMResult) {
		t.Logf("| %s | %d | %d | %.3f | %.0f | %.2f | %.2f | %.0f | %.0f %% | %.1f | %.1f |", r.Precision, r.Batch, r.Prompt, r.StepMS, r.TokPerS,
			float64(r.WeightBytes)/1e9, float64(r.KVBytes)/1e9, r.CeilingTokPerS, 100*r.Fraction, r.TTFTMS, r.LastTTFTMS)
	}
	res, err := g.(*cuda.Backend).BenchLM(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if *lmBenchJSON != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*lmBenchJSON, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(os.Stderr, "lmbench: %d cases\n", len(res))
}

// TestLMBenchPrefill runs BenchLM's prefill, energy and repeated steps on a
// tiny model: each sequence's first token comes from a prefill step, the
// batch's last after the median, prefill tokens/s over the last one's time,
// the timed steps whole runs until MinSeconds, and joules per 1,000 tokens
// the counter's increase over the tokens they generated.
func TestLMBenchPrefill(t *testing.T) {
	g, err := cudaBackend()
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	var reads []time.Time // a case reads the counter before and after its timed steps
	counter := func() (float64, error) {
		reads = append(reads, time.Now())
		return 1000 + 7.5*float64(len(reads)), nil // 7.5 J between reads
	}
	cfg := cuda.LMBench{
		Config: &lm.Config{Arch: lm.Llama, Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32, Intermediate: 256,
			Vocab: 500, RMSEps: 1e-5, RopeTheta: 1e4, MaxPositions: 1024, BOS: lm.NoToken},
		Precisions: []precision.Format{precision.BF16}, Batches: []int{1, 5}, Prompts: []int{40}, Steps: 3, Warmup: 1,
		Prefill: true, PrefillTokens: 64, Energy: counter, MinSeconds: 0.05,
	}
	res, err := g.(*cuda.Backend).BenchLM(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) != 4 {
		t.Fatalf("%d energy reads for 2 cases, want 2 each", len(reads))
	}
	for i := range 2 {
		if d := reads[2*i+1].Sub(reads[2*i]); d < 50*time.Millisecond {
			t.Errorf("case %d: timed steps within %v, want MinSeconds (50 ms) or more", i, d)
		}
	}
	if len(res) != 2 {
		t.Fatalf("%d results, want 2", len(res))
	}
	for _, r := range res {
		if !(r.TTFTMS > 0 && r.LastTTFTMS >= r.TTFTMS) {
			t.Errorf("batch %d: TTFT %g ms, last %g ms; want 0 < TTFT <= last", r.Batch, r.TTFTMS, r.LastTTFTMS)
		}
		if want := float64(r.Batch*40) / (r.LastTTFTMS / 1e3); math.Abs(r.PrefillTokPerS-want) > 1e-9*want {
			t.Errorf("batch %d: prefill %g tok/s, want %g (prompt tokens over the last TTFT)", r.Batch, r.PrefillTokPerS, want)
		}
		// Whole runs of 3, the last begun before 50 ms had passed.
		if r.TimedSteps < 3 || r.TimedSteps%3 != 0 || float64(r.TimedSteps-3)*r.MinMS >= 50 {
			t.Errorf("batch %d: %d timed steps of at least %g ms; want whole runs of 3, no run begun after 50 ms", r.Batch, r.TimedSteps, r.MinMS)
		}
		if want := 7.5 / float64(r.Batch*r.TimedSteps) * 1000; r.JoulesPer1kTokens == nil || math.Abs(*r.JoulesPer1kTokens-want) > 1e-9 {
			t.Errorf("batch %d: J/1k tokens %v, want %g", r.Batch, r.JoulesPer1kTokens, want)
		}
	}
	// Batch 5 of 40-token prompts at 64 tokens a step: sequence 0 ends in
	// step 1, 1 and 2 in step 2 (16 + 40 + 8 of 3), 3 in step 3 (32 + 32
	// of 4), 4 in step 4: the median (sequence 2) comes before the last.
	if r := res[1]; !(r.TTFTMS < r.LastTTFTMS) {
		t.Errorf("batch 5: TTFT p50 %g ms, last %g ms; want the median before the last", r.TTFTMS, r.LastTTFTMS)
	}
	if _, err := g.(*cuda.Backend).BenchLM(context.Background(), cuda.LMBench{Config: cfg.Config, Prompts: []int{0}, Prefill: true}); err == nil ||
		!strings.Contains(err.Error(), "prompt of 0 tokens") {
		t.Errorf("a 0-token prompt with Prefill: %v, want an error naming it", err)
	}
	if _, err := g.(*cuda.Backend).BenchLM(context.Background(), cuda.LMBench{Config: cfg.Config, Precisions: cfg.Precisions, Batches: []int{1}, Prompts: []int{1001}}); err == nil ||
		!strings.Contains(err.Error(), "passes max_position_embeddings 1024") {
		t.Errorf("a prompt of 1001 + 3 + 20 steps (+ 1) on a 1024-position model: %v, want an error before any case", err)
	}
}

// benchModel is the model's shapes a benchmark's flag (named flag) names:
// 8b, Llama-3.1-8B's, or tiny, a smoke test's (the emulator's).
func benchModel(t *testing.T, flag, name string) lm.Config {
	switch name {
	case "8b":
		return cuda.Llama31_8B
	case "tiny":
		return lm.Config{Arch: lm.Llama, Hidden: 256, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 64, Intermediate: 512,
			Vocab: 1000, RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 4096, BOS: lm.NoToken}
	}
	t.Fatalf("%s %q: want 8b or tiny", flag, name)
	return lm.Config{}
}
