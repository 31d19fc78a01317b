#!/usr/bin/env python3
"""Times detr_train's dataset readers on one synthetic dataset written in every format they read.

    scripts/bench/bench_formats.py BUILD_DIR [--images N] [--work DIR] [--json FILE] [--repeat R]
                             [--formats coco,yolo,...] [--seed S] [--write_only]

Writes N images (64x32 JPEGs) with up to 5 objects each over 5 classes (seeded) with
`BUILD_DIR/src/cli/detr_make_dataset --format F` (its --no_quirks sample: subset "default"; YOLO's
"train"), in COCO 1.0, YOLO 1.1, Pascal VOC 1.1, MOT 1.1, TFRecord 1.0 (images embedded), LabelMe 3.0,
CVAT for images 1.1, Datumaro 1.0, Ultralytics YOLO, KITTI 1.0, Open Images V6 (as CVAT exports a task) and CreateML
(as Roboflow lays it out). Per format it runs
`BUILD_DIR/src/cli/detr_train --coco_path EXPORT --dataset_format F --check_data --device cpu
--val_split 0`, and again with auto (detection included): best wall clock of R runs; checks the exit
status, the detected format and the summary (N images, every box of the COCO export, 5 classes).
--check_data decodes every image and detr_train has no load-only mode (without --check_data it trains),
so decoding (and TFRecord's writing out of embedded images) is in the figures; 'net img/s' leaves out
the fixed cost (start-up: a run on a 1-image export). --write_only only writes the exports (kept).
Exits 1 when a check fails.
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

FORMATS = ["coco", "yolo", "voc", "mot", "tfrecord", "labelme", "cvat", "datumaro", "ultralytics", "kitti", "createml", "open_images"]
CLASSES, W, H = 5, 64, 32
SUMMARY = re.compile(r"^(train|val): .*: (\d+) images \(\d+ without boxes\), (\d+) boxes, (\d+) classes", re.M)


def make_dataset(build_dir, root, fmt, n, seed):
    """detr_make_dataset's sample of n images as `fmt` in root (replaced)."""
    shutil.rmtree(root, ignore_errors=True)
    cmd = [str(build_dir / "src" / "cli" / "detr_make_dataset"), "--out", str(root), "--format", fmt,
           "--images", str(n), "--width", str(W), "--height", str(H), "--classes", str(CLASSES),
           "--max_objects", "5", "--no_quirks", "--seed", str(seed)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise RuntimeError("exit status %d: %s\n%s" % (p.returncode, " ".join(cmd), p.stdout[-2000:]))


def coco_boxes(root):
    """The boxes of a COCO export written by make_dataset (crowd regions left out)."""
    doc = json.loads((root / "annotations" / "instances_default.json").read_text())
    return sum(1 for a in doc["annotations"] if not a.get("iscrowd"))


def write_exports(build_dir, work, formats, n, seed):
    for f in formats:
        t = time.perf_counter()
        make_dataset(build_dir, work / f, f, n, seed)
        print("wrote %-9s %s (%.1f s)" % (f, work / f, time.perf_counter() - t), flush=True)


def measure(train, root, fmt, expected, repeat, n, boxes):
    """Best wall-clock seconds of `repeat` runs; raises RuntimeError when a run fails or its summary
    does not report n images, `boxes` boxes and every label (or, for auto, detects another format)."""
    cmd = [str(train), "--coco_path", str(root), "--dataset_format", fmt, "--check_data", "--device", "cpu",
           "--val_split", "0"]
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        best = min(best, time.perf_counter() - t)
        if p.returncode != 0:
            raise RuntimeError("exit status %d: %s\n%s" % (p.returncode, " ".join(cmd), p.stdout[-2000:]))
    found = SUMMARY.findall(p.stdout)  # train (and val, were there one): images, boxes, classes
    got = (sum(int(m[1]) for m in found), sum(int(m[2]) for m in found), {int(m[3]) for m in found})
    if not found or got != (n, boxes, {CLASSES}):
        raise RuntimeError("%s: summary says %s images, %s boxes, %s classes; wrote %d, %d, %d\n%s"
                           % (fmt, got[0], got[1], sorted(got[2]), n, boxes, CLASSES, p.stdout[-2000:]))
    if fmt == "auto" and not re.search(r"^dataset format: %s \(" % expected, p.stdout, re.M):
        raise RuntimeError("auto: did not detect %s\n%s" % (expected, p.stdout[-2000:]))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build_dir", type=pathlib.Path)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--work", type=pathlib.Path, help="folder for the exports (kept; default: a temp dir)")
    ap.add_argument("--json", type=pathlib.Path, help="write the figures here")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing; the best counts")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write_only", action="store_true", help="write the exports and exit")
    a = ap.parse_args()
    formats = [f for f in a.formats.split(",") if f]
    if a.images < 1 or a.repeat < 1 or any(f not in FORMATS for f in formats):
        ap.error("--images and --repeat must be positive; --formats among " + ",".join(FORMATS))
    train = a.build_dir / "src" / "cli" / "detr_train"
    if not a.write_only and not os.access(train, os.X_OK):
        ap.error("%s: not found (build detr_train first)" % train)
    if not os.access(a.build_dir / "src" / "cli" / "detr_make_dataset", os.X_OK):
        ap.error("%s: not found (build detr_make_dataset first)" % (a.build_dir / "src" / "cli" / "detr_make_dataset"))
    work = a.work or pathlib.Path(tempfile.mkdtemp(prefix="bench_formats_"))
    try:
        write_exports(a.build_dir, work, formats, a.images, a.seed)
        make_dataset(a.build_dir, work / "reference", "coco", a.images, a.seed)  # the boxes every export holds
        n, boxes = a.images, coco_boxes(work / "reference")
        print("%d images, %d boxes, %d classes, in %s" % (n, boxes, CLASSES, work), flush=True)
        if a.write_only:
            return 0
        make_dataset(a.build_dir, work / "one" / "coco", "coco", 1, a.seed)  # for the fixed cost: a 1-image export
        try:
            fixed = measure(train, work / "one" / "coco", "coco", "coco", a.repeat, 1, coco_boxes(work / "one" / "coco"))
        except RuntimeError as e:
            print("FAILED on a 1-image COCO export: %s" % e)
            return 1
        print("\ndetr_train --check_data --device cpu --val_split 0: reads the annotations and decodes every "
              "image\n(detr_train has no load-only mode); best of %d wall-clock runs, process start-up included; "
              "'auto s': --dataset_format auto" % a.repeat)
        print("fixed cost (start-up, a 1-image COCO export): %.3f s; 'net img/s' leaves it out" % fixed)
        print("%-9s %8s %8s %9s %9s %10s %10s" % ("format", "images", "boxes", "seconds", "auto s", "images/s",
                                               "net img/s"))
        results = []
        for f in formats:
            row = {"format": f, "images": n, "boxes": boxes}
            try:
                row["seconds"] = measure(train, work / f, f, f, a.repeat, n, boxes)
                row["auto_seconds"] = measure(train, work / f, "auto", f, a.repeat, n, boxes)
                row["images_per_s"] = n / row["seconds"]
                net = row["seconds"] - fixed  # None: within the noise of the fixed cost
                row["net_images_per_s"] = n / net if net > 0.05 * fixed else None
                print("%-9s %8d %8d %9.3f %9.3f %10.0f %10s" % (
                    f, n, boxes, row["seconds"], row["auto_seconds"], row["images_per_s"],
                    "%.0f" % row["net_images_per_s"] if row["net_images_per_s"] else "-"), flush=True)
            except RuntimeError as e:
                row["error"] = str(e)
                print("%-9s FAILED: %s" % (f, e), flush=True)
            results.append(row)
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps({"command": "detr_train --check_data --device cpu --val_split 0",
                                      "decodes_images": True, "repeat": a.repeat, "image_size": [W, H],
                                      "classes": CLASSES, "fixed_seconds": fixed, "results": results},
                                     indent=2) + "\n")
        return 1 if any("error" in r for r in results) else 0
    finally:
        if a.work is None and not a.write_only:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
