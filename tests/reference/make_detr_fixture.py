#!/usr/bin/env python3
"""Model-parity golden data from upstream DETR: forward, matching, losses, gradients, post-processing.

Writes <out>/<name>/{config.json, expected.pth, state_dict_shapes.json} for each configuration below
(format: the fixtures README, detr/ section). The weights are not stored: config.json says
"weights_rule": "closed_form_v1" and both sides compute them (closed_form_weights.py).

    DETR_REPO=/path/to/detr python3 make_detr_fixture.py [out_dir]     # default: tests/data/detr
"""
import json
import os
import subprocess
import sys

import torch

import upstream
from common import import_pycocotools

TINY = dict(backbone="resnet18", dilation=False, position_embedding="sine", hidden_dim=64, nheads=4,
            enc_layers=2, dec_layers=2, dim_feedforward=128, num_queries=10, num_classes=4, dropout=0.0,
            pre_norm=False, aux_loss=True, set_cost_class=1, set_cost_bbox=5, set_cost_giou=2,
            bbox_loss_coef=5, giou_loss_coef=2, eos_coef=0.1)

CASES = {
    # upstream's architecture at a tiny size: sine positions, post-norm, auxiliary losses
    "tiny_r18": dict(TINY, image_sizes_hw=[[96, 128], [80, 112]], objects=[2, 3], seed=1),
    # the other branches: ResNet-34, learned positions, pre-norm, no auxiliary loss, batch of 3
    "tiny_r34_prenorm_learned": dict(TINY, backbone="resnet34", position_embedding="learned", pre_norm=True,
                                     aux_loss=False, num_queries=7, num_classes=6, dec_layers=3,
                                     image_sizes_hw=[[64, 96], [96, 64], [72, 72]], objects=[1, 4, 2], seed=2),
}
GRADS = ["transformer.encoder.layers.0.self_attn.in_proj_weight", "transformer.encoder.layers.0.linear1.weight",
         "transformer.decoder.layers.0.multihead_attn.out_proj.weight", "transformer.decoder.layers.0.norm2.weight",
         "transformer.decoder.norm.weight", "class_embed.weight", "class_embed.bias", "bbox_embed.layers.2.weight",
         "query_embed.weight", "input_proj.weight", "input_proj.bias", "backbone.0.body.layer2.0.conv1.weight",
         "backbone.0.body.layer4.0.downsample.0.weight", "backbone.0.body.layer3.0.downsample.0.weight"]
# DETRsegm (upstream --masks) at the smallest size its mask head allows: GroupNorm(8, c) needs
# hidden_dim + nheads and hidden_dim / 2, 4, 8, 16 to be multiples of 8, so hidden 128 with 8 heads.
SEGM_CASES = {
    "tiny_r18_segm": dict(TINY, hidden_dim=128, nheads=8, masks=True, freeze_detr=False, mask_loss_coef=2,
                          dice_loss_coef=1.5, image_sizes_hw=[[96, 128], [80, 112]], objects=[2, 3], seed=3),
}
SEGM_GRADS = ["detr.transformer.encoder.layers.0.linear1.weight", "detr.class_embed.weight",
              "detr.bbox_embed.layers.2.weight", "detr.query_embed.weight", "detr.input_proj.bias",
              "detr.backbone.0.body.layer2.0.downsample.0.weight", "detr.backbone.0.body.layer3.0.downsample.0.weight",
              "bbox_attention.q_linear.weight", "bbox_attention.k_linear.weight", "bbox_attention.k_linear.bias",
              "mask_head.lay1.bias", "mask_head.gn1.weight", "mask_head.lay2.bias", "mask_head.gn2.bias",
              "mask_head.lay3.weight", "mask_head.gn3.weight", "mask_head.lay4.weight", "mask_head.gn4.bias",
              "mask_head.lay5.weight", "mask_head.gn5.weight", "mask_head.out_lay.weight", "mask_head.out_lay.bias",
              "mask_head.adapter1.weight", "mask_head.adapter2.weight", "mask_head.adapter3.weight",
              "mask_head.adapter3.bias"]
