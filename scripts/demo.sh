#!/usr/bin/env bash
# Set-up + build + the main job on embedded demo data: generates a small synthetic CVAT export
# (images/ + annotations/instances_default.json) and trains a small DETR on it on the CPU for a few
# minutes, leaving every workflow output in demo_output/ (or $DETR_DEMO_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DETR_BUILD_DIR:-$root/build}
demo=${DETR_DEMO_DIR:-$root/demo_output}
"$root/scripts/build.sh"

rm -rf "$demo"
"$build/src/cli/detr_make_dataset" --out "$demo/dataset" --images 48 --width 160 --height 120
"$build/src/cli/detr_train" --coco_path "$demo/dataset" --output_dir "$demo/output" \
  --device cpu --epochs "${DETR_DEMO_EPOCHS:-12}" --batch_size 4 --lr 2e-4 --lr_drop 10 \
  --backbone resnet18 --hidden_dim 64 --nheads 4 --enc_layers 2 --dec_layers 2 --dim_feedforward 128 \
  --num_queries 20 --scales 128,144,160 --max_size 256 --val_size 160 --print_freq 5 \
  --backbone_weights none  # no network here: random weights (a real run downloads ImageNet ones)

echo
echo "Demo outputs (what the Onepanel workflow would upload from /mnt/output):"
ls -l "$demo/output"
echo "log.txt, last epoch:"
tail -n 1 "$demo/output/log.txt" | cut -c1-300
