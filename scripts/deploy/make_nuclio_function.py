#!/usr/bin/env python3
"""Writes a nuclio function.yaml for CVAT auto-annotation from a training run's classes.csv.

usage: scripts/deploy/make_nuclio_function.py CLASSES_CSV OUT_DIR [--name NAME] [--image IMAGE] [--masks [--polygons]]
OUT_DIR receives function.yaml and main.py; put the model (best.pth, or checkpoint.pth) beside them as
model/checkpoint.pth. --masks: a segmentation model (trained with --masks), whose labels CVAT gets as
mask labels (or polygon labels with --polygons, for CVAT versions before mask shapes).
"""
import argparse
import csv
import json
import os
import shutil


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("classes_csv")
    ap.add_argument("out_dir")
    ap.add_argument("--name", default="detr-cpp")
    ap.add_argument("--image", default="detr-cpp:cpu", help="an image with detr_predict on its PATH")
    ap.add_argument("--masks", action="store_true", help="a segmentation model: mask shapes")
    ap.add_argument("--polygons", action="store_true", help="with --masks: polygons instead of mask shapes")
    a = ap.parse_args()
    with open(a.classes_csv, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["labels", "id"]:
        raise SystemExit(f"{a.classes_csv}: expected the header 'labels,id'")
    shape = ("polygon" if a.polygons else "mask") if a.masks else "rectangle"
    spec = [{"id": int(r[1]), "name": r[0], "type": shape} for r in rows[1:] if len(r) == 2]
    os.makedirs(a.out_dir, exist_ok=True)
    # YAML is a superset of JSON: the spec annotation is the JSON text CVAT parses.
    yaml = f"""metadata:
  name: {a.name}
  namespace: cvat
  annotations:
    name: DETR (detr-cpp)
    type: detector
    framework: pytorch
    spec: |
      {json.dumps(spec)}
spec:
  description: DETR trained with detr-cpp
  runtime: 'python:3.9'
  handler: main:handler
  eventTimeout: 60s
  env:
    - name: DETR_MODEL
      value: /opt/nuclio/model/checkpoint.pth
    - name: DETR_SHAPES
      value: {"polygon" if a.polygons else "mask"}
  build:
    image: cvat.{a.name}
    baseImage: {a.image}
    directives:
      preCopy:
        - kind: WORKDIR
          value: /opt/nuclio
  triggers:
    myHttpTrigger:
      maxWorkers: 1
      kind: 'http'
      workerAvailabilityTimeoutMilliseconds: 10000
      attributes:
        maxRequestBodySize: 33554432
  platform:
    attributes:
      restartPolicy:
        name: always
        maximumRetryCount: 3
      mountMode: volume
"""
    with open(os.path.join(a.out_dir, "function.yaml"), "w") as f:
        f.write(yaml)
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "nuclio", "main.py"),
                os.path.join(a.out_dir, "main.py"))
    print(f"wrote {a.out_dir}/function.yaml ({len(spec)} labels) and main.py")


if __name__ == "__main__":
    main()
