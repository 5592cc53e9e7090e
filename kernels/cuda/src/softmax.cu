// softmax.cu: softmax over each row, one block per row, statistics in
// double.

#include "common.cuh"

// gbx_softmax: per row, e = exp(x − max), rounded to float, then
// (double)e / Σe rounded again, as the CPU does.
extern "C" __global__ void gbx_softmax(const float *x, float *y, int cols) {
	gbx_pdl();
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
