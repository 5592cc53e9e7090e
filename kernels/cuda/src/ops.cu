// ops.cu: Gearbox's element-wise, row-wise and conversion kernels.
//
// Compiled at run time by NVRTC with no toolkit header: bf16/fp16/fp8/tf32
// values are raw unsigned storage converted with inline PTX cvt. Compiled
// with --fmad=false and without fast math or flush-to-zero, so each result
// is the correctly rounded IEEE operation the CPU backend performs (the
// transcendentals are evaluated in double and rounded once, as on the CPU).

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

// ---- conversions --------------------------------------------------------

__device__ __forceinline__ u16 f2bf(float x) {
	u16 r;
	asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
	return r;
}

__device__ __forceinline__ u16 f2h(float x) {
	u16 r;
	asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
	return r;
}

__device__ __forceinline__ float f2tf32(float x) {
	u32 r;
	asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
	return __uint_as_float(r);
}

// e4m3x2 packs two floats to E4M3, saturating (Go's EncodeE4M3); lo goes
// to the low byte.
__device__ __forceinline__ u16 f2e4m3x2(float lo, float hi) {
	u16 r;
	asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
	return r;
}

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
	convert16(x, y, n, ToBF16());
}

// gbx_to_fp16: y[i] = fp16 bits of x[i], round to nearest even.
extern "C" __global__ void gbx_to_fp16(const float *__restrict__ x, u16 *__restrict__ y, long long n) {
	convert16(x, y, n, ToFP16());
}

// gbx_to_tf32: y[i] = x[i] rounded to tf32, ties away (cvt.rna), as
// precision.RoundTF32.
extern "C" __global__ void gbx_to_tf32(const float *__restrict__ x, float *__restrict__ y, long long n) {
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

// ---- fp8 activations -------------------------------------------------------

// gbx_amax: *out = max(*out, max |x[i]|) as float bits (the caller zeroes
// *out first). NaNs are skipped, as precision.Amax does.
extern "C" __global__ void gbx_amax(const float *__restrict__ x, long long n, u32 *out) {
	__shared__ float warpMax[32];
	float m = 0.0f;
	long long stride = (long long)gridDim.x * blockDim.x;
	long long n4 = n / 4;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride) {
		float4 v = reinterpret_cast<const float4 *>(x)[i];
		m = fmaxf(m, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
	}
	for (long long i = n4 * 4 + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride)
		m = fmaxf(m, fabsf(x[i]));
	for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
	if ((threadIdx.x & 31) == 0) warpMax[threadIdx.x >> 5] = m;
	__syncthreads();
	if (threadIdx.x < 32) {
		m = threadIdx.x < (blockDim.x + 31) / 32 ? warpMax[threadIdx.x] : 0.0f;
		for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
		if (threadIdx.x == 0) atomicMax(out, __float_as_uint(m)); // non-negative floats order as integers
	}
}

// fp8Scale is precision.FP8Scale: amax·2^margin/448 correctly rounded to
// float (in double, then rounded once, as the Go code does), 1 for amax 0,
// at least the smallest float.
__device__ __forceinline__ float fp8Scale(float amax, int margin) {
	if (amax == 0.0f) return 1.0f;
	double d = (double)amax * (double)(1 << margin) / 448.0;
	float s = (float)d;
	return fmaxf(s, __uint_as_float(1u));
}

// gbx_fp8_quant: q[i] = E4M3(x[i] / s), s = FP8Scale(amax, margin), an IEEE
// division; *scale = s (written by thread 0 for the GEMM) and
// scaleVec[0..nvec) = s (the same scale per row, for cuBLASLt's outer-vector
// scaling; scaleVec may be NULL).
extern "C" __global__ void gbx_fp8_quant(const float *__restrict__ x, u8 *__restrict__ q, long long n,
                                         const u32 *__restrict__ amax, int margin, float *scale,
                                         float *scaleVec, int nvec) {
	float s = fp8Scale(__uint_as_float(*amax), margin);
	if (blockIdx.x == 0 && threadIdx.x == 0) *scale = s;
	long long stride = (long long)gridDim.x * blockDim.x;
	if (scaleVec)
		for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nvec; i += stride) scaleVec[i] = s;
	long long n4 = n / 4;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride) {
		float4 v = reinterpret_cast<const float4 *>(x)[i];
		u32 lo = f2e4m3x2(__fdiv_rn(v.x, s), __fdiv_rn(v.y, s));
		u32 hi = f2e4m3x2(__fdiv_rn(v.z, s), __fdiv_rn(v.w, s));
		reinterpret_cast<u32 *>(q)[i] = lo | (hi << 16);
	}
	for (long long i = n4 * 4 + blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride)
		q[i] = (u8)(f2e4m3x2(__fdiv_rn(x[i], s), 0.0f) & 0xff);
}

