#!/usr/bin/env bash
# The shared libraries detr-cpp's executables need at run time (Debian packages), for slim runtime
# images: LibTorch, OpenCV's core/imgproc/imgcodecs, OpenBLAS (made the system BLAS), OpenMP, tcmalloc,
# pugixml, protobuf.
# DETR_FLAVOUR=cuda: Debian's CUDA LibTorch runtime (Debian 13+, contrib and non-free), which brings
# the CUDA libraries, NCCL and nvidia-cudnn (cuDNN's installer; DETR_CUDNN=skip declines its download,
# as in scripts/setup/install_deps.sh). DETR_WITH_TORCH=0 leaves LibTorch out (an image that brings its own).
set -euo pipefail
flavour=${DETR_FLAVOUR:-cpu}
SUDO=""
[ "$(id -u)" != 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
[ -n "$(apt-cache pkgnames libopencv-core 2>/dev/null)" ] || $SUDO apt-get update -qq
# OpenCV's runtime packages carry the version in their names (libopencv-core406 on Debian 12,
# libopencv-core406t64 on Ubuntu 24.04): take the newest this distribution has.
curl=$(apt-cache pkgnames libcurl4 | grep -E '^libcurl4(t64)?$' | sort | tail -n 1 || true)  # Ubuntu 24.04: libcurl4t64
tcmalloc=$(apt-cache pkgnames libtcmalloc-minimal4 | grep -E '^libtcmalloc-minimal4(t64)?$' | sort | tail -n 1 || true)
# pugixml's runtime package carries its ABI in the name (libpugixml1v5 on Debian 12 and 13).
pugixml=$(apt-cache pkgnames libpugixml | grep -E '^libpugixml[0-9][0-9a-z.]*$' | sort -V | tail -n 1 || true)
# The protobuf runtime: libprotobuf32 on Debian 12, libprotobuf32t64 on Debian 13 (the full library, not
# libprotobuf-lite: see proto/CMakeLists.txt).
protobuf=$(apt-cache pkgnames libprotobuf | grep -E '^libprotobuf[0-9]+(t64)?$' | sort -V | tail -n 1 || true)
[ -n "$protobuf" ] || { echo "install_runtime_deps: no libprotobuf runtime package found" >&2; exit 1; }
packages=(libgomp1 "${curl:-libcurl4}" "${tcmalloc:-libtcmalloc-minimal4}" "${pugixml:-libpugixml1v5}" "$protobuf")
for lib in core imgproc imgcodecs; do
  name=$(apt-cache pkgnames "libopencv-$lib" | grep -E "^libopencv-$lib[0-9][0-9a-z.]*$" | sort -V | tail -n 1 || true)
  [ -n "$name" ] || { echo "install_runtime_deps: no libopencv-$lib runtime package found" >&2; exit 1; }
  packages+=("$name")
done
if [ "${DETR_WITH_TORCH:-1}" != 0 ]; then
  pattern='^libtorch[0-9][0-9.]*$'
  [ "$flavour" = cuda ] && pattern='^libtorch-cuda-[0-9][0-9.]*$'
  torch=$(apt-cache pkgnames libtorch | grep -E "$pattern" | sort -V | tail -n 1 || true)
  [ -n "$torch" ] || { echo "install_runtime_deps: no LibTorch runtime package matches $pattern here" \
    "(DETR_FLAVOUR=cuda needs Debian 13+ with contrib and non-free)" >&2; exit 1; }
  packages+=("$torch" libopenblas0-openmp)
fi
if [ "$flavour" = cuda ] && [ "${DETR_CUDNN:-download}" = skip ]; then
  echo "nvidia-cudnn nvidia-cudnn/question select I Decline" | $SUDO debconf-set-selections
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
alt="/usr/lib/${arch}/openblas-openmp/libblas.so.3"
[ -e "$alt" ] && { $SUDO update-alternatives --set "libblas.so.3-${arch}" "$alt" >/dev/null 2>&1 || true; }
exit 0
