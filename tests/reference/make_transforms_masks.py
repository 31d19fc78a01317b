"""Golden cases for instance masks through upstream's transforms (datasets/transforms.h), computed by
upstream DETR's own datasets/transforms.py (crop, hflip, resize, pad, Normalize, RandomResize).

Usage: /usr/bin/python3 tests/reference/make_transforms_masks.py [OUT_DIR]
       (default tests/data/transforms_masks)
Needs the facebookresearch/detr checkout ($DETR_REPO; see README.md). Seeded and deterministic.

Writes cases.json and cases.pth in the format of the optional set's transforms_masks/ (one reader
serves both), with these additions:
- cases.json: per case `ops`, a list of {"op", "params"} applied in order (`crop` [top, left, height,
  width], `hflip` [], `resize` [size, max_size or null], `pad` [right, bottom], `normalize` [] (ToTensor
  + Normalize), `val` [val_size, max_size] (RandomResize([val_size], max_size) + Normalize)), `has_boxes`,
  `in_masks_dtype` / `out_masks_dtype`, and what the case is about (`note`).
- cases.pth: `<k>.in.labels|area|iscrowd`, `<k>.out.iscrowd`, and `<k>.out.size` where upstream sets
  it (not after hflip alone). Masks are stored in their own dtype (bool or uint8). `<k>.in.boxes` and
  `<k>.out.boxes` are absent from the cases without boxes, where the crop keeps objects by their masks.
"""
import importlib.util
import random
import sys

import torch
from PIL import Image

from common import add_detr_to_path, output_dir, report, write_json

SEED = 20241130


