#!/usr/bin/env bash
# Set-up + build + the main job on data that needs no download.
# Today: detr_parity on upstream's golden fixtures (../shared/fixtures beside the checkout, or $DETR_FIXTURES):
# the full model, matcher, losses and gradients against upstream DETR, every deviation printed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DETR_BUILD_DIR:-$root/build}
"$root/scripts/build.sh"
fixtures=${DETR_FIXTURES:-$root/../shared/fixtures}
"$build/detr_parity" "$fixtures/detr/tiny_r18" "$fixtures/detr/r50_default"
