// bench/fp4: standalone check + timing harness for kernels/cuda/src/fp4_linear.cu.
//
// Build and run on the GPU host (see README.md):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/fp4 bench/fp4/main.cu
//   /tmp/fp4            # correctness suite + timing table
//   /tmp/fp4 quick      # correctness only
//
// Weights: random, quantized to NVFP4 on the host following docs/precision.md exactly
// (s_t = amax/2688; s_b = E4M3RNE((bamax/6)/s_t) saturating; d = dec(s_b)*s_t;
// q = E2M1RNE(x/d) saturating). Activations: random bf16, fresh per shape, never zero.
// Reference: float64 sum of bf16(x) * ((DecodeE2M1(q) * DecodeE4M3(s_b)) * s_t) (the
// float32 dequantization of the contract) + bias, on all or a random sample of channels.
// Timing: CUDA events around each launch, warm-up, median of 100 launches; weights rotate
// among copies totalling > 200 MB so that every launch reads its weights from HBM.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../kernels/cuda/src/fp4_linear.cu"

#define CK(x)                                                                                   \
	do {                                                                                        \
		cudaError_t e_ = (x);                                                                   \
		if (e_ != cudaSuccess) {                                                                \
			fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
			exit(1);                                                                            \
		}                                                                                       \
	} while (0)

// ---- variants for tuning: warps per CTA, channels per CTA, stages, dequant form ------------
template <int NW, int ROWS, int S, int DQ, int MINB>
__global__ void __launch_bounds__(NW * 32, MINB)
    var_k(const unsigned short* __restrict__ x, const unsigned char* __restrict__ w,
          const unsigned char* __restrict__ ws, float ts, const float* __restrict__ bias,
          float* __restrict__ y, int M, int N, int K, int Kp) {
	extern __shared__ __attribute__((aligned(16))) unsigned char sm[];
	gbx_fp4_dispatch<NW, ROWS, S, DQ>(x, w, ws, ts, bias, y, M, N, K, Kp, sm);
}

// one fixed tiling (valid for M <= 8 NT only; the harness skips larger M)
template <int NT, int RT, int RW, int KW, int S, int DQ, int MINB>
__global__ void __launch_bounds__(RW * KW * 32, MINB)
    var_one(const unsigned short* __restrict__ x, const unsigned char* __restrict__ w,
            const unsigned char* __restrict__ ws, float ts, const float* __restrict__ bias,
            float* __restrict__ y, int M, int N, int K, int Kp) {
	extern __shared__ __attribute__((aligned(16))) unsigned char sm[];
	gbx_fp4_fast<NT, RT, RW, KW, S, DQ>(x, w, ws, ts, bias, y, M, N, K, sm);
}

typedef void (*kfn)(const unsigned short*, const unsigned char*, const unsigned char*, float, const float*, float*,
                    int, int, int, int);
struct Variant {
	const char* name;
	kfn fn;
	int threads, rows, smem, maxm = 1 << 30, minkalign = 1;
};
#define ONE(NT, RT, RW, KW, S, DQ, MINB)                                                                     \
	{"o" #NT "." #RT "." #RW "." #KW "s" #S "d" #DQ, var_one<NT, RT, RW, KW, S, DQ, MINB>, RW * KW * 32, 16 * RT * RW, \
	 S * RW * KW * RT * 1280, 8 * NT, 128}
