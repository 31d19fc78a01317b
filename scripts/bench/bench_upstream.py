#!/usr/bin/python3
"""Upstream DETR's training step, timed the way detr_bench times ours, on the CPU or a GPU.

The reference half of a side-by-side with `detr_bench` (and `detr_bench --masks` with --masks): facebookresearch/detr (a checkout at
$DETR_REPO, default /tmp/detr; pycocotools built in $COCOAPI_REPO/PythonAPI, default /tmp/cocoapi —
see tests/reference/README.md) trains its DETR (DETRsegm with --masks) model, built as its main.py builds it,
on the same kind of generated data, and the script reports s/step, images/s, peak RSS and, on a GPU,
the peak GPU memory PyTorch's caching allocator handed out (detr_bench's figure).

    python3 scripts/bench/bench_upstream.py BUILD_DIR [--config small|small_r50|default] [--masks]
        [--device cpu|cuda] [--images N] [--width 640] [--height 480] [--warmup 1] [--steps 2] [--repeats 3]
        [--threads 2] [--num_workers 2] [--json FILE]

What matches detr_bench (src/tools/benchmark.cpp) and what does not:
- Data: BUILD_DIR/src/cli/detr_make_dataset writes the synthetic CVAT-style export that detr_bench
  writes (datasets/synthetic.cpp: 640x480 by default, 3 classes, seed 0, CVAT quirks: an image without
  boxes, a crowd region). With --masks: its objects have "segmentation": [], which upstream's ConvertCocoPolysToMask
  cannot read, so a copy of the annotation file gets each such object's box as its polygon
  [[x, y, x+w, y, x+w, y+h, x, y+h]] — the mask detr_bench trains on (the box). By default there are as
  many images as detr_bench generates: batch * (warmup + steps * repeats), at least 2 batches.
- Loading: upstream's datasets/coco.py CocoDetection(..., make_coco_transforms('train'),
  return_masks=True) — the multi-scale train augmentation — through a torch DataLoader as in main.py
  (RandomSampler, BatchSampler with drop_last, util.misc.collate_fn, --num_workers worker processes),
  seeded. detr_bench's loader uses threads: its RSS includes the loader, this process's does not, so
  the largest worker's peak RSS is reported beside it (forked workers: that figure also counts the
  pages they share with this process, so it overstates what they add; an epoch's new workers fork
  from a process that already holds the model).
- Model: upstream's models.build_model(args) with main.py's defaults and masks=True, backbone
  resnet50, lr_backbone 1e-5 (layers 2-4 trained), aux_loss, the default matcher costs and loss
  coefficients, dataset_file 'coco', --device. Two departures, both the same in detr_bench: the
  backbone starts from random weights (no ImageNet download), and num_classes is the data's largest
  category id + 1 (upstream's build() fixes it at 91 for 'coco'; the class head and the criterion are
  rebuilt for the data's; --num_classes 91 keeps upstream's).
- Optimiser and step: AdamW with main.py's two parameter groups (lr 1e-4, backbone 1e-5, weight decay
  1e-4), and the body of engine.train_one_epoch: criterion, the weight_dict sum, the loss value on the
  host, zero_grad, backward, clip_grad_norm_ (0.1), step.
- Timing: --warmup steps unmeasured, then --repeats repetitions of --steps steps; s/step is the median
  over the measured steps (data wait included), images/s the median of the repetitions' rates. Phases
  as detr_bench splits a step: data_wait, host_to_device, forward, matcher, loss (the criterion less the
  matcher), backward (loss value on the host, zero_grad, backward), optimizer (clip and step). On a
  GPU each phase ends with torch.cuda.synchronize(), as detr_bench's phases end on CUDA.

Configurations (--config):
  small_r50  R50, hidden_dim 128, 8 heads, 2+2 layers, dim_feedforward 512, 20 queries (the default
             here; a third name beside detr_bench's default and small, which is ResNet-18)
  small      R18, hidden_dim 128, 4 heads, 2+2 layers, dim_feedforward 512, 20 queries (detr_bench's)
  default    upstream's main.py: R50, hidden_dim 256, 8 heads, 6+6 layers, dim_feedforward 2048,
             100 queries
Upstream's mask head hard-codes ResNet-50's FPN widths, so detr_bench's "small" (ResNet-18) has no
upstream counterpart with --masks; without masks, --config small is detr_bench's small (ResNet-18).
"""
import argparse
import json
import math
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "reference"))
import common  # noqa: E402  (tests/reference/common.py: the reference checkouts)

