package cuda

import "fmt"

// DeviceInfo describes the opened device.
type DeviceInfo struct {
	Ordinal int
	Name    string // e.g. "NVIDIA H100 80GB HBM3"
	// UUID is the device's UUID as nvidia-smi and NVML print it,
	// "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" ("MIG-…" for a MIG
	// instance); "" when the driver cannot say. Unlike Ordinal, which
	// CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER renumber, it names one
	// physical GPU.
	UUID          string
	Major, Minor  int // compute capability
	SMs           int
	TotalMemory   uint64 // bytes
	DriverVersion int    // e.g. 13000
	NVRTCVersion  string // e.g. "13.0"
	CublasLt      int    // cublasLtGetVersion, e.g. 130100
	Arch          string // NVRTC --gpu-architecture option
	// PDL says kernels are launched with programmatic dependent launch
	// (compute capability 9.0 and up, cuLaunchKernelEx, not Config.NoPDL).
	PDL bool
	// PrefillAttention says prompts' chunks attend on gbx_attn_prefill
	// where their cache and model allow (compute capability 8.0 and up,
	// not Config.NoPrefillAttention or BatchInvariant).
	PrefillAttention bool
	// Libraries maps each CUDA library to the folder it was loaded from
	// ("(loader search path)" when found by its soname).
	Libraries map[string]string
}

// The linear-layer paths BenchLinear times. Each is what Forward runs for
// one linear layer at that precision, except the variants named after a
// dash, which pin one implementation.
var BenchPaths = []string{"fp32", "tf32", "bf16", "fp16", "fp8", "fp8-tensor", "fp4", "fp4-kernel", "fp4-wide", "fp4-bf16"}

// LinearBench configures BenchLinear.
type LinearBench struct {
	Ms     []int    // batch sizes
	Shapes [][2]int // (N, K): output and input features
	Paths  []string // from BenchPaths; nil means all
	Iters  int      // timed runs per case (default 50)
	Warmup int      // untimed runs first (default 5)
	// Cand, if not 0, runs the cuBLASLt paths on the heuristic's result
	// Cand (0 its first, what the backend runs) where it offers that many,
	// for timing the others; an error where it does not.
	Cand int
	// Progress, if set, is called after each case.
	Progress func(LinearResult)
}

// LinearResult is one timed case. Times are medians over Iters runs, in
// microseconds, from CUDA events around the work on the device alone (the
// host has queued it behind a spin kernel); before each run the L2 cache is
// flushed and the input is refilled with fresh random values (never zeros).
type LinearResult struct {
	Path    string
	M, N, K int
	// LayerUS is the whole linear layer from an fp32 input: the input's
	// conversion (bf16/fp16/tf32 rounding; fp8 amax and quantization) and
	// the GEMM with its epilogue.
	LayerUS float64
	// GemmUS is the GEMM (or the NVFP4 kernel) with its epilogue alone.
	GemmUS   float64
	MinUS    float64 // fastest layer run
	TFLOPs   float64 // 2·M·N·K / LayerUS
	WeightGB float64 // weight bytes the path reads / LayerUS, GB/s
	Mode     string  // how the GEMM ran (fused epilogue, scales, kernel)
}

// formatUUID formats a device's UUID as nvidia-smi does. gpu is what
// cuDeviceGetUuid returns (the whole GPU's), own what cuDeviceGetUuid_v2
// does (a MIG instance's own UUID, else the same as gpu): when they differ
// the device is a MIG instance, "MIG-…".
func formatUUID(gpu, own [16]byte) string {
	prefix := "GPU"
	if own != gpu {
		prefix = "MIG"
	}
	u := own
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
