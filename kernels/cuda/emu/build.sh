#!/bin/sh
# Builds the CUDA emulator (README.md) into $1 (default /tmp/gearbox-cuda-emu):
# $1/lib holds libcuda.so.1, libnvrtc.so.13, libnvrtc-builtins.so.13.0 and
# libcublasLt.so.13 for GEARBOX_CUDA_LIB_DIR.
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/gearbox-cuda-emu}
rm -rf "$out/src" "$out/lib"
mkdir -p "$out/src" "$out/lib"
cp "$here"/../src/*.cu "$here"/../src/*.cuh "$here"/../src/*.h "$out/src/"
cp "$here/common_emu.cuh" "$out/src/common.cuh"
# bench.cu's spin reads %globaltimer: no time passes here.
sed -i 's|asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));|t0 = 0;|; s|asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));|t = (unsigned long long)ns;|' "$out/src/bench.cu"
g++ -std=c++20 -O1 -g -fPIC -shared -w -I"$out" -o "$out/lib/libcuda.so.1" "$here/emu.cpp" -ldl
cp "$out/lib/libcuda.so.1" "$out/lib/libnvrtc.so.13"
cp "$out/lib/libcuda.so.1" "$out/lib/libcublasLt.so.13"
echo 'int gbx_emu_builtins;' | gcc -x c -shared -fPIC -o "$out/lib/libnvrtc-builtins.so.13.0" -
echo "$out/lib"
