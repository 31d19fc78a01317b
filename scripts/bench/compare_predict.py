#!/usr/bin/python3
"""Inference per image, detr_predict against upstream DETR, side by side in one sitting.

    scripts/bench/compare_predict.py BUILD_DIR CHECKPOINT [--images 9] [--width 640] [--height 480]
        [--rounds 2] [--threads 2] [--amp off|bf16] [--json FILE]   (--images default 13)

CHECKPOINT is an upstream DETR state dict (e.g. the fixtures' r50_default/model.pth): both sides load
the same weights. BUILD_DIR/src/cli/detr_make_dataset writes --images generated images; then, per round:

- ours: BUILD_DIR/src/cli/detr_predict on the first image alone and on all of them (two processes,
  their order alternating from round to round, after one untimed run that warms the page cache);
  the marginal time per image is (t_all - t_one) / (images - 1), which leaves out process start-up and
  the model load; the model load is the one-image run less that marginal time.
- upstream: this script's python3-torch (its start-up, from the spawn to torch and upstream's modules
  imported, timed separately) builds upstream's model (models.build_model with main.py's
  defaults, the checkpoint's class count), loads the weights (timed: the model load), then per image
  PIL decode, upstream's val transform (T.RandomResize([800], max_size=1333), ToTensor, Normalize),
  the forward at batch 1 and PostProcess to the original size, under torch.no_grad(); the first image
  is a warm-up, the marginal time per image the mean over the others.

Both run --threads intra-op threads, float32 unless --amp bf16 (ours: detr_predict --amp bf16; upstream
has no autocast in its code, so it stays float32 and the ratio then compares against float32 upstream).
The OpenBLAS kernels: upstream gets OPENBLAS_CORETYPE set to the kernels detr-cpp selected (see
compare_upstream.py), so both use the same BLAS.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def parse_args(argv):
    p = argparse.ArgumentParser(description="detr_predict against upstream DETR inference, per image.")
    p.add_argument("build_dir", type=Path)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--images", type=int, default=13)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", default="off", choices=["off", "bf16"])
    p.add_argument("--json", type=Path)
    p.add_argument("--upstream_worker", nargs=2, metavar=("LIST", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--spawned_at", type=float, default=0.0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def ours(a, lists):
    tool = a.build_dir / "src" / "cli" / "detr_predict"
    times = {}
    for name, lst in lists.items():
        t0 = time.perf_counter()
        r = subprocess.run([str(tool), "--checkpoint", str(a.checkpoint), "--input", str(lst), "--output",
                            str(lst) + ".json", "--num_threads", str(a.threads), "--device", "cpu", "--amp", a.amp],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times[name] = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"compare_predict: detr_predict failed: {r.stderr[-1000:]}")
    return times


def blas_kernels(a):
    """The OpenBLAS kernels detr-cpp's executables select on this machine (detr_bench's report)."""
    out = subprocess.run([str(a.build_dir / "src" / "cli" / "detr_bench"), "--mode", "data", "--steps", "1",
                          "--repeats", "1", "--warmup", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    m = re.search(r'"blas_kernels":"([^"]*)"', out)
    return m.group(1) if m else ""


def upstream_worker(a, lst, result_file):
    """Runs in the python3-torch interpreter: upstream's model, load and per-image times."""
    import torch
    from PIL import Image
    sys.path.insert(0, str(REPO_ROOT / "tests" / "reference"))
    import common
    common.import_pycocotools()
    common.add_detr_to_path()
    import datasets.transforms as T
    import models.backbone
    from models import build_model
    from models.detr import PostProcess
    torch.set_num_threads(a.threads)
    models.backbone.is_main_process = lambda: False
    start_s = time.time() - a.spawned_at  # Python, torch and upstream's modules imported
    t0 = time.perf_counter()
    state = torch.load(str(a.checkpoint), map_location="cpu")
    state = state.get("model", state)
    num_classes = state["class_embed.weight"].shape[0] - 1
    args = argparse.Namespace(
        lr=1e-4, lr_backbone=1e-5, batch_size=1, weight_decay=1e-4, clip_max_norm=0.1, frozen_weights=None,
        dilation=False, position_embedding="sine", dropout=0.1, pre_norm=False, masks=False, aux_loss=True,
        set_cost_class=1, set_cost_bbox=5, set_cost_giou=2, mask_loss_coef=1, dice_loss_coef=1, bbox_loss_coef=5,
        giou_loss_coef=2, eos_coef=0.1, dataset_file="coco", device="cpu", backbone="resnet50", hidden_dim=256,
        nheads=8, enc_layers=6, dec_layers=6, dim_feedforward=2048, num_queries=state["query_embed.weight"].shape[0],
        num_classes=num_classes)
    model, _, _ = build_model(args)
    model.class_embed = torch.nn.Linear(256, num_classes + 1)
    model.load_state_dict(state)
    model.eval()
    load_s = time.perf_counter() - t0
    transform = T.Compose([T.RandomResize([800], max_size=1333), T.Compose([T.ToTensor(), T.Normalize(
        [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])])
    post = PostProcess()
    per_image = []
    with torch.no_grad():
        for path in Path(lst).read_text().split():
            t = time.perf_counter()
            img = Image.open(path).convert("RGB")
            x, _ = transform(img, None)
            outputs = model(x.unsqueeze(0))
            post(outputs, torch.tensor([[img.height, img.width]]))
            per_image.append(time.perf_counter() - t)
    Path(result_file).write_text(json.dumps({"start_s": start_s, "load_s": load_s, "per_image_s": per_image}))


def upstream(a, lst, kernels):
    env = dict(os.environ)
    if kernels:
        env["OPENBLAS_CORETYPE"] = kernels
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "u.json"
        r = subprocess.run([PYTHON, __file__, str(a.build_dir), str(a.checkpoint), "--threads", str(a.threads),
                            "--upstream_worker", str(lst), str(out), "--spawned_at", repr(time.time())],
                           env=env, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"compare_predict: upstream failed: {r.stderr[-2000:]}")
        return json.loads(out.read_text())


def main(argv):
    a = parse_args(argv)
    if a.upstream_worker:
        return upstream_worker(a, *a.upstream_worker)
    kernels = blas_kernels(a)
    rows = {"ours_per_image_s": [], "ours_load_s": [], "upstream_per_image_s": [], "upstream_load_s": [],
            "upstream_start_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([str(a.build_dir / "src" / "cli" / "detr_make_dataset"), "--out", str(data), "--images",
                        str(a.images), "--width", str(a.width), "--height", str(a.height)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        images = sorted(str(p) for p in (data / "images").rglob("*.jpg"))[:a.images]
        lists = {"one": Path(tmp) / "one.txt", "all": Path(tmp) / "all.txt"}
        lists["one"].write_text(images[0] + "\n")
        lists["all"].write_text("\n".join(images) + "\n")
        n = len(images)
        ours(a, {"one": lists["one"]})  # untimed: the checkpoint and libraries into the page cache
        for i in range(a.rounds):
            t = ours(a, dict(reversed(lists.items())) if i % 2 else lists)  # alternate which runs first
            marginal = (t["all"] - t["one"]) / (n - 1)
            rows["ours_per_image_s"].append(marginal)
            rows["ours_load_s"].append(t["one"] - marginal)
            u = upstream(a, lists["all"], kernels)
            rows["upstream_per_image_s"].append(statistics.mean(u["per_image_s"][1:]))
            rows["upstream_load_s"].append(u["load_s"])
            rows["upstream_start_s"].append(u["start_s"])
            print(f"round {i + 1}: ours {marginal:.3f} s/image (process start + model load {t['one'] - marginal:.2f} s), "
                  f"upstream {rows['upstream_per_image_s'][-1]:.3f} s/image (Python start and imports "
                  f"{u['start_s']:.2f} s + model load {u['load_s']:.2f} s)", flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    speedup = med["upstream_per_image_s"] / med["ours_per_image_s"]
    print(f"{n} images {a.width}x{a.height} (resized to 800 on the short side), batch 1, {a.threads} threads, "
          f"ours --amp {a.amp}, OpenBLAS kernels {kernels or '?'} on both sides")
    print(f"median per image: ours {med['ours_per_image_s']:.3f} s, upstream {med['upstream_per_image_s']:.3f} s "
          f"-> {speedup:.2f}x faster")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "medians": med, "speedup": speedup, "amp": a.amp,
                                      "blas_kernels": kernels}, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
