// abi.h: every number that crosses Go, C and CUDA, by name.
//
// Read three times: by NVRTC (the kernels #include it; the Go compiler
// passes it as a header), by the host C in gbx.h, and by cgo (Go writes
// C.GBX_ACT_RELU, never 1). Plain C: enums and integer macros only.
//
// The first part is the kernels' own ABI. The second declares the NVIDIA
// constants Gearbox passes to the driver, NVRTC and cuBLASLt (CUDA 13.0
// values), because no NVIDIA header is used at build time; each is NVIDIA's
// name with GBX_ in front, so a search of NVIDIA's documentation finds it.
#ifndef GBX_ABI_H
#define GBX_ABI_H

// ---- the kernels' ABI ---------------------------------------------------

// gbx_act_code: the activation applied by gbx_act and by gbx_scale_bias
// (which takes only NONE and RELU), passed as an int.
enum gbx_act_code {
	GBX_ACT_NONE = 0,
	GBX_ACT_RELU = 1, // max(v, 0): NaN stays NaN, -0 becomes +0
	GBX_ACT_GELU = 2, // erf form
	GBX_ACT_SILU = 3,
	GBX_ACT_TANH = 4,
};

// gbx_fp8_quant_small runs as one block of GBX_FP8_SMALL_THREADS threads
// and takes at most GBX_FP8_SMALL_MAX values (16 per thread, in registers).
enum {
	GBX_FP8_SMALL_THREADS = 1024,
	GBX_FP8_SMALL_MAX = 16 * 1024,
};

// Launch geometry of gbx_nvfp4_linear (fp4_linear.cu): blocks of
// GBX_FP4_THREADS threads, grid (ceil(N / GBX_FP4_ROWS), ceil(M /
// GBX_FP4_MTILE), 1), GBX_FP4_SMEM_BYTES of dynamic shared memory. Macros,
// not enums: they appear in __launch_bounds__ and template arguments.
#define GBX_FP4_THREADS 256 // 8 warps
#define GBX_FP4_ROWS 32     // output channels per block
#define GBX_FP4_MTILE 64    // batch rows per block
#define GBX_FP4_STAGES 2
// per warp and stage: 2 tiles x 2 halves x 32 lanes x (16 B codes + 4 B scales)
#define GBX_FP4_WARP_STAGE 2560
#define GBX_FP4_STAGE_BYTES (8 * GBX_FP4_WARP_STAGE)
#define GBX_FP4_SMEM_BYTES (GBX_FP4_STAGES * GBX_FP4_STAGE_BYTES)

// gbx_launch takes at most GBX_MAX_KERNEL_ARGS kernel arguments.
enum { GBX_MAX_KERNEL_ARGS = 32 };

// gbx_plan_args: an attribute left at cuBLASLt's default.
enum { GBX_PLAN_UNSET = -1 };

// ---- NVIDIA's constants (CUDA 13.0) -----------------------------------------

// CUresult
enum {
	GBX_CUDA_SUCCESS = 0,
	GBX_CUDA_ERROR_INVALID_VALUE = 1,
	GBX_CUDA_ERROR_OUT_OF_MEMORY = 2,
};

// CUdevice_attribute
enum {
	GBX_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
	GBX_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
	GBX_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
};

// CUfunction_attribute
enum { GBX_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8 };

// CUstream_flags, CUstreamCaptureMode
enum {
	GBX_CU_STREAM_NON_BLOCKING = 1,
	GBX_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
};

// nvrtcResult
enum { GBX_NVRTC_ERROR_OUT_OF_MEMORY = 1 };

// cudaDataType_t
enum {
	GBX_CUDA_R_32F = 0,
	GBX_CUDA_R_16F = 2,
	GBX_CUDA_R_16BF = 14,
	GBX_CUDA_R_8F_E4M3 = 28,
};

// cublasComputeType_t
enum {
	GBX_CUBLAS_COMPUTE_32F = 68,
	GBX_CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
};

// cublasOperation_t
enum {
	GBX_CUBLAS_OP_N = 0,
	GBX_CUBLAS_OP_T = 1,
};

// cublasStatus_t
enum {
	GBX_CUBLAS_STATUS_ALLOC_FAILED = 3,
	GBX_CUBLAS_STATUS_NOT_SUPPORTED = 15,
};

// cublasLtEpilogue_t
enum {
	GBX_CUBLASLT_EPILOGUE_DEFAULT = 1,
	GBX_CUBLASLT_EPILOGUE_RELU = 2,
	GBX_CUBLASLT_EPILOGUE_BIAS = 4,
	GBX_CUBLASLT_EPILOGUE_RELU_BIAS = 6,
};

// cublasLtMatmulDescAttributes_t
enum {
	GBX_CUBLASLT_MATMUL_DESC_TRANSA = 3,
	GBX_CUBLASLT_MATMUL_DESC_TRANSB = 4,
	GBX_CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
	GBX_CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
	GBX_CUBLASLT_MATMUL_DESC_A_SCALE_POINTER = 17,
	GBX_CUBLASLT_MATMUL_DESC_B_SCALE_POINTER = 18,
	GBX_CUBLASLT_MATMUL_DESC_FAST_ACCUM = 25,
	GBX_CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,
	GBX_CUBLASLT_MATMUL_DESC_A_SCALE_MODE = 31,
	GBX_CUBLASLT_MATMUL_DESC_B_SCALE_MODE = 32,
};

// cublasLtMatmulMatrixScale_t
enum { GBX_CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F = 3 };

// cublasLtMatmulPreferenceAttributes_t
enum { GBX_CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1 };

#endif
