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

// Launch geometry of gbx_nvfp4_gemm and gbx_nvfp4_gemm_tiled (fp4_linear.cu): blocks of
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

// gbx_nvfp4_gemm_wide (fp4_linear.cu): GBX_FP4W_THREADS threads, grid (ceil(M /
// GBX_FP4W_MTILE), ceil(N / GBX_FP4W_ROWS), K splits), GBX_FP4W_SMEM_BYTES of dynamic shared
// memory (over 48 KiB: the host raises the kernel's limit; 1,024 bytes of it to align the
// rings): a ring of GBX_FP4W_XSTAGES chunks of x (128 columns of GBX_FP4W_MTILE rows, bf16, in
// wgmma's 128-byte-swizzled layout), then one of GBX_FP4W_WSTAGES chunks of the weights (4
// warps' codes and scales of 2 tiles, 2,560 bytes each). Three CTAs an SM: 3 x 73 KiB.
#define GBX_FP4W_THREADS 128
#define GBX_FP4W_ROWS 128
#define GBX_FP4W_MTILE 64
#define GBX_FP4W_XSTAGES 2
#define GBX_FP4W_WSTAGES 4
#define GBX_FP4W_MIN_BLOCKS 3 // CTAs an SM (__launch_bounds__)
#define GBX_FP4W_XSTAGE_BYTES (GBX_FP4W_MTILE * 256)
#define GBX_FP4W_WSTAGE_BYTES (4 * 2560)
#define GBX_FP4W_SMEM_BYTES (GBX_FP4W_XSTAGES * GBX_FP4W_XSTAGE_BYTES + GBX_FP4W_WSTAGES * GBX_FP4W_WSTAGE_BYTES + 1024)

// ---- language models (lm.cu, attention.cu, sample.cu) ----

// gbx_fmt: how the values of a buffer a language-model kernel reads or
// writes are stored, passed as an int.
enum gbx_fmt {
	GBX_FMT_F32 = 0,      // float
	GBX_FMT_TF32 = 1,     // float rounded to tf32 (cvt.rna, precision.RoundTF32)
	GBX_FMT_BF16 = 2,     // bf16 bits, round to nearest even
	GBX_FMT_F16 = 3,      // fp16 bits, round to nearest even
	GBX_FMT_E4M3 = 4,     // fp8 E4M3 bytes of x / s, one scale s per row
	GBX_FMT_E4M3_F32 = 5, // the same E4M3 values as floats, unscaled (the fp32 GEMM's operand)
	GBX_FMT_U8 = 6,       // raw random bytes (gbx_lm_fill only)
};

// GBX_KV_BLOCK is the tokens per block of the paged KV cache
// (kernels.KVBlockSize). Element i of KV head g of position slot of block
// blk, layer l, K (kv 0) or V (kv 1) is at
// ((((blk*layers + l)*2 + kv)*kvHeads + g)*GBX_KV_BLOCK + slot)*headDim + i,
// a float (F32), bf16 (BF16) or byte (E4M3). An E4M3 cache also holds one
// float scale per (block, layer, K/V, KV head, slot) — amax/448 of the
// head's headDim values, 1 for amax 0 (precision.FP8Scale, margin 0) — in
// an array after the values of every block (kernels take its address):
// the scale of that row is element
// (((blk*layers + l)*2 + kv)*kvHeads + g)*GBX_KV_BLOCK + slot, so a block's
// scales are contiguous; the value stored is E4M3(x / scale).
enum { GBX_KV_BLOCK = 16 };

// gbx_lm_norm, gbx_quant_rows, gbx_lm_embed and gbx_lm_rope run one block of
// GBX_LM_THREADS threads per row, or of 1,024 in a step of few rows (the
// host's perRowLM; gbx_lm_rope then spreads a row's heads over blocks).
#define GBX_LM_THREADS 256

// A step of at most GBX_REGS_MAX_ROWS rows runs the _small forms of
// gbx_lm_norm, gbx_quant_rows, gbx_lm_rope, gbx_lm_silu_rows and
// gbx_lm_quant_cols, which hold a thread's elements in registers or load
// them before any store (rows.cuh, gbx_row_out_regs), the same bits: up to
// 3 % faster decode at fp8 batch 1-8 on the H200 (bf16 within 1 %). Inside
// the kernels of every step they ran 3-5 % slower at batch 256
// (docs/benchmarks.md, "tenth pass"), so larger steps keep the kernels as
// they were, each form compiled as a kernel of its own.
#define GBX_REGS_MAX_ROWS 32

// gbx_lm_silu_row runs one block of GBX_SILU_ROW_THREADS threads a row,
// the row's values in shared memory: rows of at most GBX_SILU_ROW_MAX_COLS
// (64 KiB of them; two blocks an SM).
#define GBX_SILU_ROW_THREADS 512
#define GBX_SILU_ROW_MAX_COLS 16384

