package cuda

import (
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// HBMBandwidth is the memory bandwidth BenchLM's ceilings assume: an
// H200's 4.8 TB/s.
const HBMBandwidth = 4.8e12

// Llama31_8B is Llama-3.1-8B's architecture (hidden 4096, 32 layers, MLP
// 14,336, 32 heads over 8 KV heads of 128, vocabulary 128,256, llama3 RoPE
// scaling, untied head): BenchLM's default model.
var Llama31_8B = lm.Config{
	Arch: lm.Llama, Hidden: 4096, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Intermediate: 14336,
	Vocab: 128256, RMSEps: 1e-5, RopeTheta: 500000, MaxPositions: 131072, BOS: 128000, EOS: []int32{128001},
	RopeScaling: &lm.RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192},
}

// LMBench configures BenchLM. Zero fields take the defaults given.
type LMBench struct {
	// Config is the model's architecture (default Llama31_8B). Its weights
	// are random, generated on the device in each precision's layout: no
	// checkpoint is read and nothing of the model's size is allocated on
	// the host.
	Config *lm.Config
	// Precisions to run (default bf16, fp8, fp4).
	Precisions []precision.Format
	// Batches are the numbers of sequences decoding together (default 1,
	// 8, 64, 256).
	Batches []int
	// Prompts are the context lengths decoding starts from (default 128,
	// 2048). Without Prefill the prompts' K and V are random values written
	// straight into the cache: prefill is not timed, and skipping it keeps
	// the benchmark to seconds.
	Prompts []int
	// Prefill, if set, prefills each case's prompts (random tokens) for
	// real and times it (LMResult.TTFTMS): the batch's sequences arrive
	// together and are fed in order, at most PrefillTokens tokens a step
	// (default 2048, the engine's default token budget), a sequence's
	// prompt split over steps where it does not fit, as the engine's
	// chunked prefill does with nothing yet decoding; its first step is
	// run once untimed first.
	Prefill       bool
	PrefillTokens int
	// Energy, if set, reads a cumulative energy counter in joules (the
	// GPU's, from NVML) before and after each case's timed decode steps:
	// LMResult.JoulesPer1kTokens.
	Energy func() (float64, error)
	// MinSeconds, if above 0, runs each case's timed steps again, from the
	// same positions and tokens, until they have taken that long in all,
	// so that an energy counter is read over a window much longer than
	// its updates (NVML's: tens of milliseconds).
	MinSeconds float64
	// Steps is the number of timed decode steps per case (default 20),
	// after Warmup untimed ones (default 3).
	Steps, Warmup int
	// GEMVMaxRows, if not 0, replaces the backend's Config.GEMVMaxRows for
	// the run (-1: cuBLASLt for every batch), for side-by-side timings.
	GEMVMaxRows int
	// FP4SmallM, if not 0, replaces the backend's Config.FP4SmallM for the
	// run (-1: fp4 on the dequantized-bf16 GEMM at every batch).
	FP4SmallM int
	// FP4WideM, if not 0, replaces the backend's Config.FP4WideM for the
	// run (-1: the wide NVFP4 kernel off).
	FP4WideM int
	// FP4WideMinWeights, if not 0, replaces the backend's
	// Config.FP4WideMinWeights for the run (-1: any layer).
	FP4WideMinWeights int64
	// FP4RowMajor, if set, stores the random fp4 weights row-major for the
	// run instead of in the NVFP4 kernel's tiled layout, for side-by-side
	// timings.
	FP4RowMajor bool
	// AttnPartial, if set, runs every attention on gbx_attn_partial, the
	// general kernel, instead of gbx_attn_mma where it takes the shape.
	AttnPartial bool
	// AttnDec, if set, runs attention on gbx_attn_dec (the CUDA-core form
	// of gbx_attn_mma) where it takes the shape.
	AttnDec bool
	// AttnRing, if not 0, replaces the backend's choice of gbx_attn_mma's
	// _ring entry points (compute capability 9.0) for the run: -1 never,
	// 1 in every launch that would take the plain ones.
	AttnRing int
	// RegsRows, if not 0, is the most rows of a step whose row kernels run
	// their _small forms, rows in registers (default GBX_REGS_MAX_ROWS).
	RegsRows int
	// SiLURow, if not 0, is the fewest rows of a step whose SiLU runs
	// gbx_lm_silu_row (default siluRowMinRows; -1 never).
	SiLURow int
	// RowThreads, if not 0, is the threads of the per-row kernels' blocks
	// (the norms, quant_rows, the embedding, SiLU's split form) in a step
	// of more rows than RegsRows, up to 256 (default 1,024): 256, 512 or
	// 1,024.
	RowThreads int
	// AttnScratchMiB, if not 0, is attention's scratch for its splits'
	// partial results for the run (default 64 MiB): a step's rows go to
	// attention in launches of as many rows as it holds (504 rows of
	// Llama-3.1-8B at 8 splits: a 2,048-token prefill is five launches a
	// layer).
	AttnScratchMiB int
	// NoAttnPrefill, if set, keeps the attention of prefill chunks on the
	// decode kernels for the run (Config.NoPrefillAttention).
	NoAttnPrefill bool
	// AttnPrefillWG, if not 0, picks gbx_attn_prefill's form for the run:
	// 1 the warpgroup (wgmma) form (compute capability 9.0 only; its
	// default there), −1 the mma.sync form (the default elsewhere).
	AttnPrefillWG int
	// NoPDL, if set, launches every kernel without programmatic dependent
	// launch for the run (Config.NoPDL).
	NoPDL bool
	// NoGraphs, if set, runs every decode step eagerly for the run
	// (Config.NoGraphs): what an engine's step costs when its shape is new,
	// as in the tail of a run, where every step has fewer rows than the
	// one before.
	NoGraphs bool
	// ScatterBlocks, if set, hands the sequences' KV blocks out in a
	// random order over the cache, as an engine's free list does after
	// sequences have come and gone, instead of each sequence's blocks
	// consecutive.
	ScatterBlocks bool
	// Progress, if set, is called after each case.
	Progress func(LMResult)
}