CONFIGS = {
    "small_r50": dict(backbone="resnet50", hidden_dim=128, nheads=8, enc_layers=2, dec_layers=2,
                      dim_feedforward=512, num_queries=20),
    "small": dict(backbone="resnet18", hidden_dim=128, nheads=4, enc_layers=2, dec_layers=2,
                  dim_feedforward=512, num_queries=20),
    "default": dict(backbone="resnet50", hidden_dim=256, nheads=8, enc_layers=6, dec_layers=6,
                    dim_feedforward=2048, num_queries=100),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description="Times upstream DETR's training step on generated CVAT-style "
                                "data, as detr_bench times ours.")
    p.add_argument("build_dir", type=Path, help="this project's build directory (src/cli/detr_make_dataset)")
    p.add_argument("--config", default="small_r50", choices=sorted(CONFIGS))
    p.add_argument("--masks", action="store_true", help="upstream's DETRsegm (main.py --masks)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch_size", type=int, default=2)
    p.add_argument("--images", type=int, default=0,
                   help="images to generate (0: as detr_bench, batch * (warmup + steps * repeats), at least 2 batches)")
    p.add_argument("--width", type=int, default=640, help="generated image width")
    p.add_argument("--height", type=int, default=480, help="generated image height")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps first")
    p.add_argument("--steps", type=int, default=2, help="measured steps per repetition")
    p.add_argument("--repeats", type=int, default=3, help="repetitions (medians reported)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--num_workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--num_classes", type=int, default=0,
                   help="0: the data's largest category id + 1 (as detr_bench); 91: upstream's build() for coco")
    p.add_argument("--seed", type=int, default=0, help="data generation and torch/numpy/random seeds")
    p.add_argument("--data_dir", type=Path, help="keep the generated data here (default: a temporary folder, removed)")
    p.add_argument("--profile", type=int, default=0,
                   help="> 0: the measured steps under torch.autograd.profiler, this many ops by self time "
                        "(as detr_bench --profile)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    a = p.parse_args(argv)
    if min(a.batch_size, a.steps, a.repeats) < 1 or min(a.warmup, a.num_workers, a.images, a.num_classes) < 0 \
            or a.threads < 1 or a.width < 32 or a.height < 32:
        p.error("--batch_size, --steps, --repeats and --threads must be positive, --warmup, --num_workers, "
                "--images and --num_classes >= 0, images at least 32x32")
    if a.masks and CONFIGS[a.config]["backbone"] != "resnet50":
        p.error("--masks needs a ResNet-50 configuration (upstream's mask head has its FPN widths)")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: this PyTorch sees no GPU")
    return a


# --- data -------------------------------------------------------------------------------------------

def make_data(a, root: Path):
    """Generates the export with detr_make_dataset; returns (image folder, annotation file for upstream)."""
    tool = a.build_dir / "src" / "cli" / "detr_make_dataset"
    if not tool.is_file():
        sys.exit(f"{tool}: not found (build the project first)")
    needed = a.batch_size * (a.warmup + a.steps * a.repeats)
    images = a.images or max(needed, 2 * a.batch_size)
    subprocess.run([str(tool), "--out", str(root), "--images", str(images), "--width", str(a.width),
                    "--height", str(a.height), "--classes", "3", "--seed", str(a.seed)],
                   check=True, stdout=subprocess.DEVNULL)
    ann = json.loads((root / "annotations" / "instances_default.json").read_text())
    for obj in ann["annotations"] if a.masks else []:
        if obj.get("segmentation") == []:  # a box drawn in CVAT: its mask is the box
            x, y, w, h = obj["bbox"]
            obj["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    upstream_ann = root / "annotations" / "instances_upstream_masks.json"
    upstream_ann.write_text(json.dumps(ann))
    max_id = max(c["id"] for c in ann["categories"])
    return root / "images", upstream_ann, max_id, images


def make_loader(a, img_folder, ann_file):
    """main.py's training loader: RandomSampler, BatchSampler(drop_last=True), utils.collate_fn."""
    import util.misc as utils
    from datasets.coco import CocoDetection, make_coco_transforms
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    with common.quiet():  # pycocotools' loading messages
        ds = CocoDetection(img_folder, ann_file, transforms=make_coco_transforms("train"), return_masks=a.masks)
    batches = BatchSampler(RandomSampler(ds), a.batch_size, drop_last=True)
    return DataLoader(ds, batch_sampler=batches, collate_fn=utils.collate_fn, num_workers=a.num_workers)


# --- model ------------------------------------------------------------------------------------------

def model_args(a, config):
    """main.py's argument defaults, with this configuration, --masks and --device."""
    return argparse.Namespace(
        lr=1e-4, lr_backbone=1e-5, batch_size=a.batch_size, weight_decay=1e-4, clip_max_norm=0.1,
        frozen_weights=None, dilation=False, position_embedding="sine", dropout=0.1, pre_norm=False,
        masks=a.masks, aux_loss=True, set_cost_class=1, set_cost_bbox=5, set_cost_giou=2,
        mask_loss_coef=1, dice_loss_coef=1, bbox_loss_coef=5, giou_loss_coef=2, eos_coef=0.1,
        dataset_file="coco", device=a.device, **config)


class TimedMatcher(torch.nn.Module):
    """The criterion's matcher, its time summed into `seconds` (detr_bench's matcher phase)."""

    def __init__(self, matcher):
        super().__init__()
        self.matcher = matcher
        self.seconds = 0.0

    def forward(self, outputs, targets):
        t0 = time.perf_counter()
        r = self.matcher(outputs, targets)
        self.seconds += time.perf_counter() - t0
        return r


def build(args, num_classes):
    """(model, criterion, optimizer) as main.py builds them."""
    import models.backbone
    from models import build_model
    from models.detr import SetCriterion

    models.backbone.is_main_process = lambda: False  # random backbone weights: no ImageNet download
    # torchvision >= 0.13 deprecates the pretrained= that upstream's Backbone passes
    warnings.filterwarnings("ignore", category=UserWarning, module="torchvision.models._utils")
    model, criterion, _ = build_model(args)
    if num_classes != criterion.num_classes:  # build() fixes 91 for coco; the data's classes instead
        (model.detr if args.masks else model).class_embed = torch.nn.Linear(args.hidden_dim, num_classes + 1)
        criterion = SetCriterion(num_classes, matcher=criterion.matcher, weight_dict=criterion.weight_dict,
                                 eos_coef=args.eos_coef, losses=criterion.losses)
    criterion.matcher = TimedMatcher(criterion.matcher)
    model.to(args.device)
    criterion.to(args.device)
    param_dicts = [
        {"params": [p for n, p in model.named_parameters() if "backbone" not in n and p.requires_grad]},
        {"params": [p for n, p in model.named_parameters() if "backbone" in n and p.requires_grad],
         "lr": args.lr_backbone},
    ]
    optimizer = torch.optim.AdamW(param_dicts, lr=args.lr, weight_decay=args.weight_decay)
    return model, criterion, optimizer


def train_step(model, criterion, optimizer, samples, targets, args, phases):
    """engine.train_one_epoch's loop body (single process), its phases added to `phases`."""
    t = time.perf_counter()

    cuda = args.device == "cuda"

    def mark(name):
        nonlocal t
        if cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        phases[name] += now - t
        t = now

    device = torch.device(args.device)
    samples = samples.to(device)
    targets = [{k: v.to(device) for k, v in tgt.items()} for tgt in targets]
    mark("host_to_device")
    outputs = model(samples)
    mark("forward")
    matcher_before = criterion.matcher.seconds
    loss_dict = criterion(outputs, targets)
    weight_dict = criterion.weight_dict
    losses = sum(loss_dict[k] * weight_dict[k] for k in loss_dict.keys() if k in weight_dict)
    mark("loss")
    matched = criterion.matcher.seconds - matcher_before
    phases["matcher"] += matched
    phases["loss"] -= matched
    loss_value = sum(v * weight_dict[k] for k, v in loss_dict.items() if k in weight_dict).item()
    if not math.isfinite(loss_value):
        sys.exit(f"Loss is {loss_value}, stopping training")
    optimizer.zero_grad()
    losses.backward()
    mark("backward")
    if args.clip_max_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_max_norm)
    optimizer.step()
    mark("optimizer")
    return loss_value


# --- measurement ------------------------------------------------------------------------------------

PHASES = ["data_wait", "host_to_device", "forward", "matcher", "loss", "backward", "optimizer"]


def measure(a, model, criterion, optimizer, loader, args):
    model.train()
    criterion.train()
    it = iter(loader)
    ips, step_s = [], []
    per_phase = {k: [] for k in PHASES}
    prof = None
    for r in range(-1, a.repeats):  # r = -1: warm-up
        n = a.warmup if r < 0 else a.steps
        if r == 0 and a.profile > 0:
            prof = torch.autograd.profiler.profile()
            prof.__enter__()
        t_rep = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                samples, targets = next(it)
            except StopIteration:  # a new epoch, as detr_bench's loader starts one
                it = iter(loader)
                samples, targets = next(it)
            phases = dict.fromkeys(PHASES, 0.0)
            phases["data_wait"] = time.perf_counter() - t0
            train_step(model, criterion, optimizer, samples, targets, args, phases)
            if r < 0:
                continue
            step_s.append(time.perf_counter() - t0)
            for k, v in phases.items():
                per_phase[k].append(v)
        if r < 0:
            continue
        ips.append(n * a.batch_size / (time.perf_counter() - t_rep))
        print(f"train repetition {r + 1}/{a.repeats}: {ips[-1]:.3f} images/s", file=sys.stderr)
    del it  # ends the worker processes, so that their peak RSS is counted below
    result = {"images_per_s": statistics.median(ips), "s_per_step": statistics.median(step_s),
              "images_per_s_runs": ips,
              "phase_s_per_step": {k: statistics.median(v) for k, v in per_phase.items()}}
    if prof is not None:
        prof.__exit__(None, None, None)
        result["op_profile"] = op_profile(prof, a.profile, step_s)
    return result


def op_profile(prof, top, step_s):
    """detr_bench's op_profile: self seconds per step by op name, largest first, and the rest."""
    n = max(len(step_s), 1)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    rows = [{"op": e.key, "self_s": e.self_cpu_time_total / 1e6 / n, "total_s": e.cpu_time_total / 1e6 / n,
             "calls": e.count / n} for e in ops]
    return {"steps": len(step_s), "s_per_step": sum(step_s) / n, "ops": rows[:top],
            "other_ops_self_s": sum(r["self_s"] for r in rows[top:])}


def format_op_profile(p):
    lines = [f"  ops by self time (torch.autograd.profiler; {p['steps']} steps, {p['s_per_step']:.3f} s/step with "
             f"the profiler on):", "    self s/step  share  calls/step  total s/step  op"]
    share = lambda t: 100 * t / max(p["s_per_step"], 1e-12)  # noqa: E731
    for o in p["ops"]:
        lines.append(f"    {o['self_s']:11.3f}  {share(o['self_s']):4.1f}%  {o['calls']:10.1f}  {o['total_s']:12.3f}  "
                     f"{o['op']}")
    lines.append(f"    {p['other_ops_self_s']:11.3f}  {share(p['other_ops_self_s']):4.1f}%  the other ops")
    return "\n".join(lines)


def peak_rss_gb(who):
    return resource.getrusage(who).ru_maxrss / (1024.0 * 1024.0)  # kB -> GB


def describe(a, train, images, num_classes):
    return {
        "implementation": "facebookresearch/detr", "config": a.config, "masks": a.masks,
        "model": CONFIGS[a.config], "num_classes": num_classes, "batch_size": a.batch_size, "device": a.device,
        "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
        "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if a.device == "cuda" else 0.0,
        "threads": torch.get_num_threads(), "num_workers": a.num_workers, "images": images,
        "image_size": f"{a.width}x{a.height}", "warmup_steps": a.warmup, "steps": a.steps,
        "repeats": a.repeats, "torch": torch.__version__, "train": train,
        "peak_rss_gb": peak_rss_gb(resource.RUSAGE_SELF),
        "peak_rss_workers_gb": peak_rss_gb(resource.RUSAGE_CHILDREN),  # the largest finished child
    }


def format_line(r):
    t = r["train"]
    phases = " ".join(f"{k} {v:.3f}" for k, v in t["phase_s_per_step"].items())
    gpu = f", peak GPU memory {r['peak_gpu_gb']:.2f} GB ({r['gpu']})" if r["gpu"] else ""
    return (f"upstream DETR config {r['config']}{' + masks' if r['masks'] else ''}, batch {r['batch_size']}, {r['image_size']} images, "
            f"device {r['device']}, {r['threads']} threads, torch {r['torch']}\n"
            f"train: {t['images_per_s']:.3f} images/s, {t['s_per_step']:.3f} s/step (median); "
            f"per phase (s/step): {phases}\n"
            f"peak RSS {r['peak_rss_gb']:.2f} GB (a loader worker: {r['peak_rss_workers_gb']:.2f} GB at most, "
            f"pages shared with this process included){gpu}"
            + ("\n" + format_op_profile(t["op_profile"]) if "op_profile" in t else ""))


def main(argv):
    a = parse_args(argv)
    common.import_pycocotools()  # before upstream's datasets, which imports pycocotools.mask
    common.add_detr_to_path()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    random.seed(a.seed)

    root = a.data_dir or Path(tempfile.mkdtemp(prefix="bench_upstream_"))
    try:
        img_folder, ann_file, max_id, images = make_data(a, root)
        num_classes = a.num_classes or max_id + 1
        args = model_args(a, CONFIGS[a.config])
        model, criterion, optimizer = build(args, num_classes)
        loader = make_loader(a, img_folder, ann_file)
        train = measure(a, model, criterion, optimizer, loader, args)
        del loader
    finally:
        if a.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    result = describe(a, train, images, num_classes)
    print(format_line(result))
    print(json.dumps(result))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
