#!/usr/bin/env python3
"""PyTorch baselines for bench/fp4, timed the same way as main.cu.

bf16: torch.matmul(x, W.t()) with W [N, K] bf16.
fp8:  torch._scaled_mm(x8, W8.t(), scale_a, scale_b, out_dtype=bf16), both E4M3, per-tensor
      scales (the GEMM alone; the activation quantization is not included).
CUDA events around each call, warm-up, median of 100; the weights rotate among copies
totalling > 200 MB so every call reads its weights from HBM (as main.cu does).
Inputs are random (never zeros).
"""
import sys

import torch

MS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
SHAPES = [(8192, 8192), (14336, 4096)]
REPS = 100


def bench(fn, ncopies):
    for i in range(10):
        fn(i % ncopies)
    torch.cuda.synchronize()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(REPS)]
    for r in range(REPS):
        ev[r][0].record()
        fn(r % ncopies)
        ev[r][1].record()
    torch.cuda.synchronize()
    ts = sorted(a.elapsed_time(b) * 1000 for a, b in ev)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for r in range(REPS):
        fn(r % ncopies)
    e.record()
    torch.cuda.synchronize()
    return ts[REPS // 2], s.elapsed_time(e) * 1000 / REPS


def main():
    torch.manual_seed(0)
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    print(f"{'M':<6} {'N x K':<14} {'bf16 us':>9} {'b2b':>8} {'GB/s':>7} {'fp8 us':>9} {'b2b':>8} {'GB/s':>7}")
    for n, k in SHAPES:
        nb = max(2, int(200e6 / (n * k * 2)) + 2)
        n8 = max(2, int(200e6 / (n * k)) + 2)
        wb = [torch.randn(n, k, device=dev).mul_(0.02).to(torch.bfloat16) for _ in range(nb)]
        w8 = [(torch.randn(n, k, device=dev) * 40).clamp_(-448, 448).to(torch.float8_e4m3fn) for _ in range(n8)]
        sa = torch.tensor(1.0, device=dev)
        sb = torch.tensor(0.02 / 40, device=dev)
        for m in MS:
            x = torch.randn(m, k, device=dev).to(torch.bfloat16)
            x8 = (torch.randn(m, k, device=dev) * 40).clamp_(-448, 448).to(torch.float8_e4m3fn)
            tb, tbm = bench(lambda i: torch.matmul(x, wb[i].t()), nb)
            gb = (n * k * 2 + m * k * 2 + m * n * 2) / tb * 1e-3
            try:
                tf, tfm = bench(lambda i: torch._scaled_mm(x8, w8[i].t(), sa, sb, out_dtype=torch.bfloat16), n8)
                gf = (n * k + m * k + m * n * 2) / tf * 1e-3
                fs = f"{tf:9.2f} {tfm:8.2f} {gf:7.0f}"
            except Exception as ex:  # noqa: BLE001
                fs = f"  fp8 failed: {str(ex).splitlines()[0][:60]}"
            print(f"{m:<6} {n:5d}x{k:<8d} {tb:9.2f} {tbm:8.2f} {gb:7.0f} {fs}", flush=True)
        del wb, w8
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
