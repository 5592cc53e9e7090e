#!/usr/bin/env python3
"""Compile kernels/cuda/src/fp4_linear.cu with NVRTC (through CuPy, with kernels/cuda/src as
the only include path: the Go loader hands NVRTC the same files as headers) and check the NVRTC
build against an independent NumPy float64 implementation of the contract on random
codes/scales (fast and generic paths).
Run from the repository root on the GPU host: python3 bench/fp4/nvrtc_check.py
"""
import numpy as np
import cupy as cp

src = open("kernels/cuda/src/fp4_linear.cu").read()
mod = cp.RawModule(code=src, options=("--gpu-architecture=sm_90a", "-std=c++17", "-Ikernels/cuda/src"),
                   backend="nvrtc")
fn = mod.get_function("gbx_nvfp4_gemm")  # row-major weights
SMEM = 40960  # LAUNCH: 2 stages x 8 warps x 2560
print("NVRTC compile OK; regs", fn.num_regs, "local", fn.local_size_bytes)


def e4m3(b):
    b = b.astype(np.int64)
    e, m = (b >> 3) & 15, b & 7
    v = np.where(e == 0, m * 2.0**-9, (1 + m / 8.0) * 2.0 ** (e - 7))
    return np.where(b & 0x80, -v, v).astype(np.float32)


E2M1 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], np.float32)
rng = np.random.default_rng(7)
ok = True
for M, N, K in [(1, 128, 512), (9, 192, 1024), (33, 64, 256), (64, 128, 384), (7, 100, 200), (100, 70, 4096)]:
    Kp = (K + 15) // 16 * 16
    codes = rng.integers(0, 16, size=(N, Kp), dtype=np.uint8)
    codes[:, K:] = 0
    sc = rng.integers(0, 0x7f, size=(N, Kp // 16), dtype=np.uint8)  # 0..0x7e: all finite E4M3 >= 0
    ts = np.float32(rng.uniform(1e-4, 1e-2))
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    xf = rng.standard_normal((M, K)).astype(np.float32)
    xb = (xf.view(np.uint32) + 0x7FFF + ((xf.view(np.uint32) >> 16) & 1)) >> 16
    xb = xb.astype(np.uint16)
    xd = (xb.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    bias = rng.standard_normal(N).astype(np.float32)
    wdq = (E2M1[codes[:, :K]] * np.repeat(e4m3(sc), 16, axis=1)[:, :K]).astype(np.float32) * ts  # float32, in order
    ref = xd @ wdq.astype(np.float64).T + bias
    dy = cp.full((M, N), cp.nan, dtype=cp.float32)
    grid = ((N + 31) // 32, (M + 63) // 64, 1)
    fn(grid, (256, 1, 1), (cp.asarray(xb), cp.asarray(packed), cp.asarray(sc), ts, np.uint64(0), cp.asarray(bias), dy,
                           np.int32(M), np.int32(N), np.int32(K), np.int32(Kp)), shared_mem=SMEM)
    y = cp.asnumpy(dy)
    err = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    good = np.isfinite(y).all() and err < 1e-5
    ok &= bool(good)
    print(f"NVRTC build M={M} N={N} K={K}: rel L2 {err:.3e} {'ok' if good else 'FAIL'}")
print("NVRTC CHECK", "PASSED" if ok else "FAILED")
