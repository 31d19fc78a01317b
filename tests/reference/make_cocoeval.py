"""Golden cases for the COCO bbox evaluator, scored by pycocotools' COCOeval (cocodataset/cocoapi).

Writes case_NN/{gt.json, dt.json, expected.json} (format: tests/reference/README.md, "cocoeval/"):
COCO ground truth, a COCO results list, and COCOeval(iouType='bbox')'s 12 `stats` plus `per_category_ap`
(AP@[.5:.95], area all, maxDets 100; -1 for a category without ground truth). Each case stresses one
part of COCOeval: perfect detections, no detections, crowd regions, the area ranges and their bounds,
images without ground truth, more than 100 detections per image, tied scores, IoUs exactly at the
thresholds (and a ground truth with id 0), and many categories.

pycocotools' COCO.loadRes cannot load an empty list (it reads anns[0]), so for "no_detections" nothing
is run: expected.json records "nothing to evaluate", all -1 and no categories, as the optional fixtures
do. (Upstream DETR instead evaluates against an empty COCO(), which gives 0 where there is ground truth.)

Usage: /usr/bin/python3 tests/reference/make_cocoeval.py [OUT_DIR]   (default tests/data/cocoeval)
Needs pycocotools built in the cocoapi checkout ($COCOAPI_REPO, default /tmp/cocoapi).
"""
import sys

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


# ---- scoring ----------------------------------------------------------------------------------------------

def evaluate(COCO, COCOeval, gt_path, dt_path):
    """COCOeval(iouType='bbox') on the written files: (stats, per_category_ap)."""
    with quiet():
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(str(dt_path))
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    per_cat = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        per_cat[str(cat)] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    return [float(s) for s in ev.stats], per_cat


def write_case(COCO, COCOeval, directory, case):
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "gt.json", case.gt)
    write_json(directory / "dt.json", case.dt)
    if case.dt:
        stats, per_cat = evaluate(COCO, COCOeval, directory / "gt.json", directory / "dt.json")
        expected = {"kind": case.kind, "stats": stats, "per_category_ap": per_cat}
    else:
        expected = {"kind": case.kind, "stats": [-1.0] * 12, "per_category_ap": {},
                    "note": "pycocotools' COCO.loadRes cannot load []: nothing to evaluate"}
    write_json(directory / "expected.json", expected, indent=1)
    print(f"  {case.kind}: {len(case.gt['images'])} images, {len(case.gt['annotations'])} objects, "
          f"{len(case.dt)} detections, AP {expected['stats'][0]:.4f}")


def main():
    out = output_dir(sys.argv, "cocoeval")
    COCO, COCOeval = import_pycocotools()
    for n, make in enumerate(CASES):
        case = make(np.random.default_rng([SEED, n]))
        write_case(COCO, COCOeval, out / f"case_{n:02d}", case)


if __name__ == "__main__":
    main()
