// Package cpu is the pure-Go kernels.Backend: it runs every model op on the
// host CPU and is always present, so a worker without a GPU still serves.
//
// The package registers itself with kernels.Register under the kind "cpu" in
// init; package main blank-imports it:
//
//	import _ "github.com/gearbox-inference/gearbox/kernels/cpu"
//
//	b, _, err := kernels.Open("cpu")
//
// Programs that want to set the thread count call New directly.
//
// # Precision
//
// Forward runs every concrete format (precision.All): fp32 natively and the
// others by emulating the GPU's tensor-core numerics (Capabilities returns
// precision.CPUCapabilities). Auto, the empty format and unknown names fail
// with an error wrapping kernels.ErrUnsupported; the backend never
// substitutes one precision for another.
//
// At fp32, activations and weights are float32 and matrix products
// accumulate in float32. Transcendental activations (gelu, silu, tanh,
// softmax's exp) are evaluated in float64 and rounded once, and the row
// statistics of layernorm and rmsnorm accumulate in float64, so the only
// float32 error that matters is that of the matrix products.
//
// Below fp32 only the two operands of each linear layer change: they are
// rounded, or quantized and dequantized, exactly as the hardware holds them,
// and then multiplied by the same fp32 GEMM (the products of such operands
// are exact in float32, so what remains is float32 accumulation, as on
// tensor cores):
//
//	format  weights (converted once)             layer input X (every call)
//	tf32    RoundTF32                            RoundTF32
//	bf16    RoundBF16                            RoundBF16
//	fp16    RoundFP16                            RoundFP16
//	fp8     E4M3, one scale per output channel   E4M3, one scale per row (token):
//	        (QuantizeFP8PerChannel, margin 0)    FP8Scale(Amax(row), Config.FP8Margin)
//	fp4     NVFP4 (QuantizeNVFP4): E2M1 in       RoundBF16 (weight-only 4-bit)
//	        blocks of 16 along In, E4M3 block
//	        scales, a float32 tensor scale
//
// Biases, norm parameters and every op other than linear stay fp32. Every
// op works row by row and every output is one dot product in a fixed
// order, so a row's result is bit for bit the same alone and in any batch:
// at fp8 each row has its own activation scale, so another job's row of
// huge values (or of Inf or NaN, which make only their own row NaN) cannot
// change it. The caller's input is never modified: it is rounded into a
// scratch buffer.
//
// The converted weights, dequantized to float32 ready for the GEMM, are
// built lazily by the first Forward of a model at a precision and cached,
// keyed by the *model.Model and the precision; concurrent first calls build
// them once. Each cached set costs 4 bytes per linear weight; Evict drops a
// model's sets. WeightBytes reports what the weights would take stored
// natively at a precision (precision.WeightBytes), for memory accounting.
//
// On the 512→2048→512 gelu model of precision_test.go (64 rows, input
// N(0, 1) with outlier columns ×10) the relative L2 errors against Reference
// are about: fp32 3.3e-7, tf32 4.3e-4, fp16 4.3e-4, bf16 3.3e-3, fp8 4.9e-2,
// fp4 0.14. Emulation costs little: rounding X is linear in its size while
// the product is quadratic, so every precision runs within noise of fp32
// (BenchmarkForwardPrecision).
//
// # Language models
//
// The Backend also implements kernels.LM for causal language models
// (package model/lm; files lm*.go): a float32 forward pass over a paged KV
// cache of KVBlockSize-token blocks, with prefill and decode rows in one
// Step. Linear layers are emulated at every precision by the rules above,
// with two differences: the head runs at bf16 for fp8 and fp4; and the KV
// cache holds bf16 values at every precision but fp32 and tf32. Every op
// works row by row with a fixed reduction order, so a sequence's logits are
// bit for bit the same whatever it is batched with, whatever the thread
// count, and whether its prefix was prefilled or decoded. docs/models-lm.md
// states the rules; LMReference is the float64 yardstick. A language
// model's weights are converted once per precision and cached like a
// tensor model's; EvictLM drops them.
//
// # Reference
//
// Reference is a plain float64 forward pass written for clarity, not speed.
// It is the executable specification of the ops: tests, other backends and
// the quality loop measure their error against it.
//
// # Parallelism
//
// Linear layers split the output into 64×64 tiles that a pool of
// Config.Threads goroutines (the caller included) takes in turn; each tile
// is one small gonum blas32.Gemm call, which gonum then runs serially. This
// is about twice as fast as letting gonum parallelise a whole product itself
// (see gemm.go for the numbers). Elementwise and per-row ops split their rows
// across the same number of goroutines once a layer is large enough for that
// to pay. A forward pass allocates its output and, when scratch space is not
// already pooled, up to three scratch buffers; the results do not depend on the
// thread count or on how the tiles were scheduled.
package cpu
