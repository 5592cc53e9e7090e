#!/bin/bash
# One device call: build, check (nvcc + NVRTC builds), time, PyTorch baselines.
# Usage (repo root, on the GPU host): bash bench/fp4/run.sh [quick|variants]
set -o pipefail
OUT=${OUT:-/tmp/fp4out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee $OUT/gpu.txt
rm -f /tmp/fp4 # a failed build must not leave an old binary to run
nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -o /tmp/fp4 bench/fp4/main.cu 2>&1 \
  | grep -E "error|warning|gbx_nvfp4_gemm|registers|spill" | head -40
[ -x /tmp/fp4 ] || exit 1
cuobjdump -sass -fun gbx_nvfp4_gemm /tmp/fp4 > $OUT/sass.txt 2>&1
grep -c HMMA $OUT/sass.txt; grep -cE "LDL|STL" $OUT/sass.txt
python3 bench/fp4/nvrtc_check.py 2>&1 | tee $OUT/nvrtc.txt
/tmp/fp4 ${1:-} 2>&1 | tee $OUT/fp4.txt
[ "$1" = quick ] || python3 bench/fp4/bf16_ref.py 2>&1 | tee $OUT/torch.txt
