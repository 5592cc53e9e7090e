// L2 prefetch microbenchmark (issue 14, docs/benchmarks.md "tenth pass"):
// does prefetching a layer's weights into L2 while a latency-bound kernel
// (a norm, RoPE: the DRAM idle) runs turn that time into streaming?
//
//   nvcc -O3 -arch=sm_90a -o l2pf main.cu && ./l2pf
//
// Table 1: a prefetch kernel (cp.async.bulk.prefetch.L2 in chunks, mode 0,
// or prefetch.global.L2 a line, mode 1) of S MB, a kernel spinning delay
// µs, then a reader of the S MB; total and the reader's time, medians of
// 15 with the L2 flushed before each. Table 2: the reader launched with
// programmatic dependent launch behind the spinning kernel, each block
// prefetching its own slice before griddepcontrol.wait (PF) or not.
#include <cstdio>
#include <cstdint>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
__host__ __device__ inline size_t mn(size_t a, size_t b) { return a < b ? a : b; }
#define CK(x) do{cudaError_t e=(x); if(e){printf("%s:%d %s\n",__FILE__,__LINE__,cudaGetErrorString(e)); exit(1);}}while(0)

__global__ void readk(const uint4* p, size_t n, unsigned* out) {
  unsigned s = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint4 v = __ldg(p + i); s ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (s == 0x12345678u) out[0] = s;
}
// mode 0: cp.async.bulk.prefetch.L2 chunks of `chunk` bytes; 1: prefetch.global.L2 per 128 B line
__global__ void pfk(const char* p, size_t bytes, int chunk, int mode) {
  size_t nt = (size_t)gridDim.x * blockDim.x, t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (mode == 0) {
    for (size_t o = t * chunk; o < bytes; o += nt * chunk) {
      unsigned n = (unsigned)mn((size_t)chunk, bytes - o);
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" :: "l"(p + o), "r"(n) : "memory");
    }
  } else {
    for (size_t o = t * 128; o < bytes; o += nt * 128) asm volatile("prefetch.global.L2 [%0];" :: "l"(p + o));
  }
}
__global__ void delayk(unsigned ns) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - t0 < ns);
}
// PDL pair: delay kernel triggers its dependents at once; the reader's blocks
// (resident early) prefetch their own slice (pf=1) before griddepcontrol.wait.
__global__ void delaypdl(unsigned ns) {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - t0 < ns);
}
__global__ void readpdl(const char* p, size_t bytes, int pf, unsigned* out) {
  size_t per = (bytes / gridDim.x + 127) & ~(size_t)127, a = blockIdx.x * per, e = mn(bytes, a + per);
  if (pf && a < e) {
    size_t ch = ((e - a) / blockDim.x + 15) & ~(size_t)15, o = a + threadIdx.x * ch;
    if (o < e) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" :: "l"(p + o), "r"((unsigned)mn(ch, e - o)) : "memory");
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  unsigned s = 0;
  for (size_t i = a + threadIdx.x * 16; i < e; i += blockDim.x * 16) { uint4 v = __ldg((const uint4*)(p + i)); s ^= v.x ^ v.y ^ v.z ^ v.w; }
  if (s == 0x12345678u) out[0] = s;
}
int main() {
  size_t W = 256u << 20, F = 512u << 20;
  char *w, *f; unsigned* out;
  CK(cudaMalloc(&w, W)); CK(cudaMalloc(&f, F)); CK(cudaMalloc(&out, 4));
  CK(cudaMemset(w, 1, W)); CK(cudaMemset(f, 2, F));
  int sms; cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaEvent_t e0, e1, e2; cudaEventCreate(&e0); cudaEventCreate(&e1); cudaEventCreate(&e2);
  auto flush = [&] { readk<<<sms * 4, 512>>>((const uint4*)f, F / 16, out); };
  auto run = [&](size_t S, int delayUs, int pfBlocks, int mode, int chunk, float* total, float* rd) {
    std::vector<float> a, b;
    for (int r = 0; r < 15; r++) {
      flush();
      cudaEventRecord(e0);
      if (pfBlocks > 0) pfk<<<pfBlocks, 128>>>(w, S, chunk, mode);
      if (delayUs > 0) delayk<<<1, 32>>>(delayUs * 1000);
      cudaEventRecord(e1);
      readk<<<sms * 4, 512>>>((const uint4*)w, S / 16, out);
      cudaEventRecord(e2);
      CK(cudaEventSynchronize(e2));
      float x, y; cudaEventElapsedTime(&x, e0, e2); cudaEventElapsedTime(&y, e1, e2); a.push_back(x * 1000); b.push_back(y * 1000);
    }
    std::sort(a.begin(), a.end()); std::sort(b.begin(), b.end()); *total = a[7]; *rd = b[7];
  };
  printf("S_MB delay_us pf_blocks mode chunk | total_us read_us (read-only baseline total)\n");
  for (size_t S : {8u << 20, 16u << 20, 25u << 20, 32u << 20, 40u << 20, 48u << 20, 64u << 20}) {
    for (int d : {10, 20}) {
      float bt, br; run(S, d, 0, 0, 0, &bt, &br);
      printf("%zu %d none | %.1f %.1f\n", S >> 20, d, bt, br);
      for (int pb : {1, 8, 32, 132}) for (int mode : {0, 1}) {
        if (mode == 1 && pb < 32) continue;
        for (int chunk : {16384, 65536}) {
          if (mode == 1 && chunk != 16384) continue;
          float t, r; run(S, d, pb, mode, chunk, &t, &r);
          printf("%zu %d %d %d %d | %.1f %.1f\n", S >> 20, d, pb, mode, chunk, t, r);
        }
      }
    }
  }
  printf("PDL self-prefetch: S_MB delay_us blocks | noPF_total_us PF_total_us\n");
  for (size_t S : {8u << 20, 16u << 20, 25u << 20, 50u << 20, 117u << 20}) for (int d : {0, 5, 10, 20}) for (int nb : {132, 264, 896}) {
    float res[2];
    for (int pf = 0; pf < 2; pf++) {
      std::vector<float> a;
      for (int r = 0; r < 15; r++) {
        flush();
        cudaEventRecord(e0);
        delaypdl<<<1, 32>>>(d * 1000);
        cudaLaunchConfig_t cfg = {}; cfg.gridDim = nb; cfg.blockDim = 256;
        cudaLaunchAttribute at[1]; at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization; at[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = at; cfg.numAttrs = 1;
        CK(cudaLaunchKernelEx(&cfg, readpdl, (const char*)w, S, pf, out));
        cudaEventRecord(e2); CK(cudaEventSynchronize(e2));
        float x; cudaEventElapsedTime(&x, e0, e2); a.push_back(x * 1000);
      }
      std::sort(a.begin(), a.end()); res[pf] = a[7];
    }
    printf("%zu %d %d | %.1f %.1f\n", S >> 20, d, nb, res[0], res[1]);
  }
  return 0;
}
