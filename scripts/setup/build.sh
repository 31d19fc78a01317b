#!/usr/bin/env bash
# Installs the dependencies (Debian packages) and builds detr-cpp into build/ (or $DETR_BUILD_DIR).
# Extra arguments go to CMake's configure step, e.g. -DCMAKE_PREFIX_PATH=/path/to/libtorch.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DETR_BUILD_DIR:-$root/build}

if [ "${DETR_SKIP_INSTALL:-0}" != 1 ]; then
  "$root/scripts/setup/install_deps.sh"
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ $# -gt 0 ]; then
  cmake "$build" "$@"
fi
cmake --build "$build" --parallel "${DETR_JOBS:-$(nproc)}"
