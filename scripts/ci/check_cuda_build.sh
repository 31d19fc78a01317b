#!/usr/bin/env bash
# The CUDA build, proved without a GPU on every change: in a clean Debian 13 (trixie) root with the
# contrib and non-free components, holding only a clone of this checkout,
#   1. the project's own install script (DETR_FLAVOUR=cuda) installs Debian's CUDA LibTorch
#      (libtorch-cuda-dev), the CUDA toolkit and NCCL;
#   2. every target (library, tools, tests, fuzz replays) is built with CUDA and NCCL on, without
#      libcurl (so the optional-dependency case the CUDA build once failed on is built every time) and
#      without oneDNN (Debian 13's is 3.x, which the Winograd path does not use), unoptimised;
#   3. the objects of the CUDA-only code paths (#if DETR_WITH_CUDA / DETR_WITH_NCCL, LibTorch 2.4+'s
#      per-device autocast) are shown to contain their CUDA and NCCL references, and the executables
#      to link libtorch_cuda, libcudart and libnccl;
#   4. unless --no-packaging: a second clean root with only the CUDA runtime packages
#      (scripts/setup/install_runtime_deps.sh, DETR_FLAVOUR=cuda) and the installed tools, where every
#      library the executables need resolves, cuDNN apart.
# It ends with one verdict line. No GPU is needed or used.
#
# cuDNN: Debian's nvidia-cudnn downloads cuDNN from NVIDIA when configured, which a machine without
# network cannot do; this check declines it (DETR_CUDNN=skip), so the build links without cuDNN
# (cmake/Dependencies.cmake) and the executables are shown to need libcudnn.so.9, which they load
# wherever cuDNN is installed. Nothing stands in for it.
#
# Downloaded packages are kept outside the roots, in $DETR_APT_CACHE (default
# /var/cache/detr-cpp/apt-trixie, about 3 GB), so a second run on the same machine downloads nothing.
# Must run as root. usage: scripts/ci/check_cuda_build.sh [--no-packaging] [--workdir DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
packaging=1 workdir=${TMPDIR:-/var/tmp}
while [ $# -gt 0 ]; do
  case $1 in
    --no-packaging) packaging=0; shift ;;
    --workdir) workdir=$2; shift 2 ;;
    *) echo "check_cuda_build: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "check_cuda_build: must run as root (debootstrap, chroot)" >&2; exit 2; }

suite=trixie components=main,contrib,non-free
apt_cache=${DETR_APT_CACHE:-/var/cache/detr-cpp/apt-trixie}
verdict_fail() { echo "check_cuda_build: FAILED: $*"; verdict=1; exit 1; }
# shellcheck source=scripts/ci/clean_root_lib.sh
source "$repo/scripts/ci/clean_root_lib.sh"
# One verdict line, also when a step fails on its own (set -e): then it names the step's line.
verdict=0
trap 'rc=$?; [ "$verdict" = 1 ] || [ $rc = 0 ] || echo "check_cuda_build: FAILED: exit $rc in the step above"; cleanup' EXIT
start_all=$(date +%s)

phase "root 1: a clone of the checkout; DETR_FLAVOUR=cuda DETR_CUDNN=skip scripts/setup/install_deps.sh"
root1="$base/root"
new_root "$root1"
clone_into "$root1" "$repo"
start=$(date +%s)
in_root "$root1" "cd /src/detr-cpp && DETR_FLAVOUR=cuda DETR_CUDNN=skip scripts/setup/install_deps.sh" \
  >"$base/install.log" 2>&1 || { tail -n 30 "$base/install.log"; verdict_fail "install_deps.sh (cuda)"; }
in_root "$root1" "dpkg-query -W -f='\${Package} \${Version}\n' libtorch-cuda-dev nvidia-cuda-toolkit libnccl-dev libgloo-cuda-dev"
echo "install took $(( $(date +%s) - start )) s (packages cached in $apt_cache: $(du -sh "$apt_cache" | cut -f1))"

# Built without optimisation (CMAKE_BUILD_TYPE None): a compile-and-link proof, whose programs cannot
# run here without cuDNN; optimising would only make CI slower.
phase "build every target with CUDA and NCCL (no libcurl, no optimisation)"
start=$(date +%s)
in_root "$root1" "cd /src/detr-cpp && DETR_SKIP_INSTALL=1 scripts/setup/build.sh -DCMAKE_BUILD_TYPE=None -DCMAKE_DISABLE_FIND_PACKAGE_CURL=ON" \
  >"$base/build.log" 2>&1 || { grep -m 40 -E "error|Error" "$base/build.log" || true; tail -n 20 "$base/build.log";
                              verdict_fail "the CUDA build"; }
