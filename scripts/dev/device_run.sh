#!/usr/bin/env bash
# The GPU proof in one call. On a GPU machine that has CUDA, a PyTorch wheel and CMake but no OpenCV
# C++ and no network, it builds detr-cpp against the wheel's LibTorch and the bundle from
# scripts/dev/device_bundle.sh (.device/ beside the checkout), then runs, each stage timed:
#   build     configure + build every target (CUDA and, with the wheel's nvidia-nccl, NCCL on)
#   tests     the CUDA tests: a training step on the GPU equal to the CPU's within tolerance, AMP bf16
#             and fp16 close to float32, the foreach AdamW on CUDA tensors, detr_train/detr_bench on GPU
#   nccl      one NCCL process group (Cuda.NcclProcessGroupReducesOnTheGpu): rendezvous, all-reduce,
#             broadcast and barrier on CUDA tensors, as one rank (a one-GPU machine cannot hold two)
#   bench     detr_bench, R50 default configuration, fp32 and bf16 (and fp16): images/s, peak GPU
#             memory and model FLOP utilisation against the measured matmul peak
#   upstream  upstream Python DETR's training step on the same GPU and data (scripts/bench/bench_upstream.py;
#             needs the facebookresearch/detr and cocoapi checkouts in the bundle: .device/detr and
#             .device/cocoapi), printed beside ours as a ratio
# Figures go to $OUT (or build-device/figures): configure.log, ctest.log, nccl.log,
# bench_<config>_<amp>.json, upstream_<config>.json, gpu.txt, summary.txt.
#
#   scripts/dev/device_run.sh                  # every stage
#   scripts/dev/device_run.sh build tests      # some stages
#
# Runnable anywhere: a stage whose prerequisite is missing (no bundle, no PyTorch, no GPU, no
# checkout) says what it skips and why, and the script goes on. It fails (exit 1) only when a stage
# that could run failed.
#
# Environment: PYTHON (the interpreter holding torch; default python3), TORCH_CMAKE_PREFIX (another
# LibTorch's CMake prefix instead of the wheel's), DETR_DEVICE_DIR (the bundle), DETR_BUILD_DIR
# (default build-device), DETR_BENCH_STEPS (measured steps per repetition, default 10).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bundle=${DETR_DEVICE_DIR:-$root/.device}
build=${DETR_BUILD_DIR:-$root/build-device}
figures=${OUT:-$build/figures}
py=${PYTHON:-python3}
steps=${DETR_BENCH_STEPS:-10}
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(build tests nccl bench upstream)
mkdir -p "$figures"
failed=()
summary="$figures/summary.txt"
: >"$summary"
note() { echo "device_run: $*" | tee -a "$summary"; }
skip() { note "$1: skipped: $2"; }
timed() {  # timed STAGE FUNCTION: runs it, notes its time and verdict
  local t0=$SECONDS
  if "$2"; then note "$1: ok ($(( SECONDS - t0 )) s)"; else note "$1: FAILED ($(( SECONDS - t0 )) s)"; failed+=("$1"); fi
}
have_torch() { "$py" -c 'import torch' >/dev/null 2>&1; }
have_gpu() { have_torch && "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }
tool() { echo "$build/src/cli/$1"; }

stage_build() {
  local torch_prefix abi nccl_include arch prefixes generator=()
  torch_prefix=${TORCH_CMAKE_PREFIX:-$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')}
  abi=$("$py" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  if [ "$abi" != 1 ]; then
    echo "this LibTorch uses the old C++ ABI (_GLIBCXX_USE_CXX11_ABI=0); the bundle is built with the new one" >&2
    return 1
  fi
  # nccl.h from the wheel's nvidia-nccl package, when it is there (c10d's NCCL backend).
  nccl_include=$("$py" - <<'EOF' 2>/dev/null || true
import os
try:
    import nvidia.nccl as n
except ImportError:
    raise SystemExit
for p in n.__path__:
    if os.path.exists(os.path.join(p, "include", "nccl.h")):
        print(os.path.join(p, "include"))
        break
EOF
)
  arch=$(cat "$bundle/multiarch")
  if [ "$(gcc -dumpversion | cut -d. -f1)" -lt "$(cat "$bundle/gcc-major")" ]; then
    echo "this gcc is older than the one that built the bundle (gcc $(cat "$bundle/gcc-major")); linking its static libraries may fail" >&2
  fi
  prefixes="$bundle/opencv;$bundle/prefix/usr;$torch_prefix"  # the bundle first
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  # The bundle's protoc runs on its own shared libraries; the programs link protobuf statically.
  local -x LD_LIBRARY_PATH="$bundle/prefix/usr/lib/$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  NCCL_INCLUDE_DIR=$nccl_include cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefixes" -DOpenCV_DIR="$bundle/opencv/lib/cmake/opencv4" \
    -DGTest_DIR="$bundle/prefix/usr/lib/$arch/cmake/GTest" -DCMAKE_LIBRARY_ARCHITECTURE="$arch" \
    -DProtobuf_USE_STATIC_LIBS=ON -DDETR_ONEDNN=OFF >"$figures/configure.log" 2>&1 || { tail -n 30 "$figures/configure.log"; return 1; }
  grep -E "^-- detr-cpp" "$figures/configure.log"
  grep -q "^-- detr-cpp CUDA: ON" "$figures/configure.log" || { echo "configure found no CUDA LibTorch" >&2; return 1; }
  grep -q "nccl=ON" "$figures/configure.log" || echo "NCCL is off in this build (no nccl.h): the nccl stage will skip" >&2
  cmake --build "$build" --parallel "$(nproc)" >"$figures/build.log" 2>&1 || { grep -E "error" "$figures/build.log" | head -n 30; return 1; }
}

stage_tests() {
  (cd "$build" && ctest -R '^Cuda\.' -E 'Nccl' --no-tests=error --output-on-failure -V >"$figures/ctest.log" 2>&1)
  local rc=$?
  grep -E "CUDA|vs|Test +#|tests passed|Skipped|Failed" "$figures/ctest.log"
  grep -q "Skipped" "$figures/ctest.log" && { echo "a CUDA test skipped on a GPU machine" >&2; return 1; }
  return $rc
}

stage_nccl() {
  # One rank (a one-GPU machine cannot hold two NCCL ranks): the NCCL process group detr_train uses,
  # its rendezvous, all-reduce, broadcast and barrier on CUDA tensors.
  (cd "$build" && ctest -R '^Cuda\.NcclProcessGroupReducesOnTheGpu$' --no-tests=error --output-on-failure -V \
    >"$figures/nccl.log" 2>&1)
  local rc=$?
  grep -E "NCCL|Passed|Failed|Skipped" "$figures/nccl.log" | head -n 10
  [ $rc = 0 ] && ! grep -q "Skipped" "$figures/nccl.log"
}

stage_bench() {
  local bench=("$(tool detr_bench)" --device cuda --warmup 3 --steps "$steps" --repeats 3 --mode both --num_workers 4)
  local amp ok=0
  for amp in off bf16 fp16; do
    "${bench[@]}" --config default --batch_size 2 --amp "$amp" --json "$figures/bench_default_$amp.json" | tail -n 5 || ok=1
  done
  "${bench[@]}" --config small --batch_size 4 --amp off --json "$figures/bench_small_off.json" | tail -n 4 || ok=1
  return $ok
}

stage_upstream() {
  # pycocotools' C extension, built in place in the cocoapi checkout (as tests/reference/README.md does).
  if ! ls "$bundle"/cocoapi/PythonAPI/pycocotools/_mask*.so >/dev/null 2>&1; then
    (cd "$bundle/cocoapi/PythonAPI" && "$py" setup.py build_ext --inplace >"$figures/pycocotools.log" 2>&1) \
      || { tail -n 20 "$figures/pycocotools.log"; return 1; }
  fi
  DETR_REPO="$bundle/detr" COCOAPI_REPO="$bundle/cocoapi" "$py" "$root/scripts/bench/bench_upstream.py" "$build" \
    --device cuda --config default --batch_size 2 --warmup 3 --steps "$steps" --repeats 3 --num_workers 4 \
    --threads "$(nproc)" --json "$figures/upstream_default.json" 2>"$figures/upstream.log" | head -n 3 || return 1
  [ -s "$figures/bench_default_off.json" ] || return 0
  "$py" - "$figures/bench_default_off.json" "$figures/upstream_default.json" <<'EOF'
import json, sys
ours, up = (json.load(open(p)) for p in sys.argv[1:3])
o, u = ours["train"], up["train"]
print(f"R50 default fp32 train, batch 2, same GPU: ours {o['images_per_s']:.2f} images/s, upstream "
      f"{u['images_per_s']:.2f}: {o['images_per_s'] / u['images_per_s']:.2f}x; peak GPU memory ours "
      f"{ours.get('peak_cuda_gb', 0):.2f} GB, upstream {up['peak_gpu_gb']:.2f} GB")
EOF
}

for stage in "${stages[@]}"; do
  case $stage in
    build)
      if [ ! -f "$bundle/opencv/lib/cmake/opencv4/OpenCVConfig.cmake" ]; then
        skip build "no bundle at $bundle (run scripts/dev/device_bundle.sh on a Debian machine and carry .device)"
      elif ! have_torch; then skip build "$py has no torch (set PYTHON to the interpreter that holds PyTorch)"
      else timed build stage_build; fi ;;
    tests|nccl|bench|upstream)
      if ! have_torch; then skip "$stage" "$py has no torch (set PYTHON to the interpreter that holds PyTorch)"
      elif ! have_gpu; then skip "$stage" "no GPU visible to $py's torch"
      elif [ ! -x "$(tool detr_train)" ]; then skip "$stage" "no build at $build (the build stage first)"
      elif [ "$stage" = upstream ] && { [ ! -d "$bundle/detr/models" ] || [ ! -d "$bundle/cocoapi/PythonAPI" ]; }; then
        skip upstream "no facebookresearch/detr and cocoapi checkouts at $bundle/detr and $bundle/cocoapi"
      elif [ "$stage" = upstream ] && ! "$py" -c 'import torchvision, scipy, Cython' >/dev/null 2>&1; then
        skip upstream "$py lacks torchvision, scipy or Cython (upstream DETR and pycocotools need them)"
      else timed "$stage" "stage_$stage"; fi ;;
    *) echo "device_run: unknown stage '$stage' (build, tests, nccl, bench, upstream)" >&2; exit 2 ;;
  esac
done
if have_gpu; then
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
  } >"$figures/gpu.txt" 2>&1
fi
note "figures in $figures"
[ ${#failed[@]} = 0 ] || { note "failed stages: ${failed[*]}"; exit 1; }
