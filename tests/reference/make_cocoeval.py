"""Golden cases for the COCO evaluator, scored by pycocotools' COCOeval (cocodataset/cocoapi).

bbox (iouType='bbox'): writes cocoeval/case_NN/{gt.json, dt.json, expected.json} (format:
tests/reference/README.md, "cocoeval/"): COCO ground truth, a COCO results list, and COCOeval's 12 `stats`
plus `per_category_ap` (AP@[.5:.95], area all, maxDets 100; -1 for a category without ground truth). Each
case stresses one part of COCOeval: perfect detections, no detections, crowd regions, the area ranges and
their bounds, images without ground truth, more than 100 detections per image, tied scores, IoUs exactly at
the thresholds (and a ground truth with id 0), and many categories.

segm (iouType='segm'): writes cocoeval_segm/case_NN/ in the same format (`iouType` added), with masks:
ground truth as polygons (several parts), compressed RLE, lists of uncompressed RLE objects, crowd regions
as uncompressed RLE; detections as compressed RLE `{size, counts}` (loadRes's segmentation branch: area and
bbox from the mask), or with a `bbox` first (its bbox branch: area w*h, a missing mask is the box's).
expected.json's `bbox` scores the same results with iouType='bbox' (loadRes's boxes and areas). The
`cvat_rectangles` case adds gt_cvat.json: the same ground truth with CVAT's `"segmentation": []` for its
rectangles, which pycocotools cannot read (the evaluator reads it as the filled box, whose polygon gt.json
spells out for pycocotools).

pycocotools' COCO.loadRes cannot load an empty list (it reads anns[0]), so for "no_detections" nothing
is run: expected.json records "nothing to evaluate", all -1 and no categories, as the optional fixtures
do. (Upstream DETR instead evaluates against an empty COCO(), which gives 0 where there is ground truth.)

Usage: /usr/bin/python3 tests/reference/make_cocoeval.py [OUT_DIR [SEGM_OUT_DIR]]
       (defaults tests/data/cocoeval and OUT_DIR's sibling cocoeval_segm)
Needs pycocotools built in the cocoapi checkout ($COCOAPI_REPO, default /tmp/cocoapi).
"""
import json
import sys
from pathlib import Path

import numpy as np

from common import import_pycocotools, output_dir, quiet, write_json

SEED = 1234
SMALL, MEDIUM = 32 ** 2, 96 ** 2  # COCOeval's area bounds


# ---- building blocks ----------------------------------------------------------------------------------

def r2(x):
    """Coordinates and areas are written with two decimals (short files, exact in both readers)."""
    return round(float(x), 2)


def images(rng, n):
    """n images with ids 1..n and random sizes."""
    return [{"id": i + 1, "width": int(rng.integers(320, 1334)), "height": int(rng.integers(240, 1000)),
             "file_name": f"{i}.jpg"} for i in range(n)]


def random_box(rng, img, area_class=None):
    """[x, y, w, h] inside the image; `area_class` 'small'|'medium'|'large' picks the area range."""
    lo, hi = {"small": (16, SMALL), "medium": (SMALL, MEDIUM), "large": (MEDIUM, 300 ** 2),
              None: (16, 300 ** 2)}[area_class]
    area = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    aspect = np.exp(rng.uniform(-1.0, 1.0))
    w = min(np.sqrt(area * aspect), img["width"] - 1.0)
    h = min(area / w, img["height"] - 1.0)
    x = rng.uniform(0, img["width"] - w)
    y = rng.uniform(0, img["height"] - h)
    return [r2(x), r2(y), r2(w), r2(h)]


def jitter(rng, box, amount):
    """A detection near `box`: corners moved by up to `amount` of the box's size."""
    x, y, w, h = box
    dx0, dy0, dx1, dy1 = rng.uniform(-amount, amount, size=4) * [w, h, w, h]
    x0, y0 = x + dx0, y + dy0
    return [r2(x0), r2(y0), r2(max(w + dx1 - dx0, 1.0)), r2(max(h + dy1 - dy0, 1.0))]


