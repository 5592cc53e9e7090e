// norm.cu: layernorm and rmsnorm over each row, one block per row,
// statistics in double.

#include "common.cuh"

// gbx_layernorm: y = (x − μ)/√(σ² + eps)·w + b, w and b optional (NULL).
extern "C" __global__ void gbx_layernorm(const float *x, float *y, int cols, const float *__restrict__ w,
                                         const float *__restrict__ b, double eps) {
	gbx_pdl();
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
	gbx_pdl();
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
