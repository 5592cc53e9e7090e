// reduce.cuh: block reductions (whole warps, at most 1024 threads), used by
// most sources through common.cuh. Plain CUDA C (no PTX), so the emulator of
// emu/ runs this very code.
#ifndef GBX_REDUCE_CUH
#define GBX_REDUCE_CUH

// blockAmax returns the maximum of m (>= 0) over the block in thread 0
// (other threads get partial maxima). sh holds 32 floats.
__device__ __forceinline__ float blockAmax(float m, float *sh) {
	for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
	if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = m;
	__syncthreads();
	if (threadIdx.x < 32) {
		m = threadIdx.x < (blockDim.x + 31) / 32 ? sh[threadIdx.x] : 0.0f;
		for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
	}
	return m;
}

// GBX_SUM_LANES is the number of blockSumLanes' virtual lanes.
#define GBX_SUM_LANES 1024

// blockSumLanes returns to every thread the sum of the lanes' values
// sv[0 … GBX_SUM_LANES), written by the block and synchronised, added in a
// fixed tree: 32 groups of 32 lanes by the same shuffles, then the groups'
// sums. Lane l's value being the sum of a row's elements l, l +
// GBX_SUM_LANES, … in that order, the row's sum is the same for a block of
// any size (blockSum's order follows the block's). sg holds 33 doubles.
__device__ double blockSumLanes(const double *sv, double *sg) {
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	for (int grp = warp; grp < GBX_SUM_LANES / 32; grp += nw) {
		double v = sv[grp * 32 + lane];
		for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
		if (lane == 0) sg[grp] = v;
	}
	__syncthreads();
	if (warp == 0) {
		double v = sg[lane];
		for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
		if (lane == 0) sg[32] = v;
	}
	__syncthreads();
	return sg[32];
}

// blockSum and blockMax return the sum and the maximum of v over the block
// to every thread. sh holds 33 doubles.
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

#endif