class Case:
    """Ground truth and detections under construction."""

    def __init__(self, kind, imgs, cat_ids):
        self.kind = kind
        self.gt = {"images": imgs, "annotations": [], "categories": [{"id": c, "name": f"c{c}"} for c in cat_ids]}
        self.dt = []

    def add_gt(self, image_id, cat, box, crowd=False, area=None, ann_id=None):
        """A ground-truth box; `area` defaults to w*h (COCO's is the segmentation's area)."""
        anns = self.gt["annotations"]
        anns.append({"id": len(anns) + 1 if ann_id is None else ann_id, "image_id": image_id, "category_id": cat,
                     "bbox": box, "area": r2(box[2] * box[3]) if area is None else area,
                     "iscrowd": int(crowd)})
        return box

    def add_dt(self, image_id, cat, box, score):
        self.dt.append({"image_id": image_id, "category_id": cat, "bbox": box, "score": score})


def score(rng):
    return round(float(rng.uniform(0.01, 1.0)), 4)


def noisy_detections(rng, case, amount=0.15, miss=0.15, extra=0.3):
    """For every non-crowd ground truth: a jittered detection (or none), sometimes a duplicate;
    plus false positives anywhere. Shuffled, so scores are not in file order."""
    imgs = {im["id"]: im for im in case.gt["images"]}
    cats = [c["id"] for c in case.gt["categories"]]
    for a in list(case.gt["annotations"]):
        if a["iscrowd"] or rng.random() < miss:
            continue
        case.add_dt(a["image_id"], a["category_id"], jitter(rng, a["bbox"], amount), score(rng))
        if rng.random() < 0.2:
            case.add_dt(a["image_id"], a["category_id"], jitter(rng, a["bbox"], 2 * amount), score(rng))
    for _ in range(int(extra * len(case.gt["annotations"])) + 1):
        im = imgs[int(rng.choice(list(imgs)))]
        case.add_dt(im["id"], int(rng.choice(cats)), random_box(rng, im), score(rng))
    order = rng.permutation(len(case.dt))
    case.dt = [case.dt[i] for i in order]


def populate(rng, case, per_image=(2, 8), area_classes=("small", "medium", "large", None), cats=None):
    """Random non-crowd ground truth on every image (of `cats`, default all categories)."""
    cats = cats or [c["id"] for c in case.gt["categories"]]
    for im in case.gt["images"]:
        for _ in range(int(rng.integers(*per_image))):
            case.add_gt(im["id"], int(rng.choice(cats)), random_box(rng, im, rng.choice(area_classes)))


# ---- the cases ------------------------------------------------------------------------------------------

def perfect(rng):
    """Every ground truth detected exactly, in all three area ranges and three categories: all 1."""
    case = Case("perfect", images(rng, 3), [1, 2, 3])
    for im in case.gt["images"]:
        for k, area_class in enumerate(["small", "medium", "large", "small"]):
            case.add_gt(im["id"], 1 + (im["id"] + k) % 3, random_box(rng, im, area_class))
    for a in case.gt["annotations"]:
        case.add_dt(a["image_id"], a["category_id"], list(a["bbox"]), score(rng))
    return case


def no_detections(rng):
    """Ground truth, an empty results list."""
    case = Case("no_detections", images(rng, 3), [3, 7])
    populate(rng, case)
    return case


def crowd(rng):
    """Crowd regions: small detections inside them are ignored (IoU = intersection / detection area);
    category 5 has only crowd ground truth (nothing to evaluate: -1)."""
    case = Case("crowd", images(rng, 4), [4, 5])
    populate(rng, case, per_image=(2, 5), cats=[4])
    noisy_detections(rng, case, extra=0.2)
    for im in case.gt["images"]:
        cat = 4 if im["id"] % 2 else 5
        region = case.add_gt(im["id"], cat, random_box(rng, im, "large"), crowd=True,
                             area=r2(rng.uniform(0.4, 0.9) * 150 ** 2))
        x, y, w, h = region
        for _ in range(int(rng.integers(2, 6))):  # people in the crowd, some half outside it
            bw, bh = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
            bx, by = rng.uniform(x - 0.3 * bw, x + w - 0.7 * bw), rng.uniform(y - 0.3 * bh, y + h - 0.7 * bh)
            case.add_dt(im["id"], cat, [r2(bx), r2(by), r2(bw), r2(bh)], score(rng))
        case.add_dt(im["id"], cat, jitter(rng, region, 0.05), score(rng))  # the whole region
    return case


