#!/usr/bin/env bash
# Builds detr-cpp on a GPU machine that has CUDA, a PyTorch wheel and CMake but no OpenCV C++ and no
# network, against the wheel's LibTorch and the bundle from scripts/device_bundle.sh (.device/ beside
# the checkout); then runs the CUDA tests and the GPU benchmarks and writes their figures to
# $OUT (or build-device/figures): ctest.log, bench_<config>_<amp>.json, gpu.txt.
#
#   scripts/device_run.sh              # build + CUDA tests + benchmarks
#   scripts/device_run.sh build        # build only
#
# Environment: PYTHON (the interpreter holding torch; default python3), TORCH_CMAKE_PREFIX (another
# LibTorch's CMake prefix instead of the wheel's), DETR_DEVICE_DIR (the bundle),
# DETR_BUILD_DIR (default build-device), DETR_BENCH_STEPS (measured steps per repetition, default 10).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${DETR_DEVICE_DIR:-$root/.device}
build=${DETR_BUILD_DIR:-$root/build-device}
figures=${OUT:-$build/figures}
py=${PYTHON:-python3}
what=${1:-all}
mkdir -p "$figures"

[ -f "$bundle/opencv/lib/cmake/opencv4/OpenCVConfig.cmake" ] || {
  echo "device_run: no bundle at $bundle (run scripts/device_bundle.sh on a Debian machine and carry .device)" >&2
  exit 2
}
torch_prefix=${TORCH_CMAKE_PREFIX:-$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')}
abi=$("$py" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
[ "$abi" = 1 ] || {
  echo "device_run: this LibTorch uses the old C++ ABI (_GLIBCXX_USE_CXX11_ABI=0); the bundle is built with the new one" >&2
  exit 2
}
# nccl.h from the wheel's nvidia-nccl package, when it is there (c10d's NCCL backend).
nccl_include=$("$py" - <<'EOF' 2>/dev/null || true
import os, nvidia.nccl
for p in nvidia.nccl.__path__:
    if os.path.exists(os.path.join(p, "include", "nccl.h")):
        print(os.path.join(p, "include"))
        break
EOF
)
arch=$(cat "$bundle/multiarch")
if [ "$(gcc -dumpversion | cut -d. -f1)" -lt "$(cat "$bundle/gcc-major")" ]; then
  echo "device_run: this gcc is older than the one that built the bundle (gcc $(cat "$bundle/gcc-major")); linking its static libraries may fail" >&2
fi
prefixes="$bundle/opencv;$bundle/prefix/usr;$torch_prefix"  # the bundle first
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
NCCL_INCLUDE_DIR=$nccl_include cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefixes" -DOpenCV_DIR="$bundle/opencv/lib/cmake/opencv4" \
  -DGTest_DIR="$bundle/prefix/usr/lib/$arch/cmake/GTest" -DCMAKE_LIBRARY_ARCHITECTURE="$arch" \
  -DDETR_ONEDNN=OFF | tee "$figures/configure.log"  # the wheel's LibTorch embeds its own oneDNN
cmake --build "$build" --parallel "$(nproc)" 2>&1 | tail -n 20
[ "$what" = build ] && exit 0

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
} | tee "$figures/gpu.txt"

# The CUDA tests, then the rest of the suite (the CPU tests also pass here; fixtures travel in shared/
# only where the checkout has it, so fixture tests may be skipped).
set +e
(cd "$build" && ctest -R '^Cuda\.' --output-on-failure -V >"$figures/ctest.log" 2>&1)
tests_rc=$?
set -e
grep -E "CUDA|vs|Test +#|tests passed|Skipped|Failed" "$figures/ctest.log" || true

steps=${DETR_BENCH_STEPS:-10}
bench=("$build/src/cli/detr_bench" --device cuda --warmup 3 --steps "$steps" --repeats 3 --mode both --num_workers 4)
for amp in off bf16 fp16; do
  "${bench[@]}" --config default --batch_size 2 --amp "$amp" --json "$figures/bench_default_$amp.json" | tail -n 4
done
"${bench[@]}" --config default --batch_size 8 --amp bf16 --json "$figures/bench_default_b8_bf16.json" | tail -n 4
"${bench[@]}" --config small --batch_size 4 --amp off --json "$figures/bench_small_off.json" | tail -n 4
echo "device_run: figures in $figures"
[ "$tests_rc" = 0 ] || { echo "device_run: CUDA tests failed (see $figures/ctest.log)" >&2; exit 1; }
