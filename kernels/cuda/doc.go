// Package cuda is the CUDA kernels.Backend: it runs every model op at every
// precision (fp32, tf32, bf16, fp16, fp8, fp4) on an NVIDIA GPU.
//
// It is the only package of Gearbox with cgo, and it needs nothing of
// NVIDIA's at build time: libcuda.so.1, libnvrtc.so.13 (with its builtins)
// and libcublasLt.so.13 are opened with dlopen when a backend is first
// opened, through the package's own declarations (gbx.h). A binary built
// with it runs on machines without a GPU, where Open fails with an error
// wrapping ErrUnavailable and kernels.Open("auto") falls back to the CPU;
// built with CGO_ENABLED=0, the package registers an opener that reports
// CUDA unavailable.
//
// The package registers itself with kernels.Register under the kind "cuda"
// in init, with DeviceCount as the kind's kernels.Counter (so that
// kernels.OpenWorkers can spread workers over every visible GPU); package
// main blank-imports it:
//
//	import _ "github.com/gearbox-inference/gearbox/kernels/cuda"
//
//	b, fallback, err := kernels.Open("auto") // cuda:0, or the CPU and why not
//
// Programs that want settings (the fp8 margin, the cubin cache, the fp4
// crossover, CUDA graphs off) call New with a Config.
//
// # Execution
//
// One goroutine locked to its OS thread owns each device: it holds the
// device's primary context current, one non-blocking stream and one
// cuBLASLt handle, and runs Forward, Evict and Close in order from a queue.
// Weights are converted with package precision on the host (so their bytes
// are the CPU emulation's) and uploaded once per (model, precision);
// activations live in buffers pooled by batch size, with pinned host buffers
// and asynchronous copies; a batch that runs out of device memory is split
// in halves and retried. Repeated shapes replay CUDA graphs.
//
// Matrix products go through cuBLASLt (fp8 with per-channel weight scales
// and per-row activation scales computed on the device, so that no row of
// a batch changes another's result); fp4 runs the
// weight-only NVFP4 kernel of src/fp4_linear.cu for small batches and a bf16
// GEMM on the exactly dequantized weights above; the other ops are CUDA C
// kernels compiled at run time by NVRTC for the device's architecture and
// cached on disk (GEARBOX_CUDA_CACHE).
//
// # Numerics
//
// The results match the CPU backend's emulation of each precision up to
// accumulation order: activations are rounded or quantized on the device
// with the same rules (checked byte for byte against package precision),
// kernels are compiled without fast math or flush-to-zero, transcendentals
// are evaluated in double and rounded once. fp8 tensor cores do not
// accumulate exactly like fp32 (~1.2e-4 relative per layer), so fp8 results
// differ from the emulation by more than the other formats'. The tests run
// the backends' conformance suite (kernels/kerneltest) on the device, every
// op and precision against the float64 reference, and compare each
// precision with the CPU emulation.
//
// See docs/cuda.md for the design, the environment variables
// (GEARBOX_CUDA_LIB_DIR, GEARBOX_CUDA_CACHE) and the measured performance.
package cuda