def area_bounds(rng):
    """Areas exactly at 32^2 and 96^2 (in both neighbouring ranges), ground-truth areas unlike w*h
    (segmentation areas), and detections whose w*h lies in another range than their object's."""
    case = Case("area_bounds", images(rng, 3), [1, 2])
    for im in case.gt["images"]:
        for side in (32, 96):
            box = [r2(rng.uniform(0, 100)), r2(rng.uniform(0, 100)), float(side), float(side)]
            case.add_gt(im["id"], 1, box)                       # area exactly side^2
            case.add_dt(im["id"], 1, list(box), score(rng))
            shifted = [r2(box[0] + 1.0), box[1], box[2], box[3] + 1.0]
            case.add_dt(im["id"], 1, shifted, score(rng))       # w*h just above the bound
        for area_class in ("small", "medium", "large"):
            box = random_box(rng, im, area_class)
            fill = rng.uniform(0.3, 1.0)                        # the mask covers part of its box
            case.add_gt(im["id"], 2, box, area=r2(box[2] * box[3] * fill))
            case.add_dt(im["id"], 2, jitter(rng, box, 0.1), score(rng))
            grown = [box[0] - box[2] * 0.1, box[1] - box[3] * 0.1, box[2] * 1.2, box[3] * 1.2]
            case.add_dt(im["id"], 2, [r2(v) for v in grown], score(rng))
    return case


def empty_images(rng):
    """Half of the images have no ground truth; detections on them are false positives."""
    case = Case("empty_images", images(rng, 6), [2, 8, 9])
    for im in case.gt["images"][::2]:
        for _ in range(int(rng.integers(2, 6))):
            case.add_gt(im["id"], int(rng.choice([2, 8, 9])), random_box(rng, im))
    noisy_detections(rng, case, extra=0.1)
    for im in case.gt["images"][1::2]:
        for _ in range(int(rng.integers(1, 4))):
            case.add_dt(im["id"], int(rng.choice([2, 8, 9])), random_box(rng, im), score(rng))
    return case


def many_dets(rng):
    """More than 100 detections on an image (COCOeval keeps the 100 best per image and category),
    true positives spread over all ranks, so maxDets 1/10/100 differ."""
    case = Case("many_dets", images(rng, 3), [6])
    populate(rng, case, per_image=(8, 16))
    per_image = {1: 150, 2: 110, 3: 40}
    for im in case.gt["images"]:
        gts = [a for a in case.gt["annotations"] if a["image_id"] == im["id"]]
        for k in range(per_image[im["id"]]):
            if k < 2 * len(gts):
                box = jitter(rng, gts[k % len(gts)]["bbox"], 0.12)
            else:
                box = random_box(rng, im)
            case.add_dt(im["id"], 6, box, score(rng))
    order = rng.permutation(len(case.dt))
    case.dt = [case.dt[i] for i in order]
    return case


def score_ties(rng):
    """Scores from {0.9, 0.6, 0.3}: ties are broken by the order of dt.json (stable sorts), within an
    image and across images."""
    case = Case("score_ties", images(rng, 4), [1, 2])
    populate(rng, case, per_image=(3, 7))
    noisy_detections(rng, case, amount=0.2, miss=0.1, extra=0.6)
    for d in case.dt:
        d["score"] = float(rng.choice([0.9, 0.6, 0.3]))
    return case


