#!/usr/bin/env bash
# Prepares, on a Debian 12 machine with apt, what a GPU machine that has only CUDA, a PyTorch wheel
# (its LibTorch) and CMake lacks to build detr-cpp: a minimal static OpenCV (core, imgproc,
# imgcodecs with JPEG and PNG) built from Debian's OpenCV source package, and nlohmann-json, cxxopts,
# pugixml (its headers and shared library), GoogleTest and protobuf (protoc and the runtime) unpacked from Debian's packages; with DETR_REPO and COCOAPI_REPO (checkouts of
# facebookresearch/detr and cocodataset/cocoapi), their sources for the upstream comparison. Everything lands in .device/ (ignored by git;
# about 30 MB); take that folder to the GPU machine beside the checkout and run
# scripts/dev/device_run.sh there.
#
#   scripts/dev/device_bundle.sh            # builds .device/ (about 4 minutes on 2 cores)
#   DETR_DEVICE_DIR=/elsewhere scripts/dev/device_bundle.sh
#
# The bundle is built with the new C++ ABI (_GLIBCXX_USE_CXX11_ABI=1), which PyTorch wheels use since
# 2.7; device_run.sh refuses a wheel with the old ABI.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${DETR_DEVICE_DIR:-$root/.device}
jobs=${DETR_JOBS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SUDO=""
[ "$(id -u)" != 0 ] && SUDO="sudo"

# Build tools and the static codec libraries OpenCV's imgcodecs links.
need=(build-essential cmake ninja-build dpkg-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

rm -rf "$out"
mkdir -p "$out/prefix" "$out/opencv"

# 1. Header-only and test dependencies, pugixml, and protobuf (protoc, which runs from the bundle with
# its own shared libraries, and the static runtime the programs link), unpacked from Debian's packages
# (not installed).
(cd "$work" && apt-get download nlohmann-json3-dev libcxxopts-dev libpugixml-dev libpugixml1v5 libgtest-dev \
  protobuf-compiler libprotoc32 libprotobuf32 libprotobuf-dev >/dev/null)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$out/prefix"; done
rm -rf "$out/prefix/usr/share/doc" "$out/prefix/usr/src"

# 2. OpenCV from Debian's source package (its orig tarball: upstream's sources less non-free parts).
# deb-src lines are added for this call only, through a private apt state.
src_state="$work/apt"
mkdir -p "$src_state/lists/partial"
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
cat >"$src_state/src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_src=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$src_state" -o "Dir::State::Lists=$src_state/lists")
apt-get "${apt_src[@]}" update -qq
(cd "$work" && apt-get "${apt_src[@]}" source --download-only opencv >/dev/null)
tar -C "$work" -xJf "$work"/opencv_*.orig.tar.xz
ocv_src=$(find "$work" -maxdepth 1 -type d -name 'opencv-*' | head -n 1)

libdir=/usr/lib/$arch
off=()
for f in TIFF WEBP OPENJPEG JASPER OPENEXR GDAL GDCM IMGCODEC_HDR IMGCODEC_SUNRASTER IMGCODEC_PXM IMGCODEC_PFM \
         FFMPEG GSTREAMER V4L GTK QT OPENGL VTK OPENCL IPP ITT EIGEN LAPACK PROTOBUF CAROTENE TBB 1394 VA VA_INTEL \
         QUIRC ADE OPENVX CUDA; do
  off+=("-DWITH_$f=OFF")
done
cmake -S "$ocv_src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$out/opencv" \
  -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_LIST=core,imgproc,imgcodecs \
  -DWITH_JPEG=ON -DWITH_PNG=ON -DBUILD_JPEG=OFF -DBUILD_PNG=OFF -DBUILD_ZLIB=OFF \
  -DJPEG_LIBRARY="$libdir/libjpeg.a" -DPNG_LIBRARY="$libdir/libpng16.a" -DZLIB_LIBRARY="$libdir/libz.a" \
  -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_DOCS=OFF -DBUILD_opencv_apps=OFF \
  -DBUILD_JAVA=OFF -DBUILD_opencv_python2=OFF -DBUILD_opencv_python3=OFF -DOPENCV_PYTHON_SKIP_DETECTION=ON \
  -DOPENCV_GENERATE_PKGCONFIG=OFF -DCV_TRACE=OFF \
  "${off[@]}" >"$work/opencv-configure.log" || { tail -n 30 "$work/opencv-configure.log" >&2; exit 1; }
cmake --build "$work/build" --parallel "$jobs" >"$work/opencv-build.log" || { tail -n 30 "$work/opencv-build.log" >&2; exit 1; }
cmake --install "$work/build" >/dev/null

# The static codec libraries travel with OpenCV; its CMake files name them relative to the bundle.
mkdir -p "$out/opencv/lib/codecs"
cp "$libdir/libjpeg.a" "$libdir/libpng16.a" "$libdir/libz.a" "$out/opencv/lib/codecs/"
find "$out/opencv/lib/cmake" -name '*.cmake' -exec sed -i \
  -e "s#$libdir/libjpeg.a#\${CMAKE_CURRENT_LIST_DIR}/../../codecs/libjpeg.a#g" \
  -e "s#$libdir/libpng16.a#\${CMAKE_CURRENT_LIST_DIR}/../../codecs/libpng16.a#g" \
  -e "s#$libdir/libz.a#\${CMAKE_CURRENT_LIST_DIR}/../../codecs/libz.a#g" {} +
if grep -rl "$libdir" "$out/opencv/lib/cmake" >/dev/null; then
  echo "device_bundle: OpenCV's CMake files still name $libdir:" >&2
  grep -rn "$libdir" "$out/opencv/lib/cmake" >&2
  exit 1
fi
rm -rf "$out/opencv/share" "$out/opencv/bin"
# The reference checkouts for device_run.sh's upstream stage, when given (tests/reference/README.md
# says how to get them): their source files only, not built here.
for ref in "DETR_REPO:detr" "COCOAPI_REPO:cocoapi"; do
  var=${ref%%:*} name=${ref##*:}
  if [ -n "${!var:-}" ] && [ -d "${!var}" ]; then
    mkdir -p "$out/$name"
    (cd "${!var}" && find . -path ./.git -prune -o -type f \( -name '*.py' -o -name '*.c' -o -name '*.h' -o -name '*.pyx' \) -print0 \
      | tar --null -cf - -T -) | tar -xf - -C "$out/$name"
  else
    echo "device_bundle: no $var checkout given: device_run.sh will skip the upstream comparison" >&2
  fi
done
echo "$arch" >"$out/multiarch"  # where GTest's CMake files are (lib/<multiarch>/cmake)
gcc -dumpversion | cut -d. -f1 >"$out/gcc-major"  # its static libraries need this libstdc++ or newer
echo "device_bundle: wrote $out ($(du -sh "$out" | cut -f1)); carry it and run scripts/dev/device_run.sh there"
