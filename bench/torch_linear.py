#!/usr/bin/env python3
"""PyTorch's linear-layer times on the shapes `gearbox bench kernels` uses.

Run by `gearbox bench kernels` in the same invocation, on the same GPU, so the
ratios compare like with like. Prints one JSON object on stdout:
{"device": ..., "torch": ..., "results": [{"path", "M", "N", "K", "us"}, ...]}.

Timing matches the Go side: CUDA events around the work alone, queued behind
torch.cuda._sleep so launch overhead stays out; before each run the L2 cache
is flushed (a 256 MiB write) and the input refilled with fresh uniform values
(never zeros); median of --iters runs after --warmup. No bias.

Paths:
  fp32        torch.matmul, fp32, TF32 off
  tf32        torch.matmul, fp32 inputs, TF32 on
  bf16, fp16  torch.matmul on bf16 / fp16 inputs (no conversion timed)
  fp8         torch._scaled_mm, E4M3 x E4M3, tensor scales, fp32 output (GEMM only)
  fp8-row     torch._scaled_mm with row/column scales, bf16 output (GEMM only)
  fp8-layer   from an fp32 input: amax, scale, quantize, _scaled_mm (tensor scales)
"""
import argparse
import json
import statistics
import sys

import torch


def parse_shapes(s):
    out = []
    for part in s.split(","):
        n, k = part.lower().split("x")
        out.append((int(n), int(k)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", default="1,16,64,256,1024,4096,8192")
    ap.add_argument("--shapes", default="8192x8192,14336x4096", help="NxK,...")
    ap.add_argument("--paths", default="fp32,tf32,bf16,fp16,fp8,fp8-row,fp8-layer")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    ms = [int(x) for x in a.ms.split(",")]
    paths = a.paths.split(",")
    dev = torch.device("cuda")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    e4m3 = torch.float8_e4m3fn
    results = []
    for n, k in parse_shapes(a.shapes):
        g = torch.Generator(device=dev).manual_seed(n * 31 + k)
        w32 = (torch.rand(n, k, device=dev, generator=g) * 2 - 1) * (30.0 / k)
        wsc = w32.abs().amax() / 448.0
        w8 = (w32 / wsc).to(e4m3)
        wrow = w32.abs().amax(dim=1, keepdim=True) / 448.0
        w8row = (w32 / wrow).to(e4m3)
        weights = {"fp32": w32, "tf32": w32, "bf16": w32.to(torch.bfloat16), "fp16": w32.to(torch.float16)}
        for m in ms:
            x32 = torch.empty(m, k, device=dev)
            for path in paths:
                xin = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(path, torch.float32)
                x = torch.empty(m, k, device=dev, dtype=xin)
                one = torch.ones((), device=dev)
                if path in ("fp32", "tf32", "bf16", "fp16"):
                    wt = weights[path].t()

                    def run():
                        return torch.matmul(x, wt)
                elif path == "fp8":
                    def run():
                        return torch._scaled_mm(x8, w8.t(), scale_a=one, scale_b=wsc, out_dtype=torch.float32)
                elif path == "fp8-row":
                    def run():
                        return torch._scaled_mm(x8, w8row.t(), scale_a=xrow, scale_b=wrow.t().contiguous(),
                                                out_dtype=torch.bfloat16)
                elif path == "fp8-layer":
                    def run():
                        s = x.abs().amax() / 448.0
                        q = (x / s).to(e4m3)
                        return torch._scaled_mm(q, w8.t(), scale_a=s, scale_b=wsc, out_dtype=torch.float32)
                else:
                    raise SystemExit(f"unknown path {path}")
                torch.backends.cuda.matmul.allow_tf32 = path == "tf32"
                times = []
                err = None
                try:
                    for it in range(a.warmup + a.iters):
                        flush.fill_(it & 0xff)
                        x.uniform_(-1, 1)
                        if path in ("fp8", "fp8-row"):
                            x8 = x.to(e4m3)
                            xrow = torch.ones(m, 1, device=dev)
                        torch.cuda._sleep(400_000)
                        s0 = torch.cuda.Event(enable_timing=True)
                        s1 = torch.cuda.Event(enable_timing=True)
                        s0.record()
                        run()
                        s1.record()
                        s1.synchronize()
                        if it >= a.warmup:
                            times.append(s0.elapsed_time(s1) * 1000.0)
                except Exception as e:  # e.g. a shape _scaled_mm refuses
                    err = str(e).splitlines()[0][:200]
                r = {"path": path, "M": m, "N": n, "K": k}
                if err:
                    r["error"] = err
                else:
                    r["us"] = statistics.median(times)
                results.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "cuda": torch.version.cuda, "results": results}))


if __name__ == "__main__":
    main()