SEGM_KEYS = ["masks", "freeze_detr", "mask_loss_coef", "dice_loss_coef"]
MODEL_KEYS = ["backbone", "dilation", "position_embedding", "hidden_dim", "nheads", "enc_layers", "dec_layers",
              "dim_feedforward", "num_queries", "num_classes", "dropout", "pre_norm", "aux_loss",
              "set_cost_class", "set_cost_bbox", "set_cost_giou", "bbox_loss_coef", "giou_loss_coef", "eos_coef"]


def make(name: str, case: dict, out: str) -> None:
    torch.manual_seed(0)
    model, criterion, postprocess = upstream.build(case)
    model.train()  # dropout 0; frozen BN makes train mode deterministic
    gen = torch.Generator().manual_seed(case["seed"])
    samples, targets = upstream.random_batch(gen, case["image_sizes_hw"], case["num_classes"], case["objects"])
    e = {"input.tensors": samples.tensors, "input.mask": samples.mask}
    with torch.no_grad():
        features, pos = model.backbone(samples)
        feature, mask = features[-1].decompose()
        e.update({"backbone.feature": feature, "backbone.mask": mask, "backbone.pos": pos[-1]})
    out_ = forward_and_losses(model, criterion, samples, targets, e)
    params = dict(model.named_parameters())
    for p in GRADS:
        e[f"grad.{p}"] = params[p].grad
    sizes = torch.tensor([[h + 7 * b, w + 3 * b] for b, (h, w) in enumerate(case["image_sizes_hw"])])
    e["postprocess.target_sizes"] = sizes
    for b, r in enumerate(postprocess(out_, sizes)):
        for k in ("scores", "labels", "boxes"):
            e[f"postprocess.{b}.{k}"] = r[k]
    e = {k: v.detach().clone().contiguous() for k, v in e.items()}

    config = {k: case[k] for k in MODEL_KEYS}
    config.update(weights_rule="closed_form_v1", image_sizes_hw=case["image_sizes_hw"],
                  model_mode="train (dropout 0)", weight_dict=criterion.weight_dict,
                  torch_version_of_reference=torch.__version__, upstream_commit=upstream_commit())
    write(os.path.join(out, name), config, e, upstream.state_dict_shapes(model))


def forward_and_losses(model, criterion, samples, targets, e: dict):
    """Upstream's forward, the targets, matching, loss dict and weighted total (backpropagated) into e."""
    out_ = model(samples)
    e["out.pred_logits"], e["out.pred_boxes"] = out_["pred_logits"], out_["pred_boxes"]
    if "pred_masks" in out_:
        e["out.pred_masks"] = out_["pred_masks"]
    for i, aux in enumerate(out_.get("aux_outputs", [])):
        e[f"aux.{i}.pred_logits"], e[f"aux.{i}.pred_boxes"] = aux["pred_logits"], aux["pred_boxes"]
    for b, t in enumerate(targets):
        e[f"target.{b}.boxes"], e[f"target.{b}.labels"] = t["boxes"], t["labels"]
        if "masks" in t:
            e[f"target.{b}.masks"] = t["masks"].to(torch.uint8)
    out_no_aux = {k: v for k, v in out_.items() if k != "aux_outputs"}
    for b, (src, tgt) in enumerate(criterion.matcher(out_no_aux, targets)):
        e[f"match.{b}.src"], e[f"match.{b}.tgt"] = src, tgt
    losses = criterion(out_, targets)
    for k, v in losses.items():
        e[f"loss.{k}"] = v
    total = sum(losses[k] * w for k, w in criterion.weight_dict.items() if k in losses)
    e["loss.total"] = total
    total.backward()
    return out_


