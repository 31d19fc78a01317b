#!/usr/bin/env bash
# Copies the built executables to PREFIX/bin (default /usr/local): what a container image ships.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DETR_BUILD_DIR:-$root/build}
prefix=${1:-/usr/local}
mkdir -p "$prefix/bin"
for tool in detr_train detr_predict detr_eval detr_inspect detr_parity detr_bench detr_make_dataset; do
  install -m 0755 "$build/src/cli/$tool" "$prefix/bin/$tool"
done
echo "installed detr-cpp tools in $prefix/bin"