// gbx_scale_bias: y[r, c] = (y[r, c] · *xscale) · wscale[c] + bias[c]
// (wscale, xscale and bias may be NULL), then relu when act is 1: the fp8
// epilogue when cuBLASLt cannot apply per-channel scales itself, and the
// bias (+relu) of any GEMM whose epilogue could not be fused.
extern "C" __global__ void gbx_scale_bias(float *__restrict__ y, const float *__restrict__ xscale,
                                          const float *__restrict__ wscale, const float *__restrict__ bias,
                                          long long rows, int cols, int act) {
	float xs = xscale ? *xscale : 1.0f;
	long long n = rows * cols;
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
		int c = (int)(i % cols);
		float v = y[i];
		if (xscale) v = v * xs;
		if (wscale) v = v * wscale[c];
		if (bias) v = v + bias[c];
		if (act == 1) v = (v != v) ? v : (v > 0.0f ? v : 0.0f);
		y[i] = v;
	}
}

// ---- element-wise activations (kernels/cpu/ops.go) ---------------------------

// gbx_act: y = op(x) for op 0 relu, 1 gelu (erf form), 2 silu, 3 tanh. x and
// y may be the same. When amax is not NULL it also does gbx_amax's work on
// y (the caller zeroes *amax first): the amax of an fp8 layer's input comes
// free with the activation that produces it.
extern "C" __global__ void gbx_act(const float *x, float *y, long long n, int op, u32 *amax) {
	__shared__ float warpMax[32];
	float m = 0.0f;
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
		float v = x[i];
		double d = (double)v;
		float r;
		switch (op) {
		case 0: r = (v != v) ? v : (v > 0.0f ? v : 0.0f); break; // max(v, 0): NaN stays NaN, -0 → +0
		case 1: r = (float)(0.5 * d * erfc(-d / 1.4142135623730951)); break;
		case 2: r = (float)(d / (1.0 + exp(-d))); break;
		default: r = (float)tanh(d); break;
		}
		y[i] = r;
		m = fmaxf(m, fabsf(r));
	}
	if (!amax) return;
	for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
	if ((threadIdx.x & 31) == 0) warpMax[threadIdx.x >> 5] = m;
	__syncthreads();
	if (threadIdx.x < 32) {
		m = threadIdx.x < (blockDim.x + 31) / 32 ? warpMax[threadIdx.x] : 0.0f;
		for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
		if (threadIdx.x == 0) atomicMax(amax, __float_as_uint(m));
	}
}

// ---- row-wise ops: one block per row, statistics in double --------------------

__device__ double blockSum(double v, double *sh) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
	__syncthreads();
	if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
	__syncthreads();
	if (threadIdx.x < 32) {
		v = threadIdx.x < (blockDim.x + 31) / 32 ? sh[threadIdx.x] : 0.0;
		for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
		if (threadIdx.x == 0) sh[32] = v;
	}
	__syncthreads();
	return sh[32];
}

