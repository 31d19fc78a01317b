#!/usr/bin/env bash
# The user's view, proved: a minimal Debian root (debootstrap --variant=minbase) holding nothing but a
# clone of this checkout's HEAD runs the README's two commands there, as a new user would:
#   1. scripts/test.sh   - installs, builds, runs the suite with nothing beside the checkout
#   2. scripts/demo.sh   - trains on generated demo data and draws its predictions
#   3. with --fixtures DIR: DIR (the larger optional golden data, e.g. ../shared/fixtures, and the real
#      exports beside it) bind-mounted read-only beside the checkout; the tests that read it run on
#      the same build (ctest -R 'Fixtures|fixtures')
#   4. with --packaging: a second minimal root with only the runtime packages
#      (scripts/setup/install_runtime_deps.sh) and the installed tools (scripts/setup/install_bin.sh), as the
#      container images are made: detr_train --help and a short training run there.
# Must run as root (debootstrap, chroot, mounts). Needs network access to Debian's package archive.
#
# usage: scripts/ci/clean_root_check.sh [--suite bookworm|trixie] [--fixtures DIR] [--packaging]
#                                    [--skip-demo] [--workdir DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
suite=bookworm fixtures="" packaging=0 demo=1 workdir=${TMPDIR:-/var/tmp}
while [ $# -gt 0 ]; do
  case $1 in
    --suite) suite=$2; shift 2 ;;
    --fixtures) fixtures=$(cd "$2" && pwd); shift 2 ;;
    --packaging) packaging=1; shift ;;
    --skip-demo) demo=0; shift ;;
    --workdir) workdir=$2; shift 2 ;;
    *) echo "clean_root_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "clean_root_check: must run as root (debootstrap, chroot)" >&2; exit 2; }

components=main
# shellcheck source=scripts/ci/clean_root_lib.sh
source "$repo/scripts/ci/clean_root_lib.sh"

phase "root 1: only a clone of the checkout"
root1="$base/root"
new_root "$root1"
clone_into "$root1" "$repo"

phase "README command 2 of 2: scripts/test.sh"
start=$(date +%s)
in_root "$root1" "cd /src/detr-cpp && scripts/test.sh"
echo "scripts/test.sh took $(( $(date +%s) - start )) s"

if [ "$demo" = 1 ]; then
  phase "README command 1 of 2: scripts/demo.sh"
  start=$(date +%s)
  in_root "$root1" "cd /src/detr-cpp && scripts/demo.sh"
  echo "scripts/demo.sh took $(( $(date +%s) - start )) s (the build already done)"
fi

if [ -n "$fixtures" ]; then
  phase "the optional golden data ($fixtures) beside the checkout, same build"
  # Where the build looks for it: ../shared/fixtures, and the real exports in ../shared/data.
  mkdir -p "$root1/src/shared/fixtures"
  mount --bind -o ro "$fixtures" "$root1/src/shared/fixtures"
  if [ -d "$fixtures/../data" ]; then
    mkdir -p "$root1/src/shared/data"
    mount --bind -o ro "$fixtures/../data" "$root1/src/shared/data"
  fi
  in_root "$root1" "cd /src/detr-cpp/build && ctest --output-on-failure --timeout 900 -R 'Fixtures|fixtures|TorchSave'" \
    | tee "$base/fixtures.log"
  # Present, the optional data must be read: a skip here means a test did not find it.
  if grep -q "Skipped" "$base/fixtures.log"; then
    echo "clean_root_check: optional-fixture tests skipped although $fixtures is present" >&2
    exit 1
  fi
fi

if [ "$packaging" = 1 ]; then
  phase "root 2: runtime packages and installed tools only"
  root2="$base/runtime"
  new_root "$root2"
  install_tools "$root1" "$root2"
  in_root "$root2" "/tmp/scripts/install_runtime_deps.sh >/dev/null && \
    ! ldd /usr/local/bin/detr_train | grep 'not found' && detr_train --help >/dev/null && \
    detr_make_dataset --out /tmp/d --images 8 --width 96 --height 64 >/dev/null && \
    detr_train --coco_path /tmp/d --output_dir /tmp/o --device cpu --epochs 1 --batch_size 2 --backbone resnet18 \
      --hidden_dim 32 --nheads 2 --enc_layers 1 --dec_layers 1 --dim_feedforward 64 --num_queries 5 \
      --scales 64 --max_size 96 --val_size 64 --backbone_weights none >/tmp/train.log && \
    test -s /tmp/o/checkpoint.pth && echo 'packaging: runtime packages and installed tools OK'"
fi
phase "done"
