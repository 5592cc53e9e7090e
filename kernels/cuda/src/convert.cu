// convert.cu: fp32 activations to the 16-bit and tf32 inputs of the GEMMs,
// rounded as package precision rounds (RoundTF32, EncodeBF16, EncodeFP16),
// with the inline PTX cvt helpers of common.cuh (no toolkit header).

#include "common.cuh"

// convert16 writes y[i] = cvt(x[i]) for a 16-bit format, four values per
// thread where it can.
template <typename Cvt> __device__ __forceinline__ void convert16(const float *__restrict__ x, u16 *__restrict__ y,
                                                                   long long n, Cvt cvt) {
	long long stride = (long long)gridDim.x * blockDim.x;
	long long n4 = n / 4;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride) {
		float4 v = reinterpret_cast<const float4 *>(x)[i];
		uint2 o;
		o.x = (u32)cvt(v.x) | ((u32)cvt(v.y) << 16);
		o.y = (u32)cvt(v.z) | ((u32)cvt(v.w) << 16);
		reinterpret_cast<uint2 *>(y)[i] = o;
	}
	for (long long i = n4 * 4 + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) y[i] = cvt(x[i]);
}

struct ToBF16 {
	__device__ u16 operator()(float v) const { return f2bf(v); }
};

struct ToFP16 {
	__device__ u16 operator()(float v) const { return f2h(v); }
};

// gbx_to_bf16: y[i] = bf16 bits of x[i], round to nearest even.
extern "C" __global__ void gbx_to_bf16(const float *__restrict__ x, u16 *__restrict__ y, long long n) {
	gbx_pdl();
	convert16(x, y, n, ToBF16());
}

// gbx_to_fp16: y[i] = fp16 bits of x[i], round to nearest even.
extern "C" __global__ void gbx_to_fp16(const float *__restrict__ x, u16 *__restrict__ y, long long n) {
	gbx_pdl();
	convert16(x, y, n, ToFP16());
}

// gbx_to_tf32: y[i] = x[i] rounded to tf32, ties away (cvt.rna), as
// precision.RoundTF32.
extern "C" __global__ void gbx_to_tf32(const float *__restrict__ x, float *__restrict__ y, long long n) {
	gbx_pdl();
	long long stride = (long long)gridDim.x * blockDim.x;
	long long n4 = n / 4;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride) {
		float4 v = reinterpret_cast<const float4 *>(x)[i];
		v.x = f2tf32(v.x);
		v.y = f2tf32(v.y);
		v.z = f2tf32(v.z);
		v.w = f2tf32(v.w);
		reinterpret_cast<float4 *>(y)[i] = v;
	}
	for (long long i = n4 * 4 + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) y[i] = f2tf32(x[i]);
}
