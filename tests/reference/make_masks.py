"""Golden cases for the COCO mask codec (datasets/coco_mask.h), computed by pycocotools.

Usage: /usr/bin/python3 tests/reference/make_masks.py [OUT_DIR]   (default tests/data/masks)
Needs the cocoapi checkout with pycocotools built in place ($COCOAPI_REPO; see README.md). Seeded and deterministic: rerunning rewrites the same cases.json.

Writes cases.json:
- `segmentations`: an annotation's `segmentation` (polygons, uncompressed RLE, compressed RLE, a list
  of uncompressed RLE objects) on an image of `height` x `width`, read by COCO.annToRLE: `ann_counts`
  (that RLE's compressed counts, as annToRLE returns them), `ann_area` and `ann_bbox` (area, toBbox of
  it), and `mask_counts` (encode(decode(rle)): the mask itself) with `mask_area` (its pixel count).
- `boxes`: frPyObjects (frBbox) of [x, y, w, h] -> `counts`.
- `merges`: merge(rles, intersect) -> `expected` counts; `covers_image` false where rleMerge stops
  early at a zero-length run and returns fewer pixels than the image has.
- `ious`: iou(dt, gt, iscrowd) -> `expected` [len(dt)][len(gt)] (an empty list when either is empty).
- `raises`: segmentations on which annToRLE raises, with the exception pycocotools gives.
"""
import sys

import numpy as np

from common import import_pycocotools, output_dir, write_json

SEED = 20240917