__device__ double blockMax(double v, double *sh) {
	for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
	__syncthreads();
	if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
	__syncthreads();
	if (threadIdx.x < 32) {
		v = threadIdx.x < (blockDim.x + 31) / 32 ? sh[threadIdx.x] : -1.0 / 0.0;
		for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
		if (threadIdx.x == 0) sh[32] = v;
	}
	__syncthreads();
	return sh[32];
}

// gbx_softmax: per row, e = exp(x − max), rounded to float, then
// (double)e / Σe rounded again, as the CPU does.
extern "C" __global__ void gbx_softmax(const float *x, float *y, int cols) {
	__shared__ double sh[33];
	const float *xr = x + (long long)blockIdx.x * cols;
	float *yr = y + (long long)blockIdx.x * cols;
	double hi = -1.0 / 0.0;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) hi = fmax(hi, (double)xr[i]);
	hi = blockMax(hi, sh);
	double sum = 0;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) sum += exp((double)xr[i] - hi);
	sum = blockSum(sum, sh);
	double inv = 1.0 / sum;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) {
		float e = (float)exp((double)xr[i] - hi);
		yr[i] = (float)((double)e * inv);
	}
}

// gbx_layernorm: y = (x − μ)/√(σ² + eps)·w + b, w and b optional (NULL).
extern "C" __global__ void gbx_layernorm(const float *x, float *y, int cols, const float *__restrict__ w,
                                         const float *__restrict__ b, double eps) {
	__shared__ double sh[33];
	const float *xr = x + (long long)blockIdx.x * cols;
	float *yr = y + (long long)blockIdx.x * cols;
	double s = 0;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) s += (double)xr[i];
	double mean = blockSum(s, sh) / (double)cols;
	double ss = 0;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) {
		double d = (double)xr[i] - mean;
		ss += d * d;
	}
	ss = blockSum(ss, sh);
	double inv = 1.0 / sqrt(ss / (double)cols + eps);
	for (int i = threadIdx.x; i < cols; i += blockDim.x) {
		double wi = w ? (double)w[i] : 1.0, bi = b ? (double)b[i] : 0.0;
		yr[i] = (float)(((double)xr[i] - mean) * inv * wi + bi);
	}
}

// gbx_rmsnorm: y = x/√(Σx²/n + eps)·w, w optional (NULL).
extern "C" __global__ void gbx_rmsnorm(const float *x, float *y, int cols, const float *__restrict__ w, double eps) {
	__shared__ double sh[33];
	const float *xr = x + (long long)blockIdx.x * cols;
	float *yr = y + (long long)blockIdx.x * cols;
	double ss = 0;
	for (int i = threadIdx.x; i < cols; i += blockDim.x) ss += (double)xr[i] * (double)xr[i];
	ss = blockSum(ss, sh);
	double inv = 1.0 / sqrt(ss / (double)cols + eps);
	for (int i = threadIdx.x; i < cols; i += blockDim.x) {
		double v = (double)xr[i] * inv;
		yr[i] = (float)(w ? v * (double)w[i] : v);
	}
}

// gbx_fp8_round: y[i] = the E4M3 value of x[i] / s as a float (unscaled),
// s = FP8Scale(amax, margin); *scale = s. The fp8 path for shapes cuBLASLt's
// fp8 kernels cannot take (dimensions not multiples of 16): the same
// operands, multiplied by the fp32 GEMM.
extern "C" __global__ void gbx_fp8_round(const float *__restrict__ x, float *__restrict__ y, long long n,
                                         const u32 *__restrict__ amax, int margin, float *scale) {
	float s = fp8Scale(__uint_as_float(*amax), margin);
	if (blockIdx.x == 0 && threadIdx.x == 0) *scale = s;
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
		u16 q = f2e4m3x2(__fdiv_rn(x[i], s), 0.0f);
		u32 h2;
		asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h2) : "h"(q));
		float f;
		asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"((u16)(h2 & 0xffff)));
		y[i] = f;
	}
}