#define VAR(NW, ROWS, S, DQ, MINB, RTMAX) \
	{"w" #NW "r" #ROWS "s" #S "d" #DQ, var_k<NW, ROWS, S, DQ, MINB>, NW * 32, ROWS, S * NW * RTMAX * 1280}
static Variant variants[] = {
    VAR(8, 32, 2, 0, 2, 2),  // as shipped: gbx_nvfp4_gemm (row-major; GBX_FP4_ROWS 32, GBX_FP4_STAGES 2)
    VAR(8, 64, 3, 0, 1, 4),  // the first version (64 channels per CTA, 3 stages)
    VAR(8, 32, 2, 4, 2, 2),  // multiply-form unpack
    VAR(8, 32, 2, 64, 2, 2), // loads-only probe: memory side alone (results wrong by design)
};

// ---- host formats -------------------------------------------------------------------------
static float e4m3_val[256];
static float e2m1_val[16];
static void init_tables() {
	for (int b = 0; b < 256; ++b) {
		int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
		double v = e == 0 ? m * std::ldexp(1.0, -9) : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
		if ((b & 0x7f) == 0x7f) v = NAN;
		e4m3_val[b] = (float)(s ? -v : v);
	}
	const float mags[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
	for (int c = 0; c < 16; ++c) e2m1_val[c] = (c & 8) ? -mags[c & 7] : mags[c & 7];
}
// nearest code among ascending positive codes 0..maxc, ties to the even code; saturating.
static int nearest_code(float v, const float* vals, int maxc) {
	if (!(v == v)) return maxc;
	if (v >= vals[maxc]) return maxc;
	int lo = 0, hi = maxc; // vals[lo] <= v < vals[hi]
	while (hi - lo > 1) {
		int mid = (lo + hi) / 2;
		if (vals[mid] <= v) lo = mid; else hi = mid;
	}
	double dl = (double)v - vals[lo], dh = (double)vals[hi] - v;
	if (dl < dh) return lo;
	if (dh < dl) return hi;
	return (lo & 1) ? hi : lo;
}
static uint8_t enc_e4m3(float v) { // v >= 0 here
	if (v < 0) return 0x80 | (uint8_t)nearest_code(-v, e4m3_val, 0x7e);
	return (uint8_t)nearest_code(v, e4m3_val, 0x7e);
}
static uint8_t enc_e2m1(float v) {
	if (std::signbit(v)) return 8 | (uint8_t)nearest_code(-v, e2m1_val, 7);
	return (uint8_t)nearest_code(v, e2m1_val, 7);
}
static uint16_t host_f2bf(float f) {
	uint32_t b;
	memcpy(&b, &f, 4);
	b += 0x7fff + ((b >> 16) & 1);
	return (uint16_t)(b >> 16);
}
static float host_bf2f(uint16_t h) {
	uint32_t b = (uint32_t)h << 16;
	float f;
	memcpy(&f, &b, 4);
	return f;
}

struct Q {
	int N, K, Kp;
	std::vector<uint8_t> data, scales;
	float ts;
};
static Q quantize(const std::vector<float>& wt, int N, int K) {
	Q q;
	q.N = N;
	q.K = K;
	q.Kp = (K + 15) / 16 * 16;
	q.data.assign((size_t)N * q.Kp / 2, 0);
	q.scales.assign((size_t)N * q.Kp / 16, 0);
	float amax = 0.f;
	for (float v : wt) amax = std::max(amax, std::fabs(v));
	volatile float st = amax / 2688.0f;
	q.ts = st;
	if (st == 0.f) return q;
	for (int n = 0; n < N; ++n)
		for (int b = 0; b < q.Kp / 16; ++b) {
			float blk[16] = {0};
			float bamax = 0.f;
			for (int i = 0; i < 16; ++i) {
				int k = b * 16 + i;
				if (k < K) blk[i] = wt[(size_t)n * K + k];
				bamax = std::max(bamax, std::fabs(blk[i]));
			}
			volatile float t1 = bamax / 6.0f;
			volatile float t2 = t1 / st;
			uint8_t sb = enc_e4m3(t2);
			q.scales[(size_t)n * q.Kp / 16 + b] = sb;
			volatile float d = e4m3_val[sb] * st;
			if (d == 0.f) continue;
			for (int i = 0; i < 16; i += 2) {
				volatile float r0 = blk[i] / d, r1 = blk[i + 1] / d;
				q.data[(size_t)n * q.Kp / 2 + b * 8 + i / 2] = enc_e2m1(r0) | (enc_e2m1(r1) << 4);
			}
		}
	return q;
}
static inline float deq(const Q& q, int n, int k) {
	uint8_t byte = q.data[(size_t)n * q.Kp / 2 + k / 2];
	uint8_t c = (k & 1) ? byte >> 4 : byte & 15;
	volatile float p = e2m1_val[c] * e4m3_val[q.scales[(size_t)n * q.Kp / 16 + k / 16]];
	volatile float r = p * q.ts;
	return r;
}

static std::mt19937_64 rng(20261127);
static float randn() {
	static std::normal_distribution<float> nd(0.f, 1.f);
	return nd(rng);
}

// ---- one problem ---------------------------------------------------------------------------
struct Prob {
	int M, N, K;
	Q q;
	std::vector<uint16_t> x;
	std::vector<float> bias;
	unsigned short* dx = nullptr;
	float *dbias = nullptr, *dy = nullptr;
	std::vector<unsigned char*> dw, dws;
};

static void make_weights(Prob& p, int N, int K, bool wide) {
	std::vector<float> wt((size_t)N * K);
	for (int n = 0; n < N; ++n) {
		float rs = wide ? std::ldexp(1.f, -(n % 29)) : 1.f; // rows spanning 2^-28..1: subnormal / zero scales
		for (int k = 0; k < K; ++k) {
			float v = 0.02f * randn() * rs;
			if ((rng() & 1023) == 0) v *= 8.f; // a few outliers
			wt[(size_t)n * K + k] = v;
		}
	}
	p.N = N;
	p.K = K;
	p.q = quantize(wt, N, K);
}

static void upload_weights(Prob& p, int copies) {
	for (auto* d : p.dw) cudaFree(d);
	for (auto* d : p.dws) cudaFree(d);
	p.dw.clear();
	p.dws.clear();
	for (int c = 0; c < copies; ++c) {
		unsigned char *a, *b;
		CK(cudaMalloc(&a, p.q.data.size()));
		CK(cudaMalloc(&b, p.q.scales.size()));
		CK(cudaMemcpy(a, p.q.data.data(), p.q.data.size(), cudaMemcpyHostToDevice));
		CK(cudaMemcpy(b, p.q.scales.data(), p.q.scales.size(), cudaMemcpyHostToDevice));
		p.dw.push_back(a);
		p.dws.push_back(b);
	}
}

static void set_m(Prob& p, int M, bool with_bias) {
	p.M = M;
	p.x.resize((size_t)M * p.K);
	for (auto& v : p.x) {
		uint16_t h;
		do h = host_f2bf(randn()); while (host_bf2f(h) == 0.f);
		v = h;
	}
	p.bias.assign(p.N, 0.f);
	if (with_bias)
		for (auto& b : p.bias) b = 0.1f * randn();
	if (p.dx) cudaFree(p.dx);
	if (p.dy) cudaFree(p.dy);
	if (p.dbias) cudaFree(p.dbias);
	CK(cudaMalloc(&p.dx, p.x.size() * 2));
	CK(cudaMalloc(&p.dy, (size_t)M * p.N * 4));
	CK(cudaMalloc(&p.dbias, (size_t)p.N * 4));
	CK(cudaMemcpy(p.dx, p.x.data(), p.x.size() * 2, cudaMemcpyHostToDevice));
	CK(cudaMemcpy(p.dbias, p.bias.data(), (size_t)p.N * 4, cudaMemcpyHostToDevice));
}

static void launch(const Variant& v, const Prob& p, int copy, bool with_bias, cudaStream_t st = 0) {
	dim3 grid((p.N + v.rows - 1) / v.rows, (p.M + GBX_FP4_MTILE - 1) / GBX_FP4_MTILE);
	v.fn<<<grid, v.threads, v.smem, st>>>(p.dx, p.dw[copy], p.dws[copy], p.q.ts, with_bias ? p.dbias : nullptr,
	                                           p.dy, p.M, p.N, p.K, p.q.Kp);
}

// returns relative L2 error over (all or sampled) channels; checks every output written.
static double check(const Variant& v, Prob& p, bool with_bias, int sample, bool* determ) {
	std::vector<float> y1((size_t)p.M * p.N), y2((size_t)p.M * p.N);
	CK(cudaMemset(p.dy, 0xff, (size_t)p.M * p.N * 4)); // poison (NaN)
	launch(v, p, 0, with_bias);
	CK(cudaGetLastError());
	CK(cudaDeviceSynchronize());
	CK(cudaMemcpy(y1.data(), p.dy, y1.size() * 4, cudaMemcpyDeviceToHost));
	CK(cudaMemset(p.dy, 0xff, (size_t)p.M * p.N * 4));
	launch(v, p, (int)p.dw.size() - 1, with_bias);
	CK(cudaGetLastError());
	CK(cudaDeviceSynchronize());
	CK(cudaMemcpy(y2.data(), p.dy, y2.size() * 4, cudaMemcpyDeviceToHost));
	*determ = memcmp(y1.data(), y2.data(), y1.size() * 4) == 0;
	for (float f : y1)
		if (!std::isfinite(f)) return INFINITY; // unwritten (poison) or broken
	std::vector<int> chans;
	if (sample <= 0 || sample >= p.N) {
		for (int n = 0; n < p.N; ++n) chans.push_back(n);
	} else {
		for (int i = 0; i < sample; ++i) chans.push_back((int)(rng() % p.N));
		chans.push_back(p.N - 1);
	}
	std::vector<float> wrow(p.K);
	std::vector<double> xd((size_t)p.M * p.K);
	for (size_t i = 0; i < xd.size(); ++i) xd[i] = host_bf2f(p.x[i]);
	double num = 0, den = 0;
	for (int n : chans) {
		for (int k = 0; k < p.K; ++k) wrow[k] = deq(p.q, n, k);
		for (int m = 0; m < p.M; ++m) {
			double s = 0;
			const double* xr = &xd[(size_t)m * p.K];
			for (int k = 0; k < p.K; ++k) s += xr[k] * (double)wrow[k];
			s += with_bias ? p.bias[n] : 0.0;
			double d = (double)y1[(size_t)m * p.N + n] - s;
			num += d * d;
			den += s * s;
		}
	}
	return std::sqrt(num / den);
}

static double time_kernel(const Variant& v, Prob& p, int reps, double* mean_us) {
	int copies = (int)p.dw.size();
	for (int i = 0; i < 10; ++i) launch(v, p, i % copies, true);
	CK(cudaGetLastError());
	CK(cudaDeviceSynchronize());
	std::vector<cudaEvent_t> ev(2 * reps);
	for (auto& e : ev) CK(cudaEventCreate(&e));
	for (int r = 0; r < reps; ++r) {
		CK(cudaEventRecord(ev[2 * r]));
		launch(v, p, r % copies, true);
		CK(cudaEventRecord(ev[2 * r + 1]));
	}
	CK(cudaGetLastError());
	CK(cudaDeviceSynchronize());
	std::vector<float> ts(reps);
	for (int r = 0; r < reps; ++r) CK(cudaEventElapsedTime(&ts[r], ev[2 * r], ev[2 * r + 1]));
	// back-to-back throughput: one event pair around reps launches
	CK(cudaEventRecord(ev[0]));
	for (int r = 0; r < reps; ++r) launch(v, p, r % copies, true);
	CK(cudaEventRecord(ev[1]));
	CK(cudaEventSynchronize(ev[1]));
	float tot;
	CK(cudaEventElapsedTime(&tot, ev[0], ev[1]));
	*mean_us = tot * 1000.0 / reps;
	for (auto& e : ev) cudaEventDestroy(e);
	std::sort(ts.begin(), ts.end());
	return ts[reps / 2] * 1000.0;
}

int main(int argc, char** argv) {
	bool quick = argc > 1 && std::string(argv[1]) == "quick";
	bool allvar = argc > 1 && std::string(argv[1]) == "variants";
	bool prof = argc > 1 && std::string(argv[1]) == "prof";
	init_tables();
	cudaDeviceProp prop;
	CK(cudaGetDeviceProperties(&prop, 0));
	printf("device: %s, %d SMs, L2 %d MB, cc %d.%d\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20,
	       prop.major, prop.minor);
	for (auto& v : variants) CK(cudaFuncSetAttribute(v.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, v.smem));
	cudaFuncAttributes fa;
	for (auto& v : variants) {
		CK(cudaFuncGetAttributes(&fa, v.fn));
		int occ = 0;
		CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, v.fn, v.threads, v.smem));
		printf("%-14s %d regs, %zu B local, dyn smem %d, %d threads, %d rows/CTA, %d CTAs/SM\n", v.name, fa.numRegs,
		       fa.localSizeBytes, v.smem, v.threads, v.rows, occ);
	}

	if (prof) { // one shape for ncu: N = K = 8192, launches of M = 1 then M = 16 (variant index argv[2])
		init_tables();
		int vi = argc > 2 ? atoi(argv[2]) : 0;
		Prob p;
		make_weights(p, 8192, 8192, false);
		upload_weights(p, 6);
		for (int M : {1, 16}) {
			set_m(p, M, true);
			for (int r = 0; r < 6; ++r) launch(variants[vi], p, r % 6, true);
			CK(cudaDeviceSynchronize());
		}
		return 0;
	}
	// ---- correctness suite -------------------------------------------------------------------
	struct CS {
		int M, N, K;
		bool wide, bias;
	};
	CS cs[] = {{1, 256, 1024, false, true},  {3, 200, 768, true, true},    {8, 512, 2048, false, false},
	           {13, 130, 1280, true, true},  {16, 384, 4096, false, true}, {27, 256, 1024, false, true},
	           {64, 192, 512, true, true},   {70, 100, 384, false, true},  {5, 77, 200, true, true},
	           {19, 65, 1000, false, true},  {1, 64, 8, true, false},      {130, 128, 256, false, true},
	           {2, 1024, 8192, false, true}};
	bool ok = true;
	printf("\n%-22s %-10s %12s %6s\n", "check M x N x K", "variant", "rel L2", "determ");
	for (auto& c : cs) {
		Prob p;
		make_weights(p, c.N, c.K, c.wide);
		upload_weights(p, 2);
		set_m(p, c.M, c.bias);
		for (auto& v : variants) {
			if (c.M > v.maxm || c.K % v.minkalign || strstr(v.name, "d64")) continue;
			bool det;
			double e = check(v, p, c.bias, 0, &det);
			bool pass = e < 1e-5 && det;
			ok &= pass;
			printf("%4d x %5d x %5d%s %-10s %12.3e %6s %s\n", c.M, c.N, c.K, c.wide ? "w" : " ", v.name, e,
			       det ? "yes" : "NO", pass ? "" : "FAIL");
		}
	}
	if (quick) return ok ? 0 : 1;

	// ---- timing --------------------------------------------------------------------------------
	struct TS {
		int N, K;
	};
	TS shapes[] = {{8192, 8192}, {14336, 4096}};
	int Ms[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
	printf("\nTIMING (median of 100 launches, CUDA events, weights rotated through >200 MB; b2b = mean of "
	       "back-to-back launches)\n");
	printf("%-6s %-14s %-10s %10s %10s %9s %7s %10s\n", "M", "N x K", "variant", "us", "b2b us", "GB/s", "%3.35",
	       "relL2");
	for (auto& s : shapes) {
		Prob p;
		make_weights(p, s.N, s.K, false);
		size_t wbytes = p.q.data.size() + p.q.scales.size();
		int copies = (int)(200e6 / wbytes) + 2;
		upload_weights(p, copies);
		for (int M : Ms) {
			set_m(p, M, true);
			bool det;
			double e = check(variants[0], p, true, 48, &det);
			if (!(e < 1e-5) || !det) ok = false;
			for (auto& v : variants) {
				if (!allvar && &v != &variants[0] && !(M == 1 || M == 16 || M == 64)) continue;
				if (M > v.maxm) continue;
				double mean;
				double us = time_kernel(v, p, 100, &mean);
				double bytes = (double)wbytes + (double)M * s.K * 2 + (double)M * s.N * 4 + s.N * 4;
				printf("%-6d %5dx%-8d %-10s %10.2f %10.2f %9.0f %6.1f%% %10.2e%s\n", M, s.N, s.K, v.name, us, mean,
				       bytes / us * 1e-3, bytes / us * 1e-3 / 3350 * 100, e, det ? "" : " NONDET");
			}
		}
	}
	printf("\n%s\n", ok ? "ALL CHECKS PASSED" : "SOME CHECKS FAILED");
	return ok ? 0 : 1;
}
