#!/usr/bin/env bash
# What --amp bf16 does to training on the CPU: the demo's training (scripts/demo.sh: the same data,
# model and flags) for EPOCHS epochs in float32 with two seeds (their difference is the run-to-run
# noise) and in bf16 with the first seed; prints, per run, the mean training loss of each epoch, the
# validation AP / AP50 at each evaluation and the seconds per epoch.
#
#   scripts/bench/amp_accuracy.sh BUILD_DIR [EPOCHS=6] [WORK_DIR=/tmp/detr_amp_accuracy]
set -euo pipefail
build=${1:?usage: amp_accuracy.sh BUILD_DIR [EPOCHS] [WORK_DIR]}
epochs=${2:-6}
work=${3:-/tmp/detr_amp_accuracy}
rm -rf "$work"
data=(--width 96 --height 72 --classes 3 --max_objects 2 --no_overlap)
"$build/src/cli/detr_make_dataset" --out "$work/dataset" --subset Train --seed 0 --images 1000 "${data[@]}" >/dev/null
"$build/src/cli/detr_make_dataset" --out "$work/dataset" --subset Validation --seed 1 --images 100 "${data[@]}" >/dev/null
run() {  # name amp seed
  "$build/src/cli/detr_train" --coco_path "$work/dataset" --output_dir "$work/$1" --amp "$2" --seed "$3" \
    --device cpu --epochs "$epochs" --lr_drop 14 --batch_size 8 --lr 1e-4 --lr_backbone 0 \
    --backbone resnet18 --hidden_dim 256 --nheads 8 --enc_layers 2 --dec_layers 2 --dim_feedforward 512 \
    --dropout 0 --num_queries 5 --eos_coef 0.5 --scales 72 --max_size 96 --val_size 72 --eval_every 3 \
    --print_freq 1000 --backbone_weights none >/dev/null 2>&1
  python3 - "$work/$1/log.txt" "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
loss = " ".join(f"{r['train_loss']:.3f}" for r in rows)
ap = " ".join(f"e{r['epoch'] + 1}: {r['test_coco_eval_bbox'][0]:.3f}/{r['test_coco_eval_bbox'][1]:.3f}"
              for r in rows if r.get("test_coco_eval_bbox"))
secs = [r["epoch_time_s"] for r in rows if "epoch_time_s" in r]
print(f"{sys.argv[2]:12s} train loss per epoch: {loss}")
print(f"{'':12s} validation AP/AP50: {ap}" + (f"; {sum(secs) / len(secs):.1f} s/epoch" if secs else ""))
PY
}
run fp32_seed42 off 42
run fp32_seed7 off 7
if ! "$build/src/cli/detr_train" --coco_path "$work/dataset" --output_dir "$work/bf16_check" --amp bf16 \
  --device cpu --check_data >/dev/null 2>"$work/bf16_check.err"; then
  echo "bf16: $(tail -n 1 "$work/bf16_check.err")"
  exit 0
fi
run bf16_seed42 bf16 42
