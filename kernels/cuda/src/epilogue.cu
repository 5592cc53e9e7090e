// epilogue.cu: what a linear layer's GEMM could not fuse: the fp8 scales,
// the bias and relu.

#include "common.cuh"

// gbx_scale_bias: y[r, c] = (y[r, c] · xscale[r]) · wscale[c] + bias[c]
// (xscale: per-row activation scales, wscale: per-column weight scales;
// each may be NULL, as may bias), then relu when act is GBX_ACT_RELU (the
// only other code it takes is GBX_ACT_NONE): the fp8 epilogue when
// cuBLASLt does not apply the scales itself, fp4's per-channel tensor
// scales, and the bias (+relu) of any GEMM whose epilogue could not be
// fused; for tensor and language models alike.
extern "C" __global__ void gbx_scale_bias(float *__restrict__ y, const float *__restrict__ xscale,
                                          const float *__restrict__ wscale, const float *__restrict__ bias,
                                          long long rows, int cols, int act) {
	gbx_pdl();
	long long n = rows * cols;
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
		long long r = i / cols;
		int c = (int)(i % cols);
		float v = y[i];
		if (xscale) v = v * xscale[r];
		if (wscale) v = v * wscale[c];
		if (bias) v = v + bias[c];
		if (act == GBX_ACT_RELU) v = (v != v) ? v : (v > 0.0f ? v : 0.0f);
		y[i] = v;
	}
}
