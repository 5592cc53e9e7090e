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

// GBX_SUM_LANES is the number of blockSumLanes' virtual lanes;
// GBX_SUM_SLOTS the most a thread holds (blocks of 256 threads or more).
#define GBX_SUM_LANES 1024
#define GBX_SUM_SLOTS (GBX_SUM_LANES / 256)

// blockSumLanes returns to every thread the sum of the virtual lanes'
// values, v[k] holding lane threadIdx.x + k·blockDim.x (k < GBX_SUM_LANES /
// blockDim.x; a block of 256, 512 or 1,024 threads), added in a fixed
// tree: each group of 32 lanes by the same shuffles (a warp's lanes of one
// slot are one group), then the 32 groups' sums. Lane l's value being the
// sum of a row's elements l, l + GBX_SUM_LANES, … in that order, the row's
// sum is the same for a block of any of those sizes (blockSum's order
// follows the block's; with 1,024 threads the two are the same tree). sg
// holds 33 doubles.
__device__ double blockSumLanes(const double (&v)[GBX_SUM_SLOTS], double *sg) {
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	for (int k = 0; k < GBX_SUM_SLOTS && k * (int)blockDim.x < GBX_SUM_LANES; k++) {
		double x = v[k];
		for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
		if (lane == 0) sg[warp + k * nw] = x;
	}
	__syncthreads();
	if (warp == 0) {
		double x = sg[lane];
		for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
		if (lane == 0) sg[32] = x;
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