def column_runs(mask):
    """Uncompressed RLE counts of a 2-D 0/1 mask, column-major, starting with zeros."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return counts


def blob_mask(rng, h, w, blobs=3):
    """A 0/1 mask: a union of random ellipses."""
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), dtype=np.uint8)
    for _ in range(blobs):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.5, h / 2 + 1), rng.uniform(0.5, w / 2 + 1)
        mask |= (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)
    return mask


def rounded(values, digits=3):
    return [round(float(v), digits) for v in values]


def convex_polygon(rng, h, w, n):
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    cx, cy, r = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.3 * h, 0.7 * h), rng.uniform(1, min(h, w) / 2)
    return rounded(np.ravel(np.column_stack([cx + r * np.cos(angles), cy + r * np.sin(angles)])))


def random_polygon(rng, h, w, n, lo=0.0, hi=1.0, digits=3):
    xs = rng.uniform(lo * w, hi * w, n)
    ys = rng.uniform(lo * h, hi * h, n)
    return rounded(np.ravel(np.column_stack([xs, ys])), digits)


def polygon_cases(rng):
    cases = []
    add = lambda name, h, w, seg: cases.append((name, h, w, seg))
    for i in range(4):
        h, w = int(rng.integers(8, 60)), int(rng.integers(8, 60))
        add(f"convex_{i}", h, w, [convex_polygon(rng, h, w, int(rng.integers(3, 12)))])
    for i in range(4):
        h, w = int(rng.integers(8, 60)), int(rng.integers(8, 60))
        add(f"self_crossing_{i}", h, w, [random_polygon(rng, h, w, int(rng.integers(4, 9)))])
    for i in range(4):
        h, w = int(rng.integers(8, 60)), int(rng.integers(8, 60))
        add(f"partly_outside_{i}", h, w, [random_polygon(rng, h, w, int(rng.integers(3, 8)), -0.4, 1.4)])
    for i in range(3):
        h, w = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        add(f"integer_{i}", h, w, [[int(v) for v in random_polygon(rng, h, w, 5, -0.1, 1.1, 0)]])
    for i in range(4):  # smaller than a pixel, at various offsets
        x, y, s = rng.uniform(0, 6), rng.uniform(0, 6), rng.uniform(0.05, 0.9)
        add(f"sub_pixel_{i}", 8, 8, [rounded([x, y, x + s, y, x + s, y + s, x, y + s], 4)])
    add("tenths", 6, 7, [[0.1, 0.3, 4.7, 0.1, 5.3, 4.9, 0.3, 5.5, 2.1, 2.9]])
    add("odd_count_7", 20, 20, [[2.0, 2.0, 15.0, 3.0, 12.0, 16.0, 7.5]])
    add("odd_count_9", 20, 20, [[1.0, 1.0, 18.0, 1.0, 18.0, 18.0, 1.0, 18.0, 9.9]])
    add("three_parts", 40, 50, [random_polygon(rng, 40, 50, 5), convex_polygon(rng, 40, 50, 6),
                                random_polygon(rng, 40, 50, 4, -0.2, 1.2)])
    add("later_parts_short", 20, 20, [[2, 2, 15, 3, 12, 16], [1, 1, 9, 9], [3, 4], [], [5, 5, 6]])
    add("overlapping_parts", 30, 30, [[0, 0, 20, 0, 20, 20, 0, 20], [10, 10, 29, 10, 29, 29, 10, 29]])
    add("repeated_vertex", 20, 20, [[3, 3, 3, 3, 15, 4, 15, 4, 9, 17]])
    add("explicitly_closed", 20, 20, [[3.5, 3.2, 15.1, 4.8, 9.0, 17.3, 3.5, 3.2]])
    add("negative_near_zero", 10, 10, [[-0.15, -0.3, 6.0, -0.05, 5.0, 7.0, -0.29, 4.0]])
    add("whole_image", 12, 9, [[0, 0, 9, 0, 9, 12, 0, 12]])
    add("beyond_image", 12, 9, [[-3, -3, 12, -3, 12, 15, -3, 15]])
    add("outside", 12, 9, [[20, 20, 30, 20, 30, 30]])
    add("one_pixel_image", 1, 1, [[0, 0, 1, 0, 1, 1, 0, 1]])
    add("one_pixel_image_partial", 1, 1, [[0.2, 0.2, 0.8, 0.2, 0.8, 0.8]])
    add("collinear", 10, 10, [[1, 1, 5, 5, 8, 8]])
    add("single_point", 10, 10, [[4, 4, 4, 4, 4, 4]])
    add("many_vertices", 120, 150, [random_polygon(rng, 120, 150, 200, 0.0, 1.0, 2)])
    # Runs of tens of millions of pixels: 6-character values, negative differences.
    add("large_image", 5000, 6000, [[100.5, 4000.25, 5900.0, 200.0, 5950.75, 4990.0],
                                    [3000, 10, 3002, 10, 3001, 4999]])
    return cases


def uncompressed(mask):
    return {"counts": column_runs(mask), "size": list(mask.shape)}


def compressed(mask_utils, mask):
    return {"size": list(mask.shape), "counts": mask_utils.encode(np.asfortranarray(mask))["counts"].decode()}


def rle_cases(rng, mask_utils):
    cases = []
    for i in range(4):
        h, w = int(rng.integers(3, 25)), int(rng.integers(3, 25))
        cases.append((f"uncompressed_{i}", h, w, uncompressed(blob_mask(rng, h, w))))
    starts_on = blob_mask(rng, 9, 11)
    starts_on[0, 0] = 1
    cases.append(("uncompressed_starts_with_ones", 9, 11, uncompressed(starts_on)))
    cases.append(("uncompressed_zero_runs", 5, 3, {"counts": [2, 0, 3, 4, 0, 6], "size": [5, 3]}))
    cases.append(("uncompressed_empty", 7, 4, {"counts": [28], "size": [7, 4]}))
    cases.append(("uncompressed_full", 7, 4, {"counts": [0, 28], "size": [7, 4]}))
    cases.append(("uncompressed_one_pixel_on", 1, 1, {"counts": [0, 1], "size": [1, 1]}))
    cases.append(("uncompressed_one_pixel_off", 1, 1, {"counts": [1], "size": [1, 1]}))
    cases.append(("uncompressed_float_counts", 4, 4, {"counts": [3.0, 5.0, 8.0], "size": [4, 4]}))
    cases.append(("uncompressed_list", 10, 12, [uncompressed(blob_mask(rng, 10, 12)) for _ in range(3)]))
    for i, (h, w) in enumerate([(6, 5), (30, 40), (200, 300), (480, 640)]):
        cases.append((f"compressed_{i}", h, w, compressed(mask_utils, blob_mask(rng, h, w, 4))))
    big = np.zeros((3000, 4000), dtype=np.uint8)
    big[5:2990, 1200:1203] = 1
    big[:, 3999] = 1
    cases.append(("compressed_large_runs", 3000, 4000, compressed(mask_utils, big)))
    return cases


def counts_text(rle):
    counts = rle["counts"]
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def segmentation_entry(coco, mask_utils, name, h, w, seg):
    coco.imgs[1] = {"id": 1, "height": h, "width": w}
    rle = coco.annToRLE({"image_id": 1, "segmentation": seg})
    mask = mask_utils.decode(rle)
    encoded = mask_utils.encode(np.asfortranarray(mask))
    return {
        "name": name, "height": h, "width": w, "segmentation": seg,
        "ann_counts": counts_text(rle),
        "ann_area": int(mask_utils.area(rle)),
        "ann_bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "mask_counts": counts_text(encoded),
        "mask_area": int(mask.sum()),
    }


def box_entries(mask_utils):
    boxes = [(10, 12, [2, 3, 5, 4]), (10, 12, [2.3, 3.7, 5.2, 4.1]), (10, 12, [-2.5, -1.0, 6.0, 20.0]),
             (10, 12, [0, 0, 12, 10]), (10, 12, [4, 4, 0, 0]), (10, 12, [3.3, 2.2, 0.4, 0.4]),
             (1, 1, [0, 0, 1, 1]), (10, 12, [8, 7, -3, -2]), (10, 12, [11.5, 9.5, 3, 3])]
    out = []
    for h, w, box in boxes:
        rle = mask_utils.frPyObjects(np.array([box], dtype=np.double), h, w)[0]  # frBbox
        out.append({"height": h, "width": w, "box": [float(v) for v in box], "counts": counts_text(rle)})
    return out


def encoded(mask_utils, mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": counts_text(rle)}


def merge_entries(rng, mask_utils):
    out = []
    h, w = 16, 20
    masks = [encoded(mask_utils, blob_mask(rng, h, w)) for _ in range(3)]
    empty = encoded(mask_utils, np.zeros((h, w)))
    full = encoded(mask_utils, np.ones((h, w)))
    for name, rles in [("two", masks[:2]), ("three", masks), ("one", masks[:1]),
                       ("with_empty", [masks[0], empty]), ("with_full", [masks[1], full])]:
        for intersect in (False, True):
            out.append({"name": name, "height": h, "width": w, "counts": [r["counts"] for r in rles],
                        "intersect": intersect, "expected": counts_text(mask_utils.merge(rles, intersect))})
    zero_run = mask_utils.frPyObjects([{"counts": [2, 0, 3], "size": [5, 1]}], 5, 1)[0]
    merged = mask_utils.merge([zero_run, zero_run])
    out.append({"name": "zero_length_run", "height": 5, "width": 1, "counts": [counts_text(zero_run)] * 2,
                "intersect": False, "expected": counts_text(merged), "covers_image": False})
    return out


def iou_entries(rng, mask_utils):
    h, w = 24, 30
    gt_masks = [blob_mask(rng, h, w, 2) for _ in range(2)] + [np.zeros((h, w), np.uint8)]
    gt_masks[1][:, :] = 0
    gt_masks[1][2:20, 3:25] = 1  # a large region (a crowd in one case)
    dt_masks = [gt_masks[0].copy(), blob_mask(rng, h, w, 2), np.zeros((h, w), np.uint8),
                blob_mask(rng, h, w, 1)]
    dt_masks[3][20:, 25:] = 1
    dt = [encoded(mask_utils, m) for m in dt_masks]
    gt = [encoded(mask_utils, m) for m in gt_masks]
    other_size = encoded(mask_utils, np.ones((h, w + 1)))
    out = []
    for name, d, g, crowd in [("plain", dt, gt, [0, 0, 0]), ("crowd", dt, gt, [0, 1, 0]),
                              ("size_mismatch", dt[:2], [other_size], [0]),
                              ("no_detections", [], gt, [0, 0, 0]), ("no_ground_truth", dt, [], [])]:
        result = mask_utils.iou(d, g, crowd)
        expected = [[float(v) for v in row] for row in result] if len(result) else []  # [dt][gt]
        out.append({"name": name, "dt": d, "gt": g, "iscrowd": crowd, "expected": expected})
    return out


RAISING = [
    ("empty_list", []),
    ("box_like_polygon", [[1, 2, 3, 4]]),
    ("box_like_first_polygon", [[1, 2, 3, 4], [1, 1, 5, 1, 5, 5]]),
    ("short_first_polygon", [[1, 2, 3]]),
    ("five_points", [[1, 2], [1, 2], [1, 2], [1, 2], [1, 2]]),
    ("flat_list", [1, 2, 3, 4, 5, 6]),
    ("polygon_then_rle", [[1, 1, 5, 1, 5, 5], {"counts": [80], "size": [10, 8]}]),
    ("rle_then_polygon", [{"counts": [80], "size": [10, 8]}, [1, 1, 5, 1, 5, 5]]),
    ("rle_object_of_four_keys", [{"counts": [80], "size": [10, 8], "a": 1, "b": 2}]),
    ("compressed_in_list", [{"counts": "`2", "size": [10, 8]}]),
    ("rle_without_size", {"counts": [80]}),
    ("rle_without_counts", {"size": [10, 8]}),
    ("string", "abc"),
]


def raising_entries(coco):
    out = []
    coco.imgs[1] = {"id": 1, "height": 10, "width": 8}
    for name, seg in RAISING:
        try:
            coco.annToRLE({"image_id": 1, "segmentation": seg})
        except Exception as e:  # what pycocotools raises is the point here
            out.append({"name": name, "height": 10, "width": 8, "segmentation": seg,
                        "error": f"{type(e).__name__}: {e}"})
            continue
        raise AssertionError(f"{name}: pycocotools no longer raises")
    return out


def main():
    COCO, _ = import_pycocotools()
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(SEED)
    coco = COCO()
    segmentations = [segmentation_entry(coco, mask_utils, *case)
                     for case in polygon_cases(rng) + rle_cases(rng, mask_utils)]
    doc = {
        "about": "pycocotools (cocoapi 8c9bcc3) on COCO segmentations: COCO.annToRLE, decode, encode, area, "
                 "toBbox, frBbox, merge, iou; made by tests/reference/make_masks.py",
        "segmentations": segmentations,
        "boxes": box_entries(mask_utils),
        "merges": merge_entries(rng, mask_utils),
        "ious": iou_entries(rng, mask_utils),
        "raises": raising_entries(coco),
    }
    write_json(output_dir(sys.argv, "masks") / "cases.json", doc)


if __name__ == "__main__":
    main()
