// act.cu: element-wise activations, as kernels/cpu/ops.go computes them
// (transcendentals in double, rounded once).

#include "common.cuh"

// gbx_act: y = op(x), op a gbx_act_code other than GBX_ACT_NONE. x and y
// may be the same.
extern "C" __global__ void gbx_act(const float *x, float *y, long long n, int op) {
	gbx_pdl();
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
		float v = x[i];
		double d = (double)v;
		float r;
		switch (op) {
		case GBX_ACT_RELU: r = (v != v) ? v : (v > 0.0f ? v : 0.0f); break; // max(v, 0): NaN stays NaN, -0 → +0
		case GBX_ACT_GELU: r = (float)(0.5 * d * erfc(-d / 1.4142135623730951)); break;
		case GBX_ACT_SILU: r = (float)(d / (1.0 + exp(-d))); break;
		default: r = (float)tanh(d); break; // GBX_ACT_TANH
		}
		y[i] = r;
	}
}