def iou_edges(rng):
    """Integer boxes whose IoU with their object is exactly 0.5, 0.75, 0.95 or just below (the
    thresholds are np.linspace(.5, .95, 10)); one object has id 0, which COCOeval's dtMatches cannot
    tell from "unmatched"."""
    case = Case("iou_edges", images(rng, 2), [1])
    gt_box = [100.0, 100.0, 100.0, 100.0]
    exact = {0.5: 50.0, 0.75: 75.0, 0.95: 95.0, 0.6: 60.0, 0.85: 85.0}  # IoU = h/100 for [x, y, 100, h]
    for k, (iou, h) in enumerate(exact.items()):
        x0 = 300.0 * k
        case.add_gt(1, 1, [x0 + 10, 10.0, 100.0, 100.0])
        case.add_dt(1, 1, [x0 + 10, 10.0, 100.0, h], round(0.9 - 0.1 * k, 4))
        case.add_gt(1, 1, [x0 + 10, 200.0, 100.0, 100.0])
        case.add_dt(1, 1, [x0 + 10, 200.0, 100.0, h - 0.01], round(0.85 - 0.1 * k, 4))  # just below
    case.add_gt(2, 1, gt_box, ann_id=0)
    case.add_dt(2, 1, list(gt_box), 0.99)
    case.add_gt(2, 1, [300.0, 300.0, 50.0, 50.0])
    case.add_dt(2, 1, [300.0, 300.0, 50.0, 50.0], 0.5)
    return case


def many_categories(rng):
    """Eight categories over ten images, as a detector's output looks: one category without
    detections (AP 0), one listed without ground truth (-1), detections of an unknown category."""
    cats = [1, 3, 5, 11, 17, 44, 62, 90]
    case = Case("many_categories", images(rng, 10), cats)
    for im in case.gt["images"]:
        for _ in range(int(rng.integers(1, 7))):
            case.add_gt(im["id"], int(rng.choice(cats[:-1])), random_box(rng, im))
    noisy_detections(rng, case, amount=0.1, miss=0.2, extra=0.5)
    case.dt = [d for d in case.dt if d["category_id"] != 17]
    case.add_dt(1, 91, random_box(rng, case.gt["images"][0]), 0.97)  # not in categories: ignored
    case.add_dt(2, 90, random_box(rng, case.gt["images"][1]), 0.42)  # a category without ground truth
    return case


CASES = [perfect, no_detections, crowd, area_bounds, empty_images, many_dets, score_ties, iou_edges,
         many_categories]


# ---- segm cases: masks ------------------------------------------------------------------------------

class SegmCase(Case):
    """Ground truth and detections with masks, for COCOeval(iouType='segm'). `mask_utils` is
    pycocotools.mask; masks are made by it (frPyObjects, merge, encode), never by hand."""

    def __init__(self, kind, imgs, cat_ids, mask_utils):
        super().__init__(kind, imgs, cat_ids)
        self.mu = mask_utils
        self.sizes = {im["id"]: (im["height"], im["width"]) for im in imgs}
        self.extra_files = {}

    def rle(self, image_id, segmentation):
        """COCO.annToRLE of a segmentation on the image."""
        h, w = self.sizes[image_id]
        if isinstance(segmentation, list):
            return self.mu.merge(self.mu.frPyObjects(segmentation, h, w))
        if isinstance(segmentation["counts"], list):
            return self.mu.frPyObjects(segmentation, h, w)
        return {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}

    def add_gt_mask(self, image_id, cat, segmentation, crowd=False, area=None):
        """A ground-truth object: bbox from its mask (toBbox), `area` its pixel count unless given."""
        rle = self.rle(image_id, segmentation)
        anns = self.gt["annotations"]
        anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "segmentation": segmentation,
                     "area": float(self.mu.area(rle)) if area is None else area,
                     "bbox": [float(v) for v in self.mu.toBbox(rle)], "iscrowd": int(crowd)})
        return rle

    def add_dt_mask(self, image_id, cat, polygons, score, bbox=None):
        """A detection as a compressed RLE {size, counts}; `bbox` only where given."""
        rle = self.rle(image_id, polygons)
        d = {"image_id": image_id, "category_id": cat, "segmentation": compressed(rle), "score": score}
        if bbox is not None:
            d["bbox"] = bbox
        self.dt.append(d)