// LMResult is one timed case of BenchLM: batch sequences, each with
// Prompt positions of context, decoding one token per step greedily.
type LMResult struct {
	Precision     precision.Format
	Batch, Prompt int
	// StepMS is the median wall time of a Step (host work, uploads, every
	// kernel, the download of the sampled tokens), in milliseconds; MinMS
	// the fastest.
	StepMS, MinMS float64
	// TokPerS is Batch / StepMS: generated tokens per second.
	TokPerS float64
	// WeightBytes and KVBytes are the bytes a step reads: every linear
	// layer's weights in the format the step's batch size reads them (fp4:
	// NVFP4 up to the kernel's crossover, bf16 above), the head; the KV
	// cache of every sequence at its mean context over the timed steps, in
	// the cache's format (kernels.KVBlockBytes: fp8 and fp4's E4M3 values
	// and their scales).
	WeightBytes, KVBytes int64
	// CeilingTokPerS is Batch / ((WeightBytes + KVBytes) / HBMBandwidth),
	// and Fraction is TokPerS / CeilingTokPerS.
	CeilingTokPerS, Fraction float64
	// TimedSteps is the decode steps timed: Steps, times the runs
	// MinSeconds asked for.
	TimedSteps int
	// With Prefill: TTFTMS is the median (an even batch's upper one) over
	// the batch's sequences of the time from the start of the prefill to
	// the end of the step that gave the sequence its first token,
	// LastTTFTMS the batch's last (the whole prefill), and PrefillTokPerS
	// the prompt tokens fed a second over it.
	TTFTMS, LastTTFTMS, PrefillTokPerS float64
	// JoulesPer1kTokens is the energy counter's increase over the timed
	// steps per 1,000 tokens they generated; nil without Energy (unknown,
	// not zero).
	JoulesPer1kTokens *float64 `json:",omitempty"`
}
