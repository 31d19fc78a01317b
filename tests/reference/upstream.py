"""Builds upstream DETR (facebookresearch/detr, imported from a checkout) from a fixture's config.json.

The checkout is found at $DETR_REPO (default /tmp/detr); nothing of it is copied here.
"""
import argparse
import math
import os
import sys

import torch

import closed_form_weights


def import_upstream():
    repo = os.environ.get("DETR_REPO", "/tmp/detr")
    if not os.path.isfile(os.path.join(repo, "models", "detr.py")):
        sys.exit(f"upstream DETR checkout not found at {repo} (set DETR_REPO)")
    sys.path.insert(0, repo)
    import models.backbone as backbone  # noqa: E402  (upstream's package)
    backbone.is_main_process = lambda: False  # no ImageNet download: the weights come from the rule
    return repo


def args_from(config: dict) -> argparse.Namespace:
    a = dict(lr_backbone=config.get("lr_backbone", 1e-5), masks=False, frozen_weights=None)
    a.update(config)
    return argparse.Namespace(**a)


def build(config: dict):
    """(model, criterion, postprocessor) as upstream's models/detr.py builds them, num_classes from config.
    With "masks": true the model is DETRsegm (freeze_detr from config) and the criterion adds "masks"."""
    import_upstream()
    from models.backbone import build_backbone
    from models.detr import DETR, PostProcess, SetCriterion
    from models.matcher import build_matcher
    from models.transformer import build_transformer

    args = args_from(config)
    model = DETR(build_backbone(args), build_transformer(args), num_classes=args.num_classes,
                 num_queries=args.num_queries, aux_loss=args.aux_loss)
    losses = ["labels", "boxes", "cardinality"]
    if args.masks:
        from models.segmentation import DETRsegm, MaskHeadSmallConv
        model = DETRsegm(model, freeze_detr=config.get("freeze_detr", False))
        if args.backbone in ("resnet18", "resnet34"):
            # Upstream hard-codes the FPN widths of ResNet-50/101 (layer3, layer2, layer1: 1024, 512,
            # 256); BasicBlock ResNets have a quarter of them. Same module, widths of this backbone.
            hidden_dim, nheads = model.detr.transformer.d_model, model.detr.transformer.nhead
            model.mask_head = MaskHeadSmallConv(hidden_dim + nheads, [256, 128, 64], hidden_dim)
        losses.append("masks")
    closed_form_weights.apply(model)
    criterion = SetCriterion(args.num_classes, matcher=build_matcher(args), weight_dict=weight_dict(args),
                             eos_coef=args.eos_coef, losses=losses)
    return model, criterion, PostProcess()


def weight_dict(args) -> dict:
    w = {"loss_ce": 1, "loss_bbox": args.bbox_loss_coef, "loss_giou": args.giou_loss_coef}
    if args.masks:
        w.update(loss_mask=args.mask_loss_coef, loss_dice=args.dice_loss_coef)
    if args.aux_loss:
        w.update({f"{k}_{i}": v for i in range(args.dec_layers - 1) for k, v in list(w.items())})
    return w


def random_batch(gen: torch.Generator, sizes_hw, num_classes: int, objects):
    """A padded batch (upstream's NestedTensor layout: zeros and mask True on padding) of normalised
    random images, and targets with random boxes (normalised cxcywh) and labels."""
    from util.misc import nested_tensor_from_tensor_list

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    images = [(torch.rand(3, h, w, generator=gen) - mean) / std for h, w in sizes_hw]
    targets = []
    for n in objects:
        cxcy = 0.25 + 0.5 * torch.rand(n, 2, generator=gen)
        wh = 0.1 + 0.3 * torch.rand(n, 2, generator=gen)
        labels = torch.randint(0, num_classes, (n,), generator=gen)
        targets.append({"boxes": torch.cat([cxcy, wh], 1), "labels": labels})
    return nested_tensor_from_tensor_list(images), targets


def polygon_masks(gen: torch.Generator, targets, sizes_hw):
    """Adds "masks" [n, h, w] to each target: a random star-shaped polygon (5 to 8 vertices) inside each
    box, rasterised by upstream's datasets/coco.py (pycocotools' frPyObjects + decode). Returns the
    polygons, [image][object] -> [[x0, y0, x1, y1, ...]] in pixels."""
    from datasets.coco import convert_coco_poly_to_mask

    all_polygons = []
    for t, (h, w) in zip(targets, sizes_hw):
        polygons = []
        for cx, cy, bw, bh in t["boxes"].tolist():
            k = int(torch.randint(5, 9, (1,), generator=gen))
            angles = torch.sort(torch.rand(k, generator=gen) * 2 * math.pi).values
            radii = 0.5 + 0.5 * torch.rand(k, generator=gen)
            xs = (cx + 0.5 * bw * radii * torch.cos(angles)) * w
            ys = (cy + 0.5 * bh * radii * torch.sin(angles)) * h
            polygons.append([torch.stack([xs, ys], 1).flatten().double().tolist()])
        t["masks"] = convert_coco_poly_to_mask(polygons, h, w)
        all_polygons.append(polygons)
    return all_polygons


def state_dict_shapes(model) -> dict:
    return {k: list(v.shape) for k, v in model.state_dict().items()}