def compressed(rle):
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed(mask_utils, rle):
    """An RLE's uncompressed form {size, counts: [...]} (CVAT's brush masks), from its decoded mask."""
    m = mask_utils.decode(rle).flatten(order="F")  # column-major, as COCO's runs
    edges = np.flatnonzero(np.diff(m)) + 1
    bounds = np.concatenate([[0], edges, [m.size]])
    counts = np.diff(bounds).tolist()
    if m.size and m[0]:
        counts = [0] + counts
    return {"size": [int(v) for v in rle["size"]], "counts": [int(c) for c in counts]}


def blob(rng, im, radius=None, centre=None, vertices=None):
    """A star-shaped polygon inside the image (two-decimal coordinates)."""
    h, w = im["height"], im["width"]
    r = radius if radius is not None else float(rng.uniform(4, min(h, w) / 3))
    cx, cy = centre if centre is not None else (rng.uniform(r, w - r), rng.uniform(r, h - r))
    k = vertices or int(rng.integers(5, 16))
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=k))
    radii = r * rng.uniform(0.5, 1.0, size=k)
    xs = np.clip(cx + radii * np.cos(angles), 0, w)
    ys = np.clip(cy + radii * np.sin(angles), 0, h)
    return [r2(v) for xy in zip(xs, ys) for v in xy]


def jitter_polygons(rng, polygons, amount):
    """Every vertex moved by up to `amount` of the polygon's extent."""
    out = []
    for p in polygons:
        xy = np.array(p).reshape(-1, 2)
        extent = np.maximum(xy.max(0) - xy.min(0), 2.0)
        xy = xy + rng.uniform(-amount, amount, size=xy.shape) * extent
        out.append([r2(max(v, 0.0)) for v in xy.flatten()])
    return out


def small_images(rng, n):
    """Images of 60..260 pixels a side: short RLE strings."""
    return [{"id": i + 1, "width": int(rng.integers(60, 260)), "height": int(rng.integers(60, 260)),
             "file_name": f"{i}.jpg"} for i in range(n)]


def populate_masks(rng, case, per_image=(2, 7), cats=None, parts=(1, 1)):
    cats = cats or [c["id"] for c in case.gt["categories"]]
    for im in case.gt["images"]:
        for _ in range(int(rng.integers(*per_image))):
            polygons = [blob(rng, im) for _ in range(int(rng.integers(parts[0], parts[1] + 1)))]
            case.add_gt_mask(im["id"], int(rng.choice(cats)), polygons)


def noisy_mask_detections(rng, case, amount=0.08, miss=0.15, extra=0.3):
    """For every non-crowd polygon object: a jittered mask (or none), sometimes a worse duplicate;
    plus false positives anywhere. Shuffled, so scores are not in file order."""
    imgs = {im["id"]: im for im in case.gt["images"]}
    cats = [c["id"] for c in case.gt["categories"]]
    for a in list(case.gt["annotations"]):
        if a["iscrowd"] or not isinstance(a["segmentation"], list) or rng.random() < miss:
            continue
        case.add_dt_mask(a["image_id"], a["category_id"], jitter_polygons(rng, a["segmentation"], amount), score(rng))
        if rng.random() < 0.2:
            case.add_dt_mask(a["image_id"], a["category_id"],
                             jitter_polygons(rng, a["segmentation"], 3 * amount), score(rng))
    for _ in range(int(extra * len(case.gt["annotations"])) + 1):
        im = imgs[int(rng.choice(list(imgs)))]
        case.add_dt_mask(im["id"], int(rng.choice(cats)), [blob(rng, im)], score(rng))
    order = rng.permutation(len(case.dt))
    case.dt = [case.dt[i] for i in order]


