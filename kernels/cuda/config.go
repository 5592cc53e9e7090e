package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/precision"
)

// Environment variables the package reads.
const (
	// EnvLibDir names a folder searched first for libcuda.so.1,
	// libnvrtc.so.13 (with libnvrtc-builtins.so.13.0) and libcublasLt.so.13,
	// for unusual installs. After it: the sonames through the dynamic
	// loader, $CUDA_HOME/lib64, /usr/local/cuda/lib64.
	EnvLibDir = "GEARBOX_CUDA_LIB_DIR"
	// EnvCacheDir overrides where compiled kernels (cubins) are cached:
	// default os.UserCacheDir()/gearbox/cubin. "off" disables the cache.
	EnvCacheDir = "GEARBOX_CUDA_CACHE"
	// EnvBatchInvariant, set to "true" or "1", turns Config.BatchInvariant
	// on for backends whose Config leaves it off ("false", "0" or unset:
	// off).
	EnvBatchInvariant = "GEARBOX_CUDA_BATCH_INVARIANT"
	// EnvInFlight, a number from 1 to 16, sets Config.InFlight for
	// backends whose Config leaves it 0.
	EnvInFlight = "GEARBOX_CUDA_IN_FLIGHT"
	// EnvPDL, set to "false" or "0", turns Config.NoPDL on ("true", "1"
	// or unset: programmatic dependent launch where the device has it).
	EnvPDL = "GEARBOX_CUDA_PDL"
	// EnvPrefillAttention, set to "false" or "0", turns
	// Config.NoPrefillAttention on ("true", "1" or unset: prefill chunks
	// attend on gbx_attn_prefill where it applies).
	EnvPrefillAttention = "GEARBOX_CUDA_PREFILL_ATTENTION"
)

// ErrInvalidConfig is returned (wrapped) by New for a Config field out of
// range.
var ErrInvalidConfig = errors.New("cuda: invalid config")

// Config configures a Backend. The zero value is ready to use.
type Config struct {
	// Device is the CUDA device ordinal. Default 0.
	Device int
	// FP8Margin is the margin of the per-row fp8 activation scales, as in
	// the CPU backend (precision.FP8Scale): 0 (default) to
	// precision.MaxMargin.
	FP8Margin int
	// CacheDir is where compiled kernels are cached. Empty means
	// $GEARBOX_CUDA_CACHE, else os.UserCacheDir()/gearbox/cubin; "off"
	// disables the cache (every Open compiles).
	CacheDir string
	// Logger receives the backend's log lines (device opened, batch split
	// after running out of memory). Nil means zerolog's global logger.
	Logger *zerolog.Logger
	// FP4SmallM is the largest batch (rows) that runs fp4 layers on the
	// weight-only NVFP4 kernel; larger batches use the dequantized-bf16
	// GEMM. 0 means the measured default (see docs/cuda.md); -1 never
	// uses the NVFP4 kernel.
	FP4SmallM int
	// FP4WideM is the largest batch (rows) above FP4SmallM that runs fp4
	// layers of at least FP4WideMinWeights weights on the wide NVFP4 kernel
	// (gbx_nvfp4_gemm_wide: wgmma, 128 channels and 64 batch rows a CTA,
	// weights in the tiled layout; Hopper only); other layers and larger
	// batches use the dequantized-bf16 GEMM. 0 means the measured default
	// (defaultFP4WideM); -1 never uses it.
	FP4WideM int
	// FP4WideMinWeights is the smallest layer (output channels × inputs)
	// the wide NVFP4 kernel takes. 0 means the measured default
	// (defaultFP4WideMinWeights); -1 any layer.
	FP4WideMinWeights int64
	// GEMVMaxRows is the largest batch (rows) whose bf16, fp16 and fp8
	// linear layers run on Gearbox's own tensor-core kernel (gemv.cu)
	// rather than on cuBLASLt. 0 means the default, GEMVMaxRowsDefault
	// (batch 1); -1 never uses it.
	GEMVMaxRows int
	// NoGraphs turns off CUDA graphs: by default the second Forward of a
	// model at a precision and batch size is captured into a graph that
	// later ones replay, which removes most of the host's launch work.
	NoGraphs bool
	// NoPDL turns off programmatic dependent launch (or
	// $GEARBOX_CUDA_PDL=false): by default, on compute capability 9.0 and
	// up, every kernel is launched so that its blocks are scheduled while
	// the previous kernel finishes, and each waits for it before touching
	// memory (docs/cuda.md).
	NoPDL bool
	// InFlight is how many batches of one batch-size bucket a tensor
	// model's Forward calls keep in flight at once: each has its own
	// pinned staging buffers, device activations and CUDA graphs, so
	// concurrent callers copy their inputs and outputs and wait for the
	// GPU on their own goroutines while the device goroutine only queues
	// work. 0 means $GEARBOX_CUDA_IN_FLIGHT, else InFlightDefault; 1 runs
	// one batch of a bucket at a time (as before Forward overlapped).
	InFlight int
	// BatchInvariant makes a row's results independent of the other rows
	// of its batch (issue 14): every cuBLASLt GEMM of a shape runs one
	// algorithm, chosen for InvariantRefRows rows with split-K off,
	// whatever the batch's row count; fp8 GEMMs take their scales the same
	// way at every row count; fp4 layers always run the dequantized-bf16
	// GEMM (FP4SmallM and FP4WideM must be 0, which then means -1) and gbx_gemv is not
	// used (GEMVMaxRows must be 0 or -1). Default off, or
	// $GEARBOX_CUDA_BATCH_INVARIANT. What it costs: docs/cuda.md.
	BatchInvariant bool
	// NoPrefillAttention (or $GEARBOX_CUDA_PREFILL_ATTENTION=false) keeps
	// the attention of prefill chunks on the decode kernels. By default a
	// step's prefill chunks of several rows over a BF16 or E4M3 cache
	// (every precision but fp32 and tf32; head dim 64 or 128, up to 16
	// query heads a KV head, compute capability 8.0 and up) attend on
	// gbx_attn_prefill, FlashAttention's layout, where the step's decode
	// rows, if any, come first: docs/prefill-attention.md (a 2,048-token
	// prompt's first token 27 % sooner on an H200). BatchInvariant implies
	// it: a prompt's row in a chunk of one (as a token budget may cut it)
	// attends on the decode kernels, in a longer chunk on gbx_attn_prefill,
	// which sums in another order.
	NoPrefillAttention bool
}

