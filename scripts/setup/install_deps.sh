#!/usr/bin/env bash
# Installs everything detr-cpp needs to build and test, from Debian's packages. Idempotent: packages
# already present are skipped.
#
#   scripts/setup/install_deps.sh                     # CPU flavour: Debian 12 (bookworm) or newer
#   DETR_FLAVOUR=cuda scripts/setup/install_deps.sh   # CUDA flavour: Debian 13 (trixie) or newer with the
#                                               # contrib and non-free components in its apt sources
#
# CUDA flavour: Debian's CUDA LibTorch (libtorch-cuda-dev), the CUDA toolkit (nvcc, which LibTorch's
# CMake config needs) and NCCL. cuDNN comes from nvidia-cudnn, an installer that downloads it from
# NVIDIA when the package is configured. DETR_CUDNN=skip declines that download (a machine without
# network, such as CI): everything else installs, the build links without cuDNN, and the programs run
# once cuDNN 9 is installed (`dpkg-reconfigure nvidia-cudnn` on a machine with network).
#
# DETR_WITH_TORCH=0: a LibTorch comes from elsewhere (a CUDA PyTorch wheel, via CMAKE_PREFIX_PATH).
set -euo pipefail
flavour=${DETR_FLAVOUR:-cpu}
say() { echo "install_deps: $*" >&2; }

case $flavour in
  cpu)
    TORCH_PACKAGES=(
      libtorch-dev          # LibTorch (CPU) + its CMake config
      libgloo-dev           # c10d's Gloo headers, missing from libtorch-dev
      libdnnl-dev           # oneDNN (LibTorch's own CPU convolutions): Winograd kernels for 3x3 convolutions
      ocl-icd-opencl-dev    # OpenCL headers + loader: oneDNN's CMake config requires them (only "Recommends")
    ) ;;
  cuda)
    TORCH_PACKAGES=(
      libtorch-cuda-dev     # LibTorch built with CUDA 12 + its CMake config (contrib)
      nvidia-cuda-toolkit   # nvcc and the CUDA headers LibTorch's CMake config looks for (non-free)
      libnccl-dev           # NCCL: c10d's GPU data-parallel backend (non-free)
      libgloo-cuda-dev      # c10d's Gloo headers, built with CUDA (contrib)
    ) ;;
  *) say "DETR_FLAVOUR must be cpu or cuda, not '$flavour'"; exit 2 ;;
esac
TORCH_PACKAGES+=(libopenblas0-openmp)  # optimised BLAS; the reference BLAS is ~50x slower
[ "${DETR_WITH_TORCH:-1}" = 0 ] && TORCH_PACKAGES=()
PACKAGES=(
  build-essential cmake ninja-build pkg-config
  "${TORCH_PACKAGES[@]}"
  libopencv-dev           # image decode / draw
  nlohmann-json3-dev      # JSON
  libcxxopts-dev          # command line
  libpugixml-dev          # XML (VOC, LabelMe, CVAT annotations)
  protobuf-compiler       # protoc: generates the TensorBoard event and tf.Example message code
  libprotobuf-dev         # the protobuf runtime those messages link
  libcurl4-openssl-dev    # pretrained-weight downloads (optional: CMake builds without it)
  libgoogle-perftools-dev # tcmalloc: faster, leaner allocation than glibc's for LibTorch on CPU
  libgtest-dev            # tests
  python3-pil python3-numpy python3-yaml  # tests only: resize fidelity, workflow template
)
# The source format check (scripts/ci/check_format.sh) needs clang-format 14, Debian 12's; elsewhere it is skipped.
if grep -qs '^VERSION_CODENAME=bookworm' /etc/os-release; then PACKAGES+=(clang-format-14); fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  if [ "$flavour" = cuda ]; then
    if [ -z "$(apt-cache pkgnames libtorch-cuda-dev)" ]; then
      say "libtorch-cuda-dev is not in this system's apt sources: DETR_FLAVOUR=cuda needs Debian 13 or newer" \
          "with the contrib and non-free components (e.g. 'Components: main contrib non-free' in" \
          "/etc/apt/sources.list.d/debian.sources)"
      exit 1
    fi
    if [ "${DETR_CUDNN:-download}" = skip ]; then
      say "DETR_CUDNN=skip: cuDNN's download declined; the programs need cuDNN 9 installed to run"
      echo "nvidia-cudnn nvidia-cudnn/question select I Decline" | $SUDO debconf-set-selections
    fi
  fi
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    if [ "$flavour" = cuda ] && dpkg-query -W -f='${Status}' nvidia-cudnn 2>/dev/null | grep -qE "half-configured|unpacked"; then
      say "nvidia-cudnn could not download cuDNN from NVIDIA (no network?); to build without it, run" \
          "again with DETR_CUDNN=skip after: echo 'nvidia-cudnn nvidia-cudnn/question select I Decline'" \
          "| debconf-set-selections && dpkg --configure -a"
    fi
    exit 1
  fi
fi

# Make OpenBLAS (OpenMP build) the provider of libblas.so.3 that LibTorch links.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
alt="/usr/lib/${arch}/openblas-openmp/libblas.so.3"
if [ -e "$alt" ]; then
  $SUDO update-alternatives --set "libblas.so.3-${arch}" "$alt" >/dev/null 2>&1 || true
fi