def segm_postprocess(postprocess, out_, sizes_hw, e: dict) -> dict:
    """Upstream's evaluate(): PostProcess at the original sizes, then PostProcessSegm with the sizes fed
    to the model; each mask's pixel count into e, and its compressed RLE as datasets/coco_eval.py's
    prepare_for_coco_segmentation encodes it (returned per image)."""
    import numpy as np
    from models.segmentation import PostProcessSegm
    from pycocotools import mask as mask_util

    orig = torch.tensor([[h + 9 + 7 * b, w + 13 + 3 * b] for b, (h, w) in enumerate(sizes_hw)])
    max_sizes = torch.tensor(sizes_hw)
    e["postprocess.orig_target_sizes"], e["postprocess.max_target_sizes"] = orig, max_sizes
    results = PostProcessSegm()(postprocess(out_, orig), out_, orig, max_sizes)
    rle_counts = {}
    for b, r in enumerate(results):
        for k in ("scores", "labels", "boxes"):
            e[f"postprocess.{b}.{k}"] = r[k]
        e[f"postprocess.{b}.mask_area"] = r["masks"].flatten(1).sum(1).long()
        rle_counts[str(b)] = [mask_util.encode(np.array(m[0, :, :, np.newaxis], dtype=np.uint8, order="F"))[0]
                              ["counts"].decode("utf-8") for m in r["masks"]]
    return rle_counts


def segm_modules(model, gen: torch.Generator, e: dict) -> None:
    """MHAttentionMap and MaskHeadSmallConv alone on random unit-scale inputs (every query different,
    some keys padded; FPN levels at arbitrary small sizes): with the model's weights the decoder's
    queries are nearly alike, so its pred_masks barely tell queries apart, and these do."""
    q = torch.randn(2, model.detr.num_queries, model.bbox_attention.hidden_dim, generator=gen)
    k = torch.randn(2, model.bbox_attention.hidden_dim, 3, 4, generator=gen)
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    mask[1, 2:, :] = True
    mask[1, :, 3:] = True
    e.update({"module.bbox_attention.q": q, "module.bbox_attention.k": k, "module.bbox_attention.mask": mask,
              "module.bbox_attention.out": model.bbox_attention(q, k, mask=mask)})
    nheads = model.bbox_attention.num_heads
    x = torch.randn(2, model.bbox_attention.hidden_dim, 2, 3, generator=gen)
    bbox_mask = torch.rand(2, model.detr.num_queries, nheads, 2, 3, generator=gen)
    fpn_sizes = [(model.mask_head.adapter1.in_channels, 3, 4), (model.mask_head.adapter2.in_channels, 4, 5),
                 (model.mask_head.adapter3.in_channels, 5, 6)]
    fpns = [torch.randn(2, c, h, w, generator=gen) for c, h, w in fpn_sizes]
    e.update({"module.mask_head.x": x, "module.mask_head.bbox_mask": bbox_mask,
              "module.mask_head.out": model.mask_head(x, bbox_mask, fpns)})
    e.update({f"module.mask_head.fpn.{i}": f for i, f in enumerate(fpns)})