// InvariantRefRows is the row count whose heuristic algorithm a
// batch-invariant backend (Config.BatchInvariant) runs at every row count.
const InvariantRefRows = 128

// InFlightDefault is the default Config.InFlight: batch N+1 staged and
// queued while batch N runs and batch N-1 is copied out.
const InFlightDefault = 3

// maxInFlight bounds Config.InFlight (each slot holds a bucket's buffers).
const maxInFlight = 16

// validate checks c and fills in defaults.
func (c *Config) validate() error {
	if c.Device < 0 {
		return fmt.Errorf("%w: Device = %d, want >= 0", ErrInvalidConfig, c.Device)
	}
	if c.FP8Margin < 0 || c.FP8Margin > precision.MaxMargin {
		return fmt.Errorf("%w: FP8Margin = %d, want 0 to %d", ErrInvalidConfig, c.FP8Margin, precision.MaxMargin)
	}
	if c.FP4SmallM < -1 {
		return fmt.Errorf("%w: FP4SmallM = %d, want >= -1", ErrInvalidConfig, c.FP4SmallM)
	}
	if c.FP4WideMinWeights < -1 {
		return fmt.Errorf("%w: FP4WideMinWeights = %d, want >= -1", ErrInvalidConfig, c.FP4WideMinWeights)
	}
	if c.FP4WideM < -1 {
		return fmt.Errorf("%w: FP4WideM = %d, want >= -1", ErrInvalidConfig, c.FP4WideM)
	}
	if c.GEMVMaxRows < -1 || c.GEMVMaxRows > gemvMaxM {
		return fmt.Errorf("%w: GEMVMaxRows = %d, want -1 to %d", ErrInvalidConfig, c.GEMVMaxRows, gemvMaxM)
	}
	if c.InFlight < 0 || c.InFlight > maxInFlight {
		return fmt.Errorf("%w: InFlight = %d, want 0 to %d", ErrInvalidConfig, c.InFlight, maxInFlight)
	}
	if v := os.Getenv(EnvInFlight); c.InFlight == 0 && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxInFlight {
			return fmt.Errorf("%w: $%s = %q, want 1 to %d", ErrInvalidConfig, EnvInFlight, v, maxInFlight)
		}
		c.InFlight = n
	}
	if c.InFlight == 0 {
		c.InFlight = InFlightDefault
	}
	if pdl, err := envBool(EnvPDL, true); err != nil {
		return err
	} else if !pdl {
		c.NoPDL = true
	}
	if pf, err := envBool(EnvPrefillAttention, true); err != nil {
		return err
	} else if !pf {
		c.NoPrefillAttention = true
	}
	if inv, err := envBool(EnvBatchInvariant, false); err != nil {
		return err
	} else if inv {
		c.BatchInvariant = true
	}
	if c.BatchInvariant {
		// One path per layer at every row count: the small-batch kernels
		// would make a row's sums depend on how many rows share it.
		if c.FP4SmallM > 0 {
			return fmt.Errorf("%w: FP4SmallM = %d with BatchInvariant, want 0 or -1", ErrInvalidConfig, c.FP4SmallM)
		}
		if c.FP4WideM > 0 {
			return fmt.Errorf("%w: FP4WideM = %d with BatchInvariant, want 0 or -1", ErrInvalidConfig, c.FP4WideM)
		}
		if c.GEMVMaxRows > 0 {
			return fmt.Errorf("%w: GEMVMaxRows = %d with BatchInvariant, want 0 or -1", ErrInvalidConfig, c.GEMVMaxRows)
		}
		// A prompt's row in a chunk of one (as a token budget may cut it)
		// attends on the decode kernels, in a longer chunk on
		// gbx_attn_prefill: other sums.
		c.FP4SmallM, c.FP4WideM, c.GEMVMaxRows, c.NoPrefillAttention = -1, -1, -1, true
	}
	if c.GEMVMaxRows == 0 {
		c.GEMVMaxRows = GEMVMaxRowsDefault
	}
	if c.FP4SmallM == 0 {
		c.FP4SmallM = defaultFP4SmallM
	}
	if c.FP4WideM == 0 {
		c.FP4WideM = defaultFP4WideM
	}
	if c.FP4WideMinWeights == 0 {
		c.FP4WideMinWeights = defaultFP4WideMinWeights
	}
	if c.CacheDir == "" {
		c.CacheDir = os.Getenv(EnvCacheDir)
	}
	if c.CacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			c.CacheDir = filepath.Join(d, "gearbox", "cubin")
		} else {
			c.CacheDir = "off"
		}
	}
	return nil
}