def segm_perfect(rng, mu):
    """Every object detected with its own mask, objects of all three area ranges: all 1."""
    case = SegmCase("perfect", small_images(rng, 3), [1, 2, 3], mu)
    for im in case.gt["images"]:
        for k, r in enumerate([4.0, 12.0, 60.0]):
            polygons = [blob(rng, im, radius=min(r, min(im["width"], im["height"]) / 2 - 1))]
            case.add_gt_mask(im["id"], 1 + (im["id"] + k) % 3, polygons)
    for a in case.gt["annotations"]:
        case.add_dt_mask(a["image_id"], a["category_id"], a["segmentation"], score(rng))
    return case


def segm_no_detections(rng, mu):
    """Ground truth, an empty results list."""
    case = SegmCase("no_detections", small_images(rng, 2), [3, 7], mu)
    populate_masks(rng, case)
    return case


def segm_plain(rng, mu):
    """Noisy masks of objects with one or two polygon parts, misses, duplicates, false positives."""
    case = SegmCase("plain", small_images(rng, 6), [4, 8, 15], mu)
    populate_masks(rng, case, parts=(1, 2))
    noisy_mask_detections(rng, case)
    return case


def segm_crowd_rle(rng, mu):
    """Crowd regions as uncompressed RLE (CVAT's brush masks): masks inside them are ignored (IoU =
    intersection / detection area); category 5 has only crowd ground truth (nothing to evaluate: -1)."""
    case = SegmCase("crowd_rle", small_images(rng, 4), [4, 5], mu)
    populate_masks(rng, case, per_image=(1, 4), cats=[4])
    noisy_mask_detections(rng, case, extra=0.2)
    for im in case.gt["images"]:
        cat = 4 if im["id"] % 2 else 5
        region = blob(rng, im, radius=min(im["width"], im["height"]) / 3, vertices=12)
        rle = case.rle(im["id"], [region])
        case.add_gt_mask(im["id"], cat, uncompressed(mu, rle), crowd=True)
        x, y, w, h = mu.toBbox(rle)
        for _ in range(int(rng.integers(2, 6))):  # people in the crowd, some half outside it
            centre = (rng.uniform(x, x + w), rng.uniform(y, y + h))
            case.add_dt_mask(im["id"], cat, [blob(rng, im, radius=max(2.0, 0.12 * min(w, h)), centre=centre)],
                             score(rng))
        case.add_dt_mask(im["id"], cat, jitter_polygons(rng, [region], 0.03), score(rng))  # the whole region
    return case


def segm_rle_forms(rng, mu):
    """Ground truth in each form annToRLE reads: polygons, compressed RLE (a string), an uncompressed
    RLE, a list of uncompressed RLE objects (merged); areas unlike the pixel count, as COCO's are."""
    case = SegmCase("rle_forms", small_images(rng, 4), [1, 2], mu)
    for im in case.gt["images"]:
        a, b = blob(rng, im), blob(rng, im)
        ra, rb = case.rle(im["id"], [a]), case.rle(im["id"], [b])
        forms = [([a, b], [a, b]), (compressed(ra), [a]), (uncompressed(mu, rb), [b]),
                 ([uncompressed(mu, ra), uncompressed(mu, rb)], [a, b])]
        for k, (seg, source) in enumerate(forms):
            area = r2(float(mu.area(case.rle(im["id"], seg))) * rng.uniform(0.8, 1.2))
            case.add_gt_mask(im["id"], 1 + k % 2, seg, area=area)
            case.add_dt_mask(im["id"], 1 + k % 2, jitter_polygons(rng, source, 0.05), score(rng))
    return case


def segm_many_dets(rng, mu):
    """More than 100 mask detections on an image (COCOeval keeps the 100 best per image and category)."""
    case = SegmCase("many_dets", small_images(rng, 2), [6], mu)
    populate_masks(rng, case, per_image=(6, 10))
    for im, n in zip(case.gt["images"], (130, 40)):
        gts = [a for a in case.gt["annotations"] if a["image_id"] == im["id"]]
        for k in range(n):
            polygons = jitter_polygons(rng, gts[k % len(gts)]["segmentation"], 0.1) if k < 2 * len(gts) \
                else [blob(rng, im, radius=float(rng.uniform(2, 10)))]
            case.add_dt_mask(im["id"], 6, polygons, score(rng))
    order = rng.permutation(len(case.dt))
    case.dt = [case.dt[i] for i in order]
    return case


