// Package precision names the numeric formats Gearbox can run a model at,
// and implements them exactly on the CPU.
//
// # Formats and the ladder
//
// A [Format]'s string is its wire name: fp32, tf32, bf16, fp16, fp8 (E4M3)
// and fp4 (NVFP4 weights). [Auto] is not a format: it asks the worker for the
// model's current policy. A model climbs down its ladder ([DefaultLadder]:
// fp32 → tf32 → bf16 → fp8 → fp4, or its own, see [ValidateLadder]) as the
// quality loop allows; [Select] picks the precision one job runs at from the
// request, the policy, the job's max_error (against [ErrorBound]) and the
// device's [Capabilities].
//
// # Scalar conversions
//
// Every conversion from float32 rounds to nearest, ties to even, with
// subnormals, except tf32 (ties away from zero, as PTX cvt.rna.tf32.f32):
//
//   - bf16 and fp16 ([EncodeBF16], [EncodeFP16]) are IEEE formats: overflow
//     gives ±Inf, NaN stays a (quiet) NaN.
//   - fp8 E4M3 ([EncodeE4M3], max 448) and E5M2 ([EncodeE5M2], max 57344)
//     saturate: anything larger in magnitude, ±Inf included, becomes ±max.
//     NaN becomes 0x7f.
//   - fp4 E2M1 ([EncodeE2M1], max 6) saturates; it has no NaN, and NaN
//     becomes ±6 (as CUDA's conversion does).
//   - E8M0 ([EncodeE8M0]) is the MX block scale: a power of two.
//
// Non-finite values never reach a quantizer in Gearbox: job validation
// rejects them. The quantizers are total anyway: they never panic, and what
// they do with NaN and Inf is documented on each.
//
// # Tensors
//
// [QuantizeNVFP4], [QuantizeMXFP4], [QuantizeFP8PerChannel] and
// [QuantizeFP8PerTensor] produce the storage a CUDA backend uploads as it is:
// packed fp4 (element 2i in the low nibble) or fp8 bytes plus scale arrays.
// Each quantized tensor has a Dequantize to float32. The block-scale
// arithmetic follows one documented order of IEEE float32 operations, which
// the GPU kernels follow too, so both backends produce the same bytes. See
// docs/precision.md for the full contract.
//
// The slice helpers ([RoundBF16Slice], [RoundFP16Slice], [RoundTF32Slice],
// [RoundE4M3Slice], ...) let the CPU backend emulate tensor-core numerics:
// operands rounded to the format, products accumulated in float32.
package precision