// GEMVMaxRowsDefault is the default GEMVMaxRows: batch 1, where gbx_gemv,
// its first weights loaded before it waits, beat cuBLASLt on the H200 by
// 3-5 % a decode step at bf16 and fp8; at batch 8 it lost 4 % at fp8
// (docs/benchmarks.md, "tenth pass").
const GEMVMaxRowsDefault = 1

// gemvMaxM is the most rows gbx_gemv takes (abi.h GBX_GEMV_MAX_M).
const gemvMaxM = 8

// defaultFP4SmallM is the measured crossover of the NVFP4 kernel against the
// dequantized-bf16 GEMM (docs/cuda.md): on an H200, in decode steps of
// Llama-3.1-8B's shapes, the kernel wins up to 16 rows (1.44× at 8, 1.11× at
// 16) and loses from 20 (0.96×; 0.93× at 32). (On an H100, one 8192×8192
// layer alone, it won up to 32.)
const defaultFP4SmallM = 16

// defaultFP4WideM and defaultFP4WideMinWeights: the wide NVFP4 kernel takes
// batches of 17-64 rows in layers of at least 2^25 weights. On the H200, at
// 32-64 rows it beat the bf16 GEMM in Llama-3.1-8B's gate/up (28672 × 4096:
// 47.9 against 71.5 µs at 32 rows, 60.6 against 72.9 at 64) and down
// projections (4096 × 14336: 35.6 against 43.6 at 64), and lost in q/k/v
// and o at 48-64 rows (6144 × 4096: 26.8 against 22.6 µs at 64 rows),
// whose K is split over CTAs; from 128 rows it loses everywhere
// (docs/benchmarks.md, "twelfth pass"). Decode at batch 32: 1.13× the bf16
// GEMM's tok/s.
const (
	defaultFP4WideM          = 64
	defaultFP4WideMinWeights = 1 << 25
)

// envBool reads the boolean variable name: "true" or "1", "false" or "0",
// def where unset; another value is an error naming it.
func envBool(name string, def bool) (bool, error) {
	switch v := os.Getenv(name); v {
	case "":
		return def, nil
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	default:
		return false, fmt.Errorf("%w: $%s = %q, want true, 1, false or 0", ErrInvalidConfig, name, v)
	}
}
