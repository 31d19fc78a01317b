#!/usr/bin/env bash
# Set-up + build + the whole test suite (ctest). The command CI runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DETR_BUILD_DIR:-$root/build}
"$root/scripts/setup/build.sh"
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