def make_segm(name: str, case: dict, out: str) -> None:
    """A DETRsegm fixture: the detr/ keys plus out.pred_masks, target.<b>.masks, loss_mask, loss_dice,
    head gradients and PostProcessSegm's masks (mask_area; RLE strings in config.json)."""
    torch.manual_seed(0)
    model, criterion, postprocess = upstream.build(case)
    model.train()
    gen = torch.Generator().manual_seed(case["seed"])
    samples, targets = upstream.random_batch(gen, case["image_sizes_hw"], case["num_classes"], case["objects"])
    polygons = upstream.polygon_masks(gen, targets, case["image_sizes_hw"])
    e = {"input.tensors": samples.tensors, "input.mask": samples.mask}
    with torch.no_grad():
        features, pos = model.detr.backbone(samples)
        feature, mask = features[-1].decompose()
        e.update({"backbone.feature": feature, "backbone.mask": mask, "backbone.pos": pos[-1]})
    out_ = forward_and_losses(model, criterion, samples, targets, e)
    params = dict(model.named_parameters())
    for p in SEGM_GRADS:
        e[f"grad.{p}"] = params[p].grad
    with torch.no_grad():
        rle_counts = segm_postprocess(postprocess, out_, case["image_sizes_hw"], e)
        segm_modules(model, gen, e)
    e = {k: v.detach().clone().contiguous() for k, v in e.items()}
    config = {k: case[k] for k in MODEL_KEYS + SEGM_KEYS}
    config.update(weights_rule="closed_form_v1", image_sizes_hw=case["image_sizes_hw"],
                  model_mode="train (dropout 0)", weight_dict=criterion.weight_dict,
                  torch_version_of_reference=torch.__version__, upstream_commit=upstream_commit(),
                  target_polygons=polygons, postprocess_threshold=0.5, postprocess_rle_counts=rle_counts)
    write(os.path.join(out, name), config, e, upstream.state_dict_shapes(model))


def write(d: str, config: dict, expected: dict, shapes: dict) -> None:
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    torch.save(expected, os.path.join(d, "expected.pth"))
    with open(os.path.join(d, "state_dict_shapes.json"), "w") as f:
        json.dump(shapes, f, indent=0)
    print(f"wrote {d}: {len(expected)} expected tensors, {len(shapes)} state_dict keys, "
          f"{os.path.getsize(os.path.join(d, 'expected.pth')) / 1e6:.2f} MB")


PINNED_COMMIT = "29901c51d7fe8712168b8d0d64351170bc0f83e0"


def upstream_commit() -> str:
    """The pinned commit; a git checkout at another commit is refused (an exported tree is trusted)."""
    repo = os.environ.get("DETR_REPO", "/tmp/detr")
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        print(f"note: {repo} is not a git checkout; taking it to be upstream at {PINNED_COMMIT}")
        return PINNED_COMMIT
    if head != PINNED_COMMIT:
        sys.exit(f"{repo} is at {head}, not the pinned upstream commit {PINNED_COMMIT}")
    return head


def r50_default_shapes(out: str) -> None:
    """Upstream's default model (ResNet-50, 91 classes): its state_dict keys and shapes only."""
    cfg = dict(TINY, backbone="resnet50", hidden_dim=256, nheads=8, enc_layers=6, dec_layers=6,
               dim_feedforward=2048, num_queries=100, num_classes=91, dropout=0.1)
    model, _, _ = upstream.build(cfg)
    d = os.path.join(out, "r50_default_keys")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "state_dict_shapes.json"), "w") as f:
        json.dump(upstream.state_dict_shapes(model), f, indent=0)
    print(f"wrote {d}/state_dict_shapes.json")


def r50_segm_shapes(out: str) -> None:
    """Upstream's DETRsegm on the default model (ResNet-50, 91 classes): its state_dict keys and shapes."""
    cfg = dict(TINY, backbone="resnet50", hidden_dim=256, nheads=8, enc_layers=6, dec_layers=6,
               dim_feedforward=2048, num_queries=100, num_classes=91, dropout=0.1, masks=True,
               mask_loss_coef=1, dice_loss_coef=1)
    model, _, _ = upstream.build(cfg)
    d = os.path.join(out, "r50_segm_keys")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "state_dict_shapes.json"), "w") as f:
        json.dump(upstream.state_dict_shapes(model), f, indent=0)
    print(f"wrote {d}/state_dict_shapes.json")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "detr")
    torch.set_num_threads(1)
    for name, case in CASES.items():
        make(name, case, out)
    r50_default_shapes(out)
    import_pycocotools()  # upstream's datasets/coco.py rasterises the segmentation fixtures' polygons
    for name, case in SEGM_CASES.items():
        make_segm(name, case, out)
    r50_segm_shapes(out)


if __name__ == "__main__":
    main()