def segm_score_ties(rng, mu):
    """Scores from {0.9, 0.6, 0.3}: ties broken by the order of dt.json. Later results also carry a
    (wrong) bbox, which segm ignores: loadRes's segmentation branch takes the area from the mask."""
    case = SegmCase("score_ties", small_images(rng, 3), [1, 2], mu)
    populate_masks(rng, case, per_image=(3, 6))
    noisy_mask_detections(rng, case, amount=0.12, miss=0.1, extra=0.6)
    for i, d in enumerate(case.dt):
        d["score"] = float(rng.choice([0.9, 0.6, 0.3]))
        if i > 0 and i % 3 == 0:
            d["bbox"] = [0.0, 0.0, 200.0, 200.0]
    return case


def segm_box_results(rng, mu):
    """Results with a bbox first (loadRes's bbox branch): area w*h (not the mask's), a mask where given,
    else the box's polygon. Masks of about 32^2 pixels whose boxes are larger: the two areas fall in
    different ranges."""
    case = SegmCase("box_results", small_images(rng, 3), [2, 9], mu)
    for im in case.gt["images"]:
        for _ in range(int(rng.integers(3, 6))):
            case.add_gt_mask(im["id"], int(rng.choice([2, 9])), [blob(rng, im, radius=float(rng.uniform(15, 24)))])
    noisy_mask_detections(rng, case, amount=0.1, miss=0.1, extra=0.6)
    for i, d in enumerate(case.dt):
        rle = {"size": d["segmentation"]["size"], "counts": d["segmentation"]["counts"].encode("ascii")}
        x, y, w, h = [float(v) for v in mu.toBbox(rle)]
        d["bbox"] = [r2(x - 1), r2(y - 1), r2(w + 2.5), r2(h + 2.5)]
        if i % 4 == 1:
            del d["segmentation"]  # scored with its box's mask
    case.dt = [{k: d[k] for k in ("image_id", "category_id", "bbox", "segmentation", "score") if k in d}
               for d in case.dt]
    return case


def segm_empty_images(rng, mu):
    """Half of the images have no ground truth; mask detections on them are false positives."""
    case = SegmCase("empty_images", small_images(rng, 4), [2, 8], mu)
    for im in case.gt["images"][::2]:
        for _ in range(int(rng.integers(2, 5))):
            case.add_gt_mask(im["id"], int(rng.choice([2, 8])), [blob(rng, im)])
    noisy_mask_detections(rng, case, extra=0.1)
    for im in case.gt["images"][1::2]:
        for _ in range(int(rng.integers(1, 4))):
            case.add_dt_mask(im["id"], int(rng.choice([2, 8])), [blob(rng, im)], score(rng))
    return case


def segm_area_bounds(rng, mu):
    """Integer rectangles of exactly 32x32 and 96x96 pixels (mask areas at COCO's range bounds, in both
    neighbouring ranges), ground truth and detections alike."""
    case = SegmCase("area_bounds", [{"id": 1, "width": 300, "height": 240, "file_name": "0.jpg"}], [1], mu)
    for x, side in zip((10, 60, 170, 220), (32, 96, 31, 33)):
        y = 10
        rect = [float(x), float(y), float(x), float(y + side), float(x + side), float(y + side), float(x + side), float(y)]
        case.add_gt_mask(1, 1, [rect])
        shifted = [v + 1.0 if j % 2 == 0 else v for j, v in enumerate(rect)]
        case.add_dt_mask(1, 1, [shifted], score(rng))
        case.add_dt_mask(1, 1, [rect], score(rng))
    return case


