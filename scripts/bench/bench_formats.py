#!/usr/bin/env python3
"""Times detr_train's dataset readers on one synthetic dataset written in all 8 CVAT dump formats.

    scripts/bench/bench_formats.py BUILD_DIR [--images N] [--work DIR] [--json FILE] [--repeat R]
                             [--formats coco,yolo,...] [--seed S] [--write_only]

Writes N images (64x32 greyscale JPEGs: hard links to one file per export) with 3-5 boxes each over 5
classes (seeded), and the same boxes as COCO 1.0, YOLO 1.1, Pascal VOC 1.1, MOT 1.1, TFRecord 1.0
(images embedded), LabelMe 3.0, CVAT for images 1.1 and Datumaro 1.0, laid out as CVAT exports a task
(subset "default"; YOLO's "train"). Per format it runs `BUILD_DIR/src/cli/detr_train --coco_path
EXPORT --dataset_format F --check_data --device cpu --val_split 0`, and again with auto (detection
included): best wall clock of R runs; checks the exit status, the detected format and the summary
(N images, every box, 5 classes). --check_data decodes every image and detr_train has no load-only
mode (without --check_data it trains), so decoding (and TFRecord's writing out of embedded images)
is in the figures; 'net img/s' leaves out the fixed cost (start-up: a run on a 1-image export).
--write_only only writes the exports (kept). Exits 1 when a check fails.
"""
import argparse
import functools
import json
import os
import pathlib
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

FORMATS = ["coco", "yolo", "voc", "mot", "tfrecord", "labelme", "cvat", "datumaro"]
LABELS = ["person", "car", "bicycle", "dog", "traffic light"]
W, H = 64, 32  # powers of two: boxes are exact in YOLO's %.6f and TFRecord's float32