grep -E "^-- detr-cpp|Caffe2: (CUDA|cuDNN)|CUDA detected|warning:" "$base/build.log" || true
echo "build took $(( $(date +%s) - start )) s; $(grep -c 'warning:' "$base/build.log" || true) compiler warnings"
build="$root1/src/detr-cpp/build"
grep -q "^-- detr-cpp CUDA: ON" "$base/build.log" || verdict_fail "configure did not find a CUDA LibTorch"
grep -q "^-- detr-cpp distributed backends: gloo=ON nccl=ON" "$base/build.log" || verdict_fail "NCCL or Gloo is off"
grep -q "weight downloads OFF" "$base/build.log" || verdict_fail "libcurl was not left out"

phase "the CUDA-only code is compiled"
# Each #if-guarded CUDA/NCCL path, by the symbol only that path references in its object file.
check_symbol() {  # check_symbol OBJECT SYMBOL_REGEX WHAT
  local obj found
  obj=$(find "$build" -path "*$1.o" -print -quit)
  [ -n "$obj" ] || verdict_fail "no object for $1"
  nm -C "$obj" >"$base/nm.txt"
  found=$(grep -m 1 -E "$2" "$base/nm.txt" | sed 's/^ *[0-9a-f]* *//' | cut -c1-90 || true)
  [ -n "$found" ] || verdict_fail "$1 has no reference to $2: $3 was not compiled"
  echo "compiled: $3 ($1: $found)"
}
check_symbol src/distributed.cpp "c10d::ProcessGroupNCCL::ProcessGroupNCCL" "NCCL process group (#ifdef DETR_WITH_NCCL)"
check_symbol src/distributed.cpp "c10::cuda::set_device" "this rank's GPU before NCCL starts (#ifdef DETR_WITH_NCCL)"
check_symbol src/distributed.cpp "c10d::ProcessGroupGloo::ProcessGroupGloo" "Gloo process group (#ifdef DETR_WITH_GLOO)"
check_symbol src/tools/benchmark.cpp "CUDACachingAllocator" "peak GPU memory in detr_bench (#ifdef DETR_WITH_CUDA)"
check_symbol src/amp.cpp "at::autocast::set_autocast_enabled\(c10::DeviceType" "per-device autocast (LibTorch >= 2.4, any device)"
check_symbol detr_tests.dir/test_cuda.cpp "dist::ProcessGroup::init" "the Cuda.* tests, NCCL's included (compiled in every build)"

phase "what the executables link"
for exe in src/cli/detr_train src/cli/detr_bench tests/detr_tests; do
  in_root "$root1" "ldd /src/detr-cpp/build/$exe" >"$base/ldd.txt" 2>&1 || true
  for lib in libtorch_cuda libcudart libnccl libc10_cuda; do
    line=$(grep -m 1 -E "$lib\.so" "$base/ldd.txt" | sed 's/^[[:space:]]*//' || true)
    [ -n "$line" ] || verdict_fail "$exe does not link $lib"
    echo "$exe: $line"
  done
  missing=$(grep "not found" "$base/ldd.txt" | grep -v "libcudnn" | sed 's/^[[:space:]]*//' || true)
  [ -z "$missing" ] || verdict_fail "$exe: unresolved libraries besides cuDNN: $missing"
done
echo "only cuDNN is unresolved here (declined download): $(grep "not found" "$base/ldd.txt" | awk '{print $1}' | sort -u | tr '\n' ' ')"

if [ "$packaging" = 1 ]; then
  phase "root 2: CUDA runtime packages and installed tools only"
  root2="$base/runtime"
  new_root "$root2"
  install_tools "$root1" "$root2"
  in_root "$root2" "DETR_FLAVOUR=cuda DETR_CUDNN=skip /tmp/scripts/install_runtime_deps.sh" >"$base/runtime.log" 2>&1 \
    || { tail -n 30 "$base/runtime.log"; verdict_fail "install_runtime_deps.sh (cuda)"; }
  for exe in "$root2"/usr/local/bin/*; do
    name=$(basename "$exe")
    unresolved=$(in_root "$root2" "ldd /usr/local/bin/$name" | grep "not found" | grep -v libcudnn | sed 's/^[[:space:]]*//' || true)
    [ -z "$unresolved" ] || verdict_fail "runtime root: $name needs $unresolved"
  done
  echo "runtime root: $(ls "$root2/usr/local/bin" | wc -l) tools, every library resolved except cuDNN;" \
       "$(in_root "$root2" "dpkg-query -W -f='.\n' | wc -l") packages installed"
fi

phase "done"
verdict=1
echo "check_cuda_build: OK: every target built against $(in_root "$root1" "dpkg-query -W -f='\${Package} \${Version}' libtorch-cuda-dev")" \
     "with CUDA and NCCL, in $(( $(date +%s) - start_all )) s"
