#!/usr/bin/env bash
# Type-checks the CUDA-only code (the NCCL branch of src/distributed.cpp, detr_bench's GPU memory)
# against the LibTorch headers this build uses plus a CUDA toolkit's headers and nccl.h, without a
# CUDA LibTorch or a GPU: the code a CUDA build compiles is compiled here too, never linked or run.
# usage: scripts/check_nccl_compiles.sh CXX SCRATCH_DIR TORCH_INCLUDE_DIR...
# Exits 77 (skipped) when no CUDA headers with nccl.h are found ($CUDA_HOME, /usr/local/cuda).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cxx=$1; scratch=$2; shift 2
cuda=""
for d in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -n "$d" ] && [ -f "$d/include/cuda_runtime_api.h" ] && [ -f "$d/include/nccl.h" ]; then cuda=$d; break; fi
done
if [ -z "$cuda" ]; then echo "skipped: no CUDA headers with nccl.h (set CUDA_HOME)"; exit 77; fi
includes=()
for d in "$@"; do includes+=("-I$d"); done
# A CPU LibTorch ships c10/cuda's headers but not the one its CUDA build generates.
mkdir -p "$scratch/c10/cuda/impl"
printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$scratch/c10/cuda/impl/cuda_cmake_macros.h"
for src in src/distributed.cpp src/tools/benchmark.cpp src/amp.cpp src/run_context.cpp models/multihead_attention.cpp; do
  "$cxx" -std=c++17 -fsyntax-only -DDETR_WITH_GLOO -DDETR_WITH_NCCL -DDETR_WITH_CUDA -D_GLIBCXX_USE_CXX11_ABI=1 \
    -I"$scratch" -I"$root" -I"$root/include" "${includes[@]}" -isystem "$cuda/include" "$root/$src"
  echo "compiles with CUDA and NCCL ($cuda): $src"
done