def tiny_jpeg(width, height):
    """A valid baseline greyscale JPEG, mid-grey: each 8x8 block is 'DC difference 0, end of block',
    both coded by the one-bit Huffman code '0', so the scan is 2 bits a block (padded with 1s)."""
    def seg(marker, payload):
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    one_code = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1, for symbol 0
    bits = 2 * (-(-width // 8)) * (-(-height // 8))
    scan = bytes(bits // 8) + (bytes([0xFF >> (bits % 8)]) if bits % 8 else b"")
    return (b"\xff\xd8" + seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + seg(0xDB, b"\x00" + bytes([1] * 64))
            + seg(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
            + seg(0xC4, b"\x00" + one_code) + seg(0xC4, b"\x10" + one_code)
            + seg(0xDA, b"\x01\x01\x00\x00\x3f\x00") + scan + b"\xff\xd9")


def make_dataset(n, seed):
    """[(stem, [(label, x, y, w, h), ...])]: integer boxes of even size inside the image. The first
    image shows every label in order (LabelMe numbers labels by first appearance)."""
    rng = random.Random(seed)
    images = []
    for i in range(n):
        count = rng.randint(3, 5)
        labels = list(range(len(LABELS))) if i == 0 else [rng.randrange(len(LABELS)) for _ in range(count)]
        boxes = []
        for c in labels:
            w, h = 2 * rng.randint(2, 8), 2 * rng.randint(2, 6)
            boxes.append((c, rng.randint(0, W - w), rng.randint(0, H - h), w, h))
        images.append(("%06d" % (i + 1), boxes))
    return images


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def write_coco(root, images, place):  # annotations/instances_default.json + images/default/
    anns, imgs = [], []
    for i, (stem, boxes) in enumerate(images, 1):
        place(root / "images" / "default" / (stem + ".jpg"))
        imgs.append({"id": i, "width": W, "height": H, "file_name": stem + ".jpg", "license": 0,
                     "flickr_url": "", "coco_url": "", "date_captured": 0})
        anns += [{"id": len(anns) + k + 1, "image_id": i, "category_id": c + 1, "segmentation": [],
                  "area": float(w * h), "bbox": [x, y, w, h], "iscrowd": 0, "attributes": {"occluded": False}}
                 for k, (c, x, y, w, h) in enumerate(boxes)]
    cats = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(LABELS)]
    doc = {"licenses": [{"name": "", "id": 0, "url": ""}], "info": {"contributor": "", "date_created": "",
           "description": "", "url": "", "version": "", "year": ""}, "categories": cats, "images": imgs,
           "annotations": anns}
    write(root / "annotations" / "instances_default.json", json.dumps(doc))


def write_yolo(root, images, place):  # obj.data, obj.names, train.txt, obj_train_data/
    listing = []
    for stem, boxes in images:
        place(root / "obj_train_data" / (stem + ".jpg"))
        write(root / "obj_train_data" / (stem + ".txt"), "".join(
            "%d %.6f %.6f %.6f %.6f\n" % (c, (x + w / 2) / W, (y + h / 2) / H, w / W, h / H)
            for c, x, y, w, h in boxes))
        listing.append("data/obj_train_data/%s.jpg\n" % stem)
    write(root / "train.txt", "".join(listing))
    write(root / "obj.names", "".join(n + "\n" for n in LABELS))
    write(root / "obj.data", "classes = %d\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n"
          % len(LABELS))


def write_voc(root, images, place):  # labelmap.txt, Annotations/, JPEGImages/, ImageSets/Main/
    write(root / "labelmap.txt", "# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
          + "".join("%s:%d,%d,0::\n" % (n, 40 * i, 200 - 40 * i) for i, n in enumerate(LABELS)))
    for stem, boxes in images:
        place(root / "JPEGImages" / (stem + ".jpg"))
        objects = "".join(
            "  <object>\n    <name>%s</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n"
            "    <difficult>0</difficult>\n    <occluded>0</occluded>\n    <bndbox>\n      <xmin>%d</xmin>\n"
            "      <ymin>%d</ymin>\n      <xmax>%d</xmax>\n      <ymax>%d</ymax>\n    </bndbox>\n  </object>\n"
            % (xml_escape(LABELS[c]), x, y, x + w, y + h) for c, x, y, w, h in boxes)
        write(root / "Annotations" / (stem + ".xml"),
              "<annotation>\n  <folder></folder>\n  <filename>%s.jpg</filename>\n  <source>\n"
              "    <database>Unknown</database>\n    <annotation>Unknown</annotation>\n    <image>Unknown</image>\n"
              "  </source>\n  <size>\n    <width>%d</width>\n    <height>%d</height>\n    <depth></depth>\n"
              "  </size>\n  <segmented>0</segmented>\n%s</annotation>\n" % (stem, W, H, objects))
    main = root / "ImageSets" / "Main"
    write(main / "default.txt", "".join(stem + "\n" for stem, _ in images))
    for c, name in enumerate(LABELS):  # per-class lists, as CVAT writes them beside the subset list
        write(main / ("%s_default.txt" % name), "".join(
            "%s %2d\n" % (stem, 1 if any(b[0] == c for b in boxes) else -1) for stem, boxes in images))


def write_mot(root, images, place):  # gt/gt.txt, gt/labels.txt, img1/<frame>.jpg
    rows = []
    for frame, (stem, boxes) in enumerate(images, 1):
        place(root / "img1" / (stem + ".jpg"))
        rows += ["%d,-1,%d,%d,%d,%d,1,%d,1.0\r\n" % (frame, x, y, w, h, c + 1) for c, x, y, w, h in boxes]
    write(root / "gt" / "gt.txt", "".join(rows))
    write(root / "gt" / "labels.txt", "\n".join(LABELS))


# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord frames use it.
CRC_TABLE = [functools.reduce(lambda c, _: (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1, range(8), i)
             for i in range(256)]


def masked_crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(v):
    out = bytearray()
    while v > 0x7F:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    return bytes(out) + bytes([v])


def field(number, payload):  # a length-delimited protobuf field
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def tf_example(features):
    """tf.train.Example: Features.feature map entries (key 1, Feature 2); a Feature holds a BytesList
    (1), FloatList (2, packed) or Int64List (3, packed)."""
    def feature(kind, values):
        if kind == "bytes":
            return field(1, b"".join(field(1, v) for v in values))
        if kind == "floats":
            return field(2, field(1, struct.pack("<%df" % len(values), *values)))
        return field(3, field(1, b"".join(varint(v) for v in values)))
    return field(1, b"".join(field(1, field(1, k.encode()) + field(2, feature(*v))) for k, v in features))


def framed(record):
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", masked_crc32c(length)) + record + struct.pack("<I", masked_crc32c(record))


def write_tfrecord(root, images, jpeg):  # default.tfrecord (images embedded) + label_map.pbtxt
    write(root / "label_map.pbtxt", "".join("item {\n  id: %d\n  name: '%s'\n}\n\n" % (i + 1, n)
                                            for i, n in enumerate(LABELS)))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "default.tfrecord", "wb") as out:
        for stem, boxes in images:
            out.write(framed(tf_example([
                ("image/filename", ("bytes", [(stem + ".jpg").encode()])),
                ("image/source_id", ("bytes", [stem.encode()])),
                ("image/width", ("ints", [W])), ("image/height", ("ints", [H])),
                ("image/encoded", ("bytes", [jpeg])), ("image/format", ("bytes", [b"jpeg"])),
                ("image/object/bbox/xmin", ("floats", [x / W for _, x, _, _, _ in boxes])),
                ("image/object/bbox/xmax", ("floats", [(x + w) / W for _, x, _, w, _ in boxes])),
                ("image/object/bbox/ymin", ("floats", [y / H for _, _, y, _, _ in boxes])),
                ("image/object/bbox/ymax", ("floats", [(y + h) / H for _, _, y, _, h in boxes])),
                ("image/object/class/text", ("bytes", [LABELS[b[0]].encode() for b in boxes])),
                ("image/object/class/label", ("ints", [b[0] + 1 for b in boxes]))])))


def write_labelme(root, images, place):  # default/<name>.xml beside default/<name>.jpg
    for stem, boxes in images:
        place(root / "default" / (stem + ".jpg"))
        objects = "".join(
            "<object><name>%s</name><deleted>0</deleted><verified>0</verified><occluded>no</occluded><date></date>"
            "<id>%d</id><parts><hasparts></hasparts><ispartof></ispartof></parts><type>bounding_box</type><polygon>%s"
            "<username></username></polygon><attributes></attributes></object>"
            % (xml_escape(LABELS[c]), k, "".join("<pt><x>%.2f</x><y>%.2f</y></pt>" % p for p in
                                                  ((x, y), (x + w, y), (x + w, y + h), (x, y + h))))
            for k, (c, x, y, w, h) in enumerate(boxes))
        write(root / "default" / (stem + ".xml"),
              "<annotation><filename>%s.jpg</filename><folder></folder><source><sourceImage></sourceImage>"
              "<sourceAnnotation>Datumaro</sourceAnnotation></source><imagesize><nrows>%d</nrows><ncols>%d</ncols>"
              "</imagesize>%s</annotation>" % (stem, H, W, objects))


def write_cvat(root, images, place):  # annotations.xml (a task dump) + images/
    labels = "".join("<label><name>%s</name><color>#%02x8040</color><type>any</type><attributes></attributes>"
                     "</label>" % (xml_escape(n), 40 * i) for i, n in enumerate(LABELS))
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n  <meta>\n'
             "    <task><id>1</id><name>bench</name><size>%d</size><mode>annotation</mode><overlap>0</overlap>"
             "<labels>%s</labels></task>\n    <dumped>2024-01-01 00:00:00.000000+00:00</dumped>\n  </meta>\n"
             % (len(images), labels)]
    for i, (stem, boxes) in enumerate(images):
        place(root / "images" / (stem + ".jpg"))
        parts.append('  <image id="%d" name="%s.jpg" width="%d" height="%d">\n' % (i, stem, W, H))
        parts += ['    <box label="%s" source="manual" occluded="0" xtl="%.2f" ytl="%.2f" xbr="%.2f" ybr="%.2f" '
                  'z_order="0">\n    </box>\n' % (xml_escape(LABELS[c]), x, y, x + w, y + h)
                  for c, x, y, w, h in boxes]
        parts.append("  </image>\n")
    write(root / "annotations.xml", "".join(parts) + "</annotations>\n")


def write_datumaro(root, images, place):  # annotations/default.json + images/default/
    items = []
    for frame, (stem, boxes) in enumerate(images):
        place(root / "images" / "default" / (stem + ".jpg"))
        anns = [{"id": k, "type": "bbox", "attributes": {"occluded": False}, "group": 0, "label_id": c,
                 "z_order": 0, "bbox": [x, y, w, h]} for k, (c, x, y, w, h) in enumerate(boxes)]
        items.append({"id": stem, "annotations": anns, "attr": {"frame": frame},
                      "image": {"path": stem + ".jpg", "size": [H, W]}})
    labels = [{"name": n, "parent": "", "attributes": []} for n in LABELS]
    doc = {"info": {}, "categories": {"label": {"labels": labels, "attributes": ["occluded"]}}, "items": items}
    write(root / "annotations" / "default.json", json.dumps(doc))


WRITERS = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc, "mot": write_mot, "tfrecord": write_tfrecord,
           "labelme": write_labelme, "cvat": write_cvat, "datumaro": write_datumaro}
SUMMARY = re.compile(r"^(train|val): .*: (\d+) images \(\d+ without boxes\), (\d+) boxes, (\d+) classes", re.M)


def write_exports(work, formats, images):
    jpeg = tiny_jpeg(W, H)
    for f in formats:
        master, root = work / "master" / (f + ".jpg"), work / f  # one image file (inode) per export
        shutil.rmtree(root, ignore_errors=True)
        if f != "tfrecord":
            write(master, jpeg)

        def place(dst):
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(master, dst)
            except OSError:  # no hard links here, or too many to one file
                shutil.copyfile(master, dst)
        t = time.perf_counter()
        WRITERS[f](root, images, jpeg if f == "tfrecord" else place)
        print("wrote %-9s %s (%.1f s)" % (f, root, time.perf_counter() - t), flush=True)


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
    if not found or got != (n, boxes, {len(LABELS)}):
        raise RuntimeError("%s: summary says %s images, %s boxes, %s classes; wrote %d, %d, %d\n%s"
                           % (fmt, got[0], got[1], sorted(got[2]), n, boxes, len(LABELS), p.stdout[-2000:]))
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
    if a.images < 1 or a.repeat < 1 or any(f not in WRITERS for f in formats):
        ap.error("--images and --repeat must be positive; --formats among " + ",".join(FORMATS))
    train = a.build_dir / "src" / "cli" / "detr_train"
    if not a.write_only and not os.access(train, os.X_OK):
        ap.error("%s: not found (build detr_train first)" % train)
    work = a.work or pathlib.Path(tempfile.mkdtemp(prefix="bench_formats_"))
    images = make_dataset(a.images, a.seed)
    n, boxes = len(images), sum(len(b) for _, b in images)
    print("%d images, %d boxes, %d classes, in %s" % (n, boxes, len(LABELS), work), flush=True)
    try:
        write_exports(work, formats, images)
        if a.write_only:
            return 0
        write_exports(work / "one", ["coco"], images[:1])  # for the fixed cost: a 1-image export
        try:
            fixed = measure(train, work / "one" / "coco", "coco", "coco", a.repeat, 1, len(images[0][1]))
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
            write(a.json, json.dumps({"command": "detr_train --check_data --device cpu --val_split 0",
                                      "decodes_images": True, "repeat": a.repeat, "image_size": [W, H],
                                      "classes": len(LABELS), "fixed_seconds": fixed, "results": results},
                                     indent=2) + "\n")
        return 1 if any("error" in r for r in results) else 0
    finally:
        if a.work is None and not a.write_only:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
