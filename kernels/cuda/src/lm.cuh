// lm.cuh: what the language-model sources (lm.cu, attention.cu) share: the
// layout of the paged KV cache (values and, for E4M3, scales).
#ifndef GBX_LM_CUH
#define GBX_LM_CUH

#include "common.cuh"

// gbx_kv_off is where element 0 of KV head g of position slot of block blk,
// layer, K (kv 0) or V (kv 1) is in a paged cache (abi.h, GBX_KV_BLOCK).
__device__ __forceinline__ long long gbx_kv_off(long long blk, int layer, int layers, int kv, int g, int kvHeads,
                                                int slot, int dim) {
	return ((((blk * layers + layer) * 2 + kv) * kvHeads + g) * GBX_KV_BLOCK + slot) * (long long)dim;
}

// gbx_kv_soff is where the scale of that row (KV head g of position slot of
// block blk, layer, K or V) is in an E4M3 cache's scale array (abi.h).
__device__ __forceinline__ long long gbx_kv_soff(long long blk, int layer, int layers, int kv, int g, int kvHeads,
                                                 int slot) {
	return gbx_kv_off(blk, layer, layers, kv, g, kvHeads, slot, 1);
}

// gbx_epi is a linear layer's epilogue, v · xs · ws + bias in
// gbx_scale_bias's order (each factor or the bias skipped where NULL), for
// the output value v in column c of a row whose activation scale is xsr
// (1 where the layer has none): the kernel that reads a linear layer's
// output applies it on load, where a separate gbx_scale_bias pass would
// read and write the whole output once more.
__device__ __forceinline__ float gbx_epi(float v, const float *xs, float xsr, const float *ws, const float *bias,
                                         long long c) {
	if (xs) v = v * xsr;
	if (ws) v = v * ws[c];
	if (bias) v = v + bias[c];
	return v;
}

#endif
