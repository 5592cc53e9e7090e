// bench.cu: kernels the benchmarks use (BenchLinear), not the models.

#include "common.cuh"

// gbx_rand fills x with hashed uniform values in (−scale, scale), never
// exactly zero (benchmarks: fresh inputs without a host round trip).
extern "C" __global__ void gbx_rand(float *x, long long n, u32 seed, float scale) {
	gbx_pdl();
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
	gbx_pdl();
	unsigned long long t0, t;
	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
	do {
		asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	} while ((long long)(t - t0) < ns);
}
