package kerneltest

import "github.com/gearbox-inference/gearbox/precision"

// Tolerance is the largest relative L2 error against the float64
// reference that Run accepts at precision p on the models of Cases: about
// 3× the CPU emulation's measured errors on the 512→2048→512 gelu model
// (fp32 3.3e-7, tf32 and fp16 4.3e-4, bf16 3.3e-3, fp8 4.9e-2, fp4 0.14).
// It is 0 for a value that is not a format.
func Tolerance(p precision.Format) float64 {
	switch p {
	case precision.FP32:
		return 2e-6
	case precision.TF32, precision.FP16:
		return 1.5e-3
	case precision.BF16:
		return 1e-2
	case precision.FP8:
		return 0.15
	case precision.FP4:
		return 0.4
	}
	return 0
}

// OpTolerance is the largest elementwise error (MaxRel) against the
// float64 reference that Run accepts for an op other than linear alone at
// fp32: such ops are evaluated in double and rounded once, so they are
// within an ulp or two of it.
const OpTolerance = 1e-6

// LMTolerance is the largest relative L2 error of a language model's
// logits against LMReference that RunLM accepts at precision p, decoding
// LMModel's models: about 3× the CPU backend's measured errors (fp32
// 1.8e-7, tf32 5.8e-4, fp16 1.6e-3 — its KV cache is bf16 —, bf16 5.3e-3,
// fp8 5.8e-2, fp4 0.157). It is 0 for a value that is not a format.
func LMTolerance(p precision.Format) float64 {
	switch p {
	case precision.FP32:
		return 2e-6
	case precision.TF32:
		return 1.8e-3
	case precision.FP16:
		return 4.7e-3
	case precision.BF16:
		return 1.6e-2
	case precision.FP8:
		return 0.17
	case precision.FP4:
		return 0.47
	}
	return 0
}
