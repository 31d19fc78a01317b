#!/usr/bin/env bash
# Set-up + build + the main job on embedded demo data: generates a small synthetic CVAT export with a
# Train and a Validation subset (annotations/instances_<subset>.json + images/<subset>/), trains a small
# DETR on it on the CPU for a few minutes, draws its detections on the validation images and leaves
# every workflow output in demo_output/ (or $DETR_DEMO_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DETR_BUILD_DIR:-$root/build}
demo=${DETR_DEMO_DIR:-$root/demo_output}
"$root/scripts/setup/build.sh"

rm -rf "$demo"
# Easy data, so that DETR visibly learns in minutes: 96x72 images, 3 coloured shapes (box, ellipse,
# triangle), 1-2 objects apart from each other; the CVAT quirks (id gaps, an empty image, a crowd
# region) stay in. Different seeds: the validation images are not training images.
data=(--width 96 --height 72 --classes 3 --max_objects 2 --no_overlap)
"$build/src/cli/detr_make_dataset" --out "$demo/dataset" --subset Train --seed 0 --images 1000 "${data[@]}"
"$build/src/cli/detr_make_dataset" --out "$demo/dataset" --subset Validation --seed 1 --images 100 "${data[@]}"
# A small DETR (ResNet-18, 2+2 transformer layers of width 256, 5 queries) at the images' own size.
# Without ImageNet weights the ResNet stays frozen at its random initialisation (--lr_backbone 0: its
# random features are enough here, and skipping its backward pass makes an epoch ~3x faster); the
# transformer and heads learn. 18 epochs of 1000 images (~15 s each on 2 cores), the learning rate
# / 10 for the last 4; with 5 queries for at most 2 objects, "no object" weighs 0.5 (upstream: 0.1
# for 100 queries), which keeps duplicate detections down.
"$build/src/cli/detr_train" --coco_path "$demo/dataset" --output_dir "$demo/output" \
  --device cpu --epochs "${DETR_DEMO_EPOCHS:-18}" --lr_drop 14 --batch_size 8 --lr 1e-4 --lr_backbone 0 \
  --backbone resnet18 --hidden_dim 256 --nheads 8 --enc_layers 2 --dec_layers 2 --dim_feedforward 512 \
  --dropout 0 --num_queries 5 --eos_coef 0.5 --scales 72 --max_size 96 --val_size 72 --eval_every 3 \
  --print_freq 25 \
  --backbone_weights none  # no network here: random weights (a real run downloads ImageNet ones)

# Detections (score >= 0.5) of the last epoch's model on the validation images: drawn, and as COCO
# results JSON.
"$build/src/cli/detr_predict" --checkpoint "$demo/output/checkpoint.pth" \
  --input "$demo/dataset/images/Validation" --draw "$demo/output/predictions" \
  --output "$demo/output/predictions.json" --device cpu

echo
echo "Validation (images the model never trained on), last epoch: $(grep -o '"test_coco_eval_bbox":\[[^]]*' \
  "$demo/output/log.txt" | tail -n 1 | awk -F'[[,]' '{printf "AP %.3f, AP50 %.3f", $2, $3}')"
echo "Its detections, drawn on the validation images: $demo/output/predictions/ ($(find "$demo/output/predictions" -type f | wc -l) images)"
echo
echo "Demo outputs (what the Onepanel workflow would upload from /mnt/output):"
ls -l "$demo/output"