def import_transforms():
    """upstream datasets/transforms.py, without datasets/__init__.py (which needs pycocotools)."""
    repo = add_detr_to_path()
    spec = importlib.util.spec_from_file_location("upstream_transforms", repo / "datasets" / "transforms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blob(gen, h, w, box):
    """A bool mask [h, w]: an ellipse inside `box` (x0, y0, x1, y1), pixels by their centres."""
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
    scale = 0.7 + 0.3 * float(torch.rand(1, generator=gen))
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= scale


def random_box(gen, h, w):
    """xyxy inside the image with fractional corners, at least 1 x 1."""
    x0, y0 = float(torch.rand(1, generator=gen)) * (w - 2), float(torch.rand(1, generator=gen)) * (h - 2)
    bw = 1 + float(torch.rand(1, generator=gen)) * (w - 1 - x0)
    bh = 1 + float(torch.rand(1, generator=gen)) * (h - 1 - y0)
    return [round(x0, 2), round(y0, 2), round(x0 + bw, 2), round(y0 + bh, 2)]


def random_target(gen, h, w, n, masks_dtype=torch.bool, boxes=True):
    """n objects: boxes (xyxy float32), masks (an ellipse in each box), area (mask pixels, float32),
    labels (category ids) and iscrowd (0 or 1: upstream's crop needs the field)."""
    box_list = [random_box(gen, h, w) for _ in range(n)]
    masks = torch.zeros(0, h, w, dtype=torch.bool)
    if n:
        masks = torch.stack([blob(gen, h, w, b) for b in box_list])
    target = {"labels": torch.randint(1, 91, (n,), generator=gen), "masks": masks.to(masks_dtype),
              "area": masks.flatten(1).sum(1).to(torch.float32),
              "iscrowd": torch.randint(0, 2, (n,), generator=gen)}
    if boxes:
        target["boxes"] = torch.tensor(box_list, dtype=torch.float32).reshape(-1, 4)
    return target


def apply(T, image, target, ops):
    """Upstream's transforms, one op after the other."""
    normalize = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    for op in ops:
        name, p = op["op"], op["params"]
        if name == "crop":
            image, target = T.crop(image, target, p)
        elif name == "hflip":
            image, target = T.hflip(image, target)
        elif name == "resize":
            image, target = T.resize(image, target, p[0], p[1])
        elif name == "pad":
            image, target = T.pad(image, target, p)
        elif name == "normalize":
            image, target = normalize(image, target)
        elif name == "val":
            image, target = T.Compose([T.RandomResize([p[0]], max_size=p[1]), normalize])(image, target)
        else:
            raise ValueError(f"unknown op {name}")
    return image, target


def op(name, *params):
    return {"op": name, "params": list(params)}


def crop_cases(gen):
    """(note, image hw, target, ops)."""
    cases = []
    for i in range(3):
        t = random_target(gen, 40 + 7 * i, 52 - 5 * i, 3 + i)
        cases.append((f"crop, random objects {i}", (40 + 7 * i, 52 - 5 * i), t,
                      [op("crop", 5 + i, 9 - i, 21, 26)]))
    # Box overlaps the region, mask does not: kept (boxes decide), with an empty mask.
    t = random_target(gen, 30, 30, 1)
    t["boxes"] = torch.tensor([[2.0, 2.0, 20.0, 20.0]])
    t["masks"] = torch.zeros(1, 30, 30, dtype=torch.bool)
    t["masks"][0, 2:6, 2:6] = True
    t["area"] = torch.tensor([16.0])
    cases.append(("crop keeps an object by its box although its cropped mask is empty", (30, 30), t,
                  [op("crop", 10, 10, 12, 12)]))
    # Mask inside the region, box outside: dropped (boxes decide).
    t = random_target(gen, 30, 30, 2)
    t["boxes"] = torch.tensor([[0.0, 0.0, 4.0, 4.0], [12.0, 12.0, 18.0, 18.0]])
    t["masks"] = torch.zeros(2, 30, 30, dtype=torch.bool)
    t["masks"][0, 15:20, 15:20] = True
    t["masks"][1, 13:17, 13:17] = True
    cases.append(("crop drops an object by its box although its mask lies in the region", (30, 30), t,
                  [op("crop", 10, 10, 12, 12)]))
    t = random_target(gen, 36, 44, 4, boxes=False)
    cases.append(("crop without boxes: kept by masks.flatten(1).any(1), area kept", (36, 44), t,
                  [op("crop", 8, 6, 14, 20)]))
    cases.append(("crop of an image without objects", (20, 24), random_target(gen, 20, 24, 0),
                  [op("crop", 2, 3, 10, 12)]))
    cases.append(("crop that removes every object", (30, 40), random_target(gen, 30, 40, 3),
                  [op("crop", 29, 39, 1, 1)]))
    t = random_target(gen, 32, 28, 3, masks_dtype=torch.uint8)
    cases.append(("crop of uint8 masks", (32, 28), t, [op("crop", 4, 4, 20, 17)]))
    return cases


def flip_pad_cases(gen):
    return [
        ("hflip", (26, 35), random_target(gen, 26, 35, 3), [op("hflip")]),
        ("hflip of uint8 masks", (19, 30), random_target(gen, 19, 30, 2, masks_dtype=torch.uint8),
         [op("hflip")]),
        ("hflip without boxes", (21, 17), random_target(gen, 21, 17, 2, boxes=False), [op("hflip")]),
        ("pad right and bottom", (24, 31), random_target(gen, 24, 31, 3), [op("pad", 7, 5)]),
        ("pad of uint8 masks, bottom only", (18, 22), random_target(gen, 18, 22, 2, masks_dtype=torch.uint8),
         [op("pad", 0, 9)]),
    ]


def resize_cases(gen):
    cases = []
    add = lambda note, hw, n, ops, **kw: cases.append((note, hw, random_target(gen, *hw, n, **kw), ops))
    add("resize down, non-integer ratio", (57, 43), 3, [op("resize", 29, None)])
    add("resize up, non-integer ratio", (23, 31), 3, [op("resize", 50, None)])
    add("resize up exactly 2x", (20, 26), 2, [op("resize", 40, None)])
    add("resize up exactly 3x", (9, 14), 2, [op("resize", 27, None)])
    add("resize to the same size (identity)", (30, 41), 2, [op("resize", 30, None)])
    add("resize capped by max_size", (24, 60), 3, [op("resize", 40, 70)])
    add("resize of a panorama capped by max_size", (10, 200), 3, [op("resize", 40, 133)])
    add("resize of a tall image", (90, 12), 2, [op("resize", 17, None)])
    add("resize without objects", (25, 30), 0, [op("resize", 37, None)])
    add("resize of uint8 masks (bool out)", (33, 21), 3, [op("resize", 45, 60)], masks_dtype=torch.uint8)
    add("resize without boxes", (28, 35), 2, [op("resize", 19, None)], boxes=False)
    return cases


def pipeline_cases(gen):
    """The training branches and the validation transform with their random choices made explicit."""
    cases = []
    add = lambda note, hw, n, ops, **kw: cases.append((note, hw, random_target(gen, *hw, n, **kw), ops))
    add("train, resize branch: hflip, RandomResize(scales, max_size), Normalize", (48, 64), 4,
        [op("hflip"), op("resize", 56, 90), op("normalize")])
    add("train, crop branch: RandomResize(crop_resize), RandomSizeCrop, RandomResize(scales, max_size), "
        "Normalize", (44, 70), 5, [op("resize", 36, None), op("crop", 3, 11, 27, 33), op("resize", 48, 80),
                                   op("normalize")])
    add("train, crop branch with hflip and uint8 masks", (60, 45), 4,
        [op("hflip"), op("resize", 40, None), op("crop", 10, 5, 35, 30), op("resize", 52, 72),
         op("normalize")],
        masks_dtype=torch.uint8)
    add("val: RandomResize([val_size], max_size), Normalize", (38, 50), 3, [op("val", 64, 100)])
    add("val of a panorama", (12, 150), 2, [op("val", 48, 80)])
    return cases


def image_of(gen, h, w):
    pixels = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def record(store, k, side, target):
    for key in ("boxes", "labels", "masks", "area", "iscrowd", "size"):
        if key in target and not (side == "in" and key == "size"):
            store[f"{k}.{side}.{key}"] = target[key].clone()


def checked_masks_dtype(k, image, t_out):
    """The dtype of upstream's output masks, after checking they match the image and the objects."""
    masks = t_out["masks"]
    hw = list(image.shape[-2:]) if torch.is_tensor(image) else [image.height, image.width]
    assert masks.dim() == 3 and list(masks.shape[1:]) == hw, (k, masks.shape, hw)
    assert masks.shape[0] == t_out["labels"].shape[0], k
    return masks.dtype


def main():
    T = import_transforms()
    gen = torch.Generator().manual_seed(SEED)
    random.seed(SEED)
    cases = crop_cases(gen) + flip_pad_cases(gen) + resize_cases(gen) + pipeline_cases(gen)
    store, docs = {}, []
    for k, (note, (h, w), target, ops) in enumerate(cases):
        record(store, k, "in", target)
        image, out = apply(T, image_of(gen, h, w), {key: v.clone() for key, v in target.items()}, ops)
        out_dtype = checked_masks_dtype(k, image, out)
        record(store, k, "out", out)
        docs.append({"case": k, "note": note, "ops": ops, "image_hw": [h, w], "has_boxes": "boxes" in target,
                     "n_in": int(target["labels"].shape[0]), "n_out": int(out["labels"].shape[0]),
                     "in_masks_dtype": str(target["masks"].dtype).replace("torch.", ""),
                     "out_masks_dtype": str(out_dtype).replace("torch.", "")})
    out_dir = output_dir(sys.argv, "transforms_masks")
    write_json(out_dir / "cases.json", {
        "about": "upstream datasets/transforms.py (detr 29901c5) crop/hflip/resize/pad/Normalize/RandomResize "
                 "on targets with masks; made by tests/reference/make_transforms_masks.py",
        "cases": docs}, indent=1)
    torch.save(store, out_dir / "cases.pth")
    report(out_dir / "cases.pth")


if __name__ == "__main__":
    main()