def segm_cvat_rectangles(rng, mu):
    """Rectangles: gt.json spells out their polygon [x0, y0, x0, y1, x1, y1, x1, y0] for pycocotools,
    gt_cvat.json has CVAT's `"segmentation": []` instead (read as the filled box: the same mask)."""
    case = SegmCase("cvat_rectangles", small_images(rng, 3), [1, 3], mu)
    populate_masks(rng, case, per_image=(1, 3))
    rectangles = []
    for im in case.gt["images"]:
        for _ in range(int(rng.integers(1, 4))):
            x, y = r2(rng.uniform(0, im["width"] / 2)), r2(rng.uniform(0, im["height"] / 2))
            w, h = r2(rng.uniform(3, im["width"] / 2)), r2(rng.uniform(3, im["height"] / 2))
            rect = [x, y, x, y + h, x + w, y + h, x + w, y]  # the sums as doubles, as frBbox adds them
            case.add_gt_mask(im["id"], int(rng.choice([1, 3])), [rect])
            case.gt["annotations"][-1]["bbox"] = [x, y, w, h]
            rectangles.append(case.gt["annotations"][-1]["id"])
    noisy_mask_detections(rng, case, amount=0.05)
    cvat = json.loads(json.dumps(case.gt))
    for a in cvat["annotations"]:
        if a["id"] in rectangles:
            a["segmentation"] = []
    case.extra_files["gt_cvat.json"] = cvat
    return case


SEGM_CASES = [segm_perfect, segm_no_detections, segm_plain, segm_crowd_rle, segm_rle_forms, segm_many_dets,
              segm_score_ties, segm_box_results, segm_empty_images, segm_area_bounds, segm_cvat_rectangles]

# ---- scoring ----------------------------------------------------------------------------------------------

def evaluate(COCO, COCOeval, gt_path, dt_path, iou_type="bbox"):
    """COCOeval(iouType) on the written files: (stats, per_category_ap)."""
    with quiet():
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(str(dt_path))
        ev = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    per_cat = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        per_cat[str(cat)] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    return [float(s) for s in ev.stats], per_cat


def write_case(COCO, COCOeval, directory, case, iou_type="bbox"):
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "gt.json", case.gt)
    write_json(directory / "dt.json", case.dt)
    for name, extra in getattr(case, "extra_files", {}).items():
        write_json(directory / name, extra)
    head = {"kind": case.kind} if iou_type == "bbox" else {"kind": case.kind, "iouType": iou_type}
    if case.dt:
        stats, per_cat = evaluate(COCO, COCOeval, directory / "gt.json", directory / "dt.json", iou_type)
        expected = {**head, "stats": stats, "per_category_ap": per_cat}
        if iou_type == "segm":  # the same results as boxes: loadRes's bbox and area for each
            stats, per_cat = evaluate(COCO, COCOeval, directory / "gt.json", directory / "dt.json", "bbox")
            expected["bbox"] = {"stats": stats, "per_category_ap": per_cat}
    else:
        expected = {**head, "stats": [-1.0] * 12, "per_category_ap": {},
                    "note": "pycocotools' COCO.loadRes cannot load []: nothing to evaluate"}
    write_json(directory / "expected.json", expected, indent=1)
    print(f"  {case.kind}: {len(case.gt['images'])} images, {len(case.gt['annotations'])} objects, "
          f"{len(case.dt)} detections, AP {expected['stats'][0]:.4f}")


def main():
    out = output_dir(sys.argv, "cocoeval")
    segm_out = Path(sys.argv[2]) if len(sys.argv) > 2 else out.parent / "cocoeval_segm"  # OUT_DIR's sibling
    COCO, COCOeval = import_pycocotools()
    for n, make in enumerate(CASES):
        case = make(np.random.default_rng([SEED, n]))
        write_case(COCO, COCOeval, out / f"case_{n:02d}", case)
    from pycocotools import mask as mask_utils  # importable once import_pycocotools() set the path

    for n, make in enumerate(SEGM_CASES):
        case = make(np.random.default_rng([SEED, 100 + n]), mask_utils)
        write_case(COCO, COCOeval, segm_out / f"case_{n:02d}", case, "segm")


if __name__ == "__main__":
    main()