// gbx_attn_partial: grid (splits, kvHeads, rows), GBX_ATTN_THREADS threads;
// each block attends one row's query heads of one KV head over one split of
// its context, GBX_ATTN_TILE positions at a time. A row at position p (a
// context of n = p + 1 positions) splits its context into ceil(n / S)
// splits of S positions, S = GBX_KV_BLOCK * max(GBX_ATTN_MIN_SPLIT /
// GBX_KV_BLOCK, ceil(ceil(n / GBX_KV_BLOCK) / GBX_ATTN_MAX_SPLITS)) (the
// host computes S; it depends on n alone). Head dims up to
// GBX_ATTN_MAX_DIM, a multiple of 8; up to GBX_ATTN_MAX_GROUP query heads
// per KV head. gbx_attn_reduce: grid (heads, rows), GBX_ATTN_THREADS threads.
#define GBX_ATTN_THREADS 128
#define GBX_ATTN_TILE 128
#define GBX_ATTN_MAX_GROUP 16
#define GBX_ATTN_MAX_DIM 256
enum { GBX_ATTN_MAX_SPLITS = 64, GBX_ATTN_MIN_SPLIT = 256 };
// gbx_attn_dec64_G and gbx_attn_dec128_G (G = 2, 4, 8): gbx_attn_partial's
// grid and arguments (less cacheFmt, dim), GBX_ATTN_DEC_THREADS threads; a
// BF16 cache, head dims 64 or 128, up to G query heads per KV head.
// gbx_attn_mma64 and gbx_attn_mma128 (attn_mma.cu): the same arguments and
// threads, up to 8 query heads per KV head; gbx_attn_mma64_e4m3 and
// gbx_attn_mma128_e4m3 the same for an E4M3 cache; each with a _rows form,
// the same arguments, for steps that feed a sequence several rows (group ≤
// 4): a block may attend the rows after its own too, and a _pf form, the
// same arguments and results, a warp's next KV block loaded before it
// attends the current one (attn_mma.cu); and, for an E4M3 cache on compute
// capability 9.0, a _ring form, the same arguments and results, each
// warp's next GBX_ATTN_RING_SLOTS KV blocks copied into shared memory in
// flight, GBX_ATTN_RING_BYTES(dim) of dynamic shared memory.
#define GBX_ATTN_DEC_THREADS 128
#define GBX_ATTN_RING_SLOTS 2
// a slot: K and V of a block (16 positions of dim bytes), then their scales;
// after the slots, a warp's mbarriers
#define GBX_ATTN_RING_SLOT(dim) (2 * 16 * (dim) + 2 * 16 * 4)
#define GBX_ATTN_RING_BYTES(dim) (GBX_ATTN_DEC_THREADS / 32 * GBX_ATTN_RING_SLOTS * (GBX_ATTN_RING_SLOT(dim) + 8))
enum { GBX_ATTN_RING_BYTES_64 = GBX_ATTN_RING_BYTES(64), GBX_ATTN_RING_BYTES_128 = GBX_ATTN_RING_BYTES(128) };

// gbx_attn_prefill: GBX_ATTN_PF_WARPS warps a block, 16 product rows (a
// row's query heads) a warp (attn_prefill.cu).
#define GBX_ATTN_PF_WARPS 4
// gbx_attn_prefill_wg (sm_90a): two warpgroups a block, tiles of
// GBX_ATTN_PFW_TILE positions; its dynamic shared memory by head dim and
// cache format: two slots of K and V tiles and the block's 128 product
// rows of Q (16-bit), E4M3's copy as the cache holds it, 1,024 bytes to
// align them.
#define GBX_ATTN_PFW_TILE 64
#define GBX_ATTN_PFW_SMEM(dim, e4m3) ((4 * GBX_ATTN_PFW_TILE + 128) * (dim) * 2 + ((e4m3) ? 2 * GBX_ATTN_PFW_TILE * (dim) : 0) + 1024)
enum {
	GBX_ATTN_PFW_SMEM_64 = GBX_ATTN_PFW_SMEM(64, 0),
	GBX_ATTN_PFW_SMEM_128 = GBX_ATTN_PFW_SMEM(128, 0),
	GBX_ATTN_PFW_SMEM_64_E4M3 = GBX_ATTN_PFW_SMEM(64, 1),
	GBX_ATTN_PFW_SMEM_128_E4M3 = GBX_ATTN_PFW_SMEM(128, 1)
};

// gbx_gemv: grid n / GBX_GEMV_ROWS, GBX_GEMV_THREADS threads, up to
// GBX_GEMV_MAX_M rows (gemv.cu).
#define GBX_GEMV_THREADS 256
#define GBX_GEMV_ROWS 16
#define GBX_GEMV_MAX_M 8

// gbx_lm_logprobs_part: grid (rows, ceil(vocab / GBX_LOGPROBS_CHUNK)),
// GBX_LOGPROBS_THREADS threads, a block per chunk of GBX_LOGPROBS_CHUNK ids
// of a logits row (a fixed size: a row's results do not depend on the batch),
// each writing GBX_LOGPROBS_PART_BYTES; gbx_lm_logprobs: one warp per row,
// combining its chunks; gbx_lm_sample: one block of GBX_SAMPLE_THREADS per
// sampled sequence, writing up to GBX_MAX_TOP alternatives
// (kernels.MaxTopLogprobs).
#define GBX_LOGPROBS_CHUNK 2048
#define GBX_LOGPROBS_THREADS 256
enum { GBX_LOGPROBS_PART_BYTES = 24 };
#define GBX_SAMPLE_THREADS 512
enum { GBX_MAX_TOP = 20 };

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
	GBX_CUDA_ERROR_NOT_SUPPORTED = 801,
};

// CUdevice_attribute
enum {
	GBX_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
	GBX_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
	GBX_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
};

// CUfunction_attribute
enum { GBX_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8 };

// CUlaunchAttributeID
enum { GBX_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6 };

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

// cublasLtMatmulAlgoConfigAttributes_t (both values uint32_t)
enum {
	GBX_CUBLASLT_ALGO_CONFIG_SPLITK_NUM = 2,
	GBX_CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME = 3,
};

// cublasLtReductionScheme_t
enum { GBX_CUBLASLT_REDUCTION_SCHEME_NONE = 0 };

#endif
