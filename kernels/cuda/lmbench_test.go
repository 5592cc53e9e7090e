package cuda_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

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
	lmBenchFP4SmallM   = flag.Int("lmbench.fp4smallm", 0, "FP4SmallM for the run (0: the backend's; -1: the dequantized-bf16 GEMM only)")
	lmBenchFP4RowMajor = flag.Bool("lmbench.fp4rowmajor", false, "random fp4 weights row-major instead of tiled (FP4RowMajor)")
	lmBenchAttnDec     = flag.Bool("lmbench.attndec", false, "run attention on gbx_attn_dec instead of gbx_attn_mma (LMBench.AttnDec)")
	lmBenchAttnPartial = flag.Bool("lmbench.attnpartial", false, "run every attention on gbx_attn_partial (LMBench.AttnPartial)")
	lmBenchNoPDL       = flag.Bool("lmbench.nopdl", false, "launch without programmatic dependent launch (LMBench.NoPDL)")
	lmBenchInvariant   = flag.Bool("lmbench.invariant", false, "run on a batch-invariant backend (Config.BatchInvariant)")
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
	cfg := cuda.LMBench{Batches: ints(t, *lmBenchBatches), Prompts: ints(t, *lmBenchPrompts), Steps: *lmBenchSteps, GEMVMaxRows: *lmBenchGEMV, FP4SmallM: *lmBenchFP4SmallM, FP4RowMajor: *lmBenchFP4RowMajor, AttnPartial: *lmBenchAttnPartial, AttnDec: *lmBenchAttnDec, NoPDL: *lmBenchNoPDL}
	cfg.Precisions = precisions(t, *lmBenchPrecisions)
	switch *lmBenchModel {
	case "8b":
	case "tiny":
		cfg.Config = &lm.Config{Arch: lm.Llama, Hidden: 256, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 64, Intermediate: 512,
			Vocab: 1000, RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 4096, BOS: lm.NoToken}
	default:
		t.Fatalf("-lmbench.model %q: want 8b or tiny", *lmBenchModel)
	}
	t.Logf("| precision | batch | prompt | step ms | tok/s | weights GB | KV GB | ceiling tok/s | of ceiling |")
	t.Logf("|---|---|---|---|---|---|---|---|---|")
	cfg.Progress = func(r cuda.LMResult) {
		t.Logf("| %s | %d | %d | %.3f | %.0f | %.2f | %.2f | %.0f | %.0f %% |", r.Precision, r.Batch, r.Prompt, r.StepMS, r.TokPerS,
			float64(r.WeightBytes)/1e9, float64(r.KVBytes)/1e9, r.CeilingTokPerS, 100*r.Fraction)
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