// gbx_rand fills x with hashed uniform values in (−scale, scale), never
// exactly zero (benchmarks: fresh inputs without a host round trip).
extern "C" __global__ void gbx_rand(float *x, long long n, u32 seed, float scale) {
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
		u32 h = (u32)i * 0x9E3779B1u ^ (u32)(i >> 32) * 0x85EBCA77u ^ seed * 0xC2B2AE3Du;
		h ^= h >> 15;
		h *= 0x2C1B3C6Du;
		h ^= h >> 12;
		h *= 0x297A2D39u;
		h ^= h >> 15;
		float u = ((float)(h >> 8) + 0.5f) * (1.0f / 16777216.0f);
		x[i] = (2.0f * u - 1.0f) * scale;
	}
}

// gbx_spin busy-waits ns nanoseconds (benchmarks: keeps the GPU busy while
// the host queues the timed work, so launch overhead stays out of the
// timing).
extern "C" __global__ void gbx_spin(long long ns) {
	unsigned long long t0, t;
	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
	do {
		asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	} while ((long long)(t - t0) < ns);
}

// gbx_fp8_quant_small is gbx_amax followed by gbx_fp8_quant in one block,
// for small batches where each launch costs more than the work: every
// thread loads its (at most 16) values once into registers, the block
// reduces the amax, and the threads quantize what they hold (same results:
// a max is exact in any order). Launch with one block of 1024 threads, for
// n <= 16 × 1024 and x 16-byte aligned.
extern "C" __global__ void gbx_fp8_quant_small(const float *__restrict__ x, u8 *__restrict__ q, long long n,
                                               int margin, float *scale, float *scaleVec, int nvec) {
	__shared__ float warpMax[32];
	const int per = 4; // float4 loads per thread
	float4 v[per];
	float m = 0.0f;
	long long n4 = n / 4;
#pragma unroll
	for (int k = 0; k < per; k++) {
		long long i = threadIdx.x + (long long)k * blockDim.x;
		if (i < n4) {
			v[k] = reinterpret_cast<const float4 *>(x)[i];
			m = fmaxf(m, fmaxf(fmaxf(fabsf(v[k].x), fabsf(v[k].y)), fmaxf(fabsf(v[k].z), fabsf(v[k].w))));
		}
	}
	long long tail = n4 * 4 + threadIdx.x; // the last n % 4 values, one per thread
	float t = tail < n ? x[tail] : 0.0f;
	m = fmaxf(m, fabsf(t));
	for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
	if ((threadIdx.x & 31) == 0) warpMax[threadIdx.x >> 5] = m;
	__syncthreads();
	if (threadIdx.x < 32) {
		m = threadIdx.x < (blockDim.x + 31) / 32 ? warpMax[threadIdx.x] : 0.0f;
		for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
		if (threadIdx.x == 0) warpMax[0] = m;
	}
	__syncthreads();
	float s = fp8Scale(warpMax[0], margin);
	if (threadIdx.x == 0) *scale = s;
	if (scaleVec)
		for (int i = threadIdx.x; i < nvec; i += blockDim.x) scaleVec[i] = s;
#pragma unroll
	for (int k = 0; k < per; k++) {
		long long i = threadIdx.x + (long long)k * blockDim.x;
		if (i < n4) {
			u32 lo = f2e4m3x2(__fdiv_rn(v[k].x, s), __fdiv_rn(v[k].y, s));
			u32 hi = f2e4m3x2(__fdiv_rn(v[k].z, s), __fdiv_rn(v[k].w, s));
			reinterpret_cast<u32 *>(q)[i] = lo | (hi << 16);
		}
	}
	if (tail < n) q[tail] = (u8)(f2e4m3x2(__fdiv_rn(t, s), 0.0f) & 0xff);
}
