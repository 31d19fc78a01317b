#!/usr/bin/env bash
# Installs everything detr-cpp needs to build and test on Debian 12 (bookworm) or newer.
# Idempotent: packages already present are skipped by apt.
set -euo pipefail

# DETR_WITH_TORCH=0: a LibTorch comes from elsewhere (a CUDA PyTorch wheel, via CMAKE_PREFIX_PATH).
TORCH_PACKAGES=(
  libtorch-dev            # LibTorch (CPU) + its CMake config
  libgloo-dev             # c10d's Gloo headers, missing from libtorch-dev
  libopenblas0-openmp     # optimised BLAS; the reference BLAS is ~50x slower
  libdnnl-dev             # oneDNN (LibTorch's own CPU convolutions): Winograd kernels for 3x3 convolutions
  ocl-icd-opencl-dev      # OpenCL headers + loader: oneDNN's CMake config requires them (only "Recommends")
)
[ "${DETR_WITH_TORCH:-1}" = 0 ] && TORCH_PACKAGES=()
PACKAGES=(
  build-essential cmake ninja-build pkg-config
  "${TORCH_PACKAGES[@]}"
  libopencv-dev           # image decode / draw
  nlohmann-json3-dev      # JSON
  libcxxopts-dev          # command line
  libcurl4-openssl-dev    # pretrained-weight downloads
  libgoogle-perftools-dev # tcmalloc: faster, leaner allocation than glibc's for LibTorch on CPU
  libgtest-dev            # tests
  python3-pil python3-numpy python3-yaml  # tests only: resize fidelity, workflow template
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "detr-cpp: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Make OpenBLAS (OpenMP build) the provider of libblas.so.3 that LibTorch links.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
alt="/usr/lib/${arch}/openblas-openmp/libblas.so.3"
if [ -e "$alt" ]; then
  $SUDO update-alternatives --set "libblas.so.3-${arch}" "$alt" >/dev/null 2>&1 || true
fi
