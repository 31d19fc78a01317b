#!/usr/bin/env python3
"""Optimizer-replay golden data: K training steps exactly as upstream's main.py / engine.py take them.

AdamW over upstream's two parameter groups (backbone at lr_backbone), weight decay,
clip_grad_norm_ over all parameters, StepLR stepped every steps_per_epoch steps. Writes
<out>/<name>/{config.json, batches.pth, expected.pth} (format: the fixtures README, train_steps/
section). The initial weights are not stored: config.json says "weights_rule": "closed_form_v1".

    DETR_REPO=/path/to/detr python3 make_train_steps.py [out_dir]      # default: tests/data/train_steps
"""
import json
import os
import sys

import torch

import upstream
from make_detr_fixture import MODEL_KEYS, TINY, upstream_commit

CASES = {
    "tiny_r18": dict(TINY, lr=1e-4, lr_backbone=1e-5, weight_decay=1e-4, clip_max_norm=0.1, lr_drop=2,
                     steps_per_epoch=2, steps=6, batches=[([[96, 128], [80, 112]], [1, 2]),
                                                          ([[112, 96], [96, 96]], [2, 3])], seed=3),
}
FINAL = ["class_embed.weight", "query_embed.weight", "bbox_embed.layers.2.bias",
         "transformer.decoder.layers.1.linear2.weight", "backbone.0.body.layer3.0.downsample.0.weight"]
TRAIN_KEYS = ["lr", "lr_backbone", "weight_decay", "clip_max_norm", "lr_drop", "steps_per_epoch", "steps"]


def optimizer_for(model, c):
    """upstream main.py's parameter groups, AdamW and StepLR."""
    groups = [{"params": [p for n, p in model.named_parameters() if "backbone" not in n and p.requires_grad]},
              {"params": [p for n, p in model.named_parameters() if "backbone" in n and p.requires_grad],
               "lr": c["lr_backbone"]}]
    opt = torch.optim.AdamW(groups, lr=c["lr"], weight_decay=c["weight_decay"])
    return opt, torch.optim.lr_scheduler.StepLR(opt, c["lr_drop"])


def make(name: str, c: dict, out: str) -> None:
    torch.manual_seed(0)
    model, criterion, _ = upstream.build(c)
    opt, sched = optimizer_for(model, c)
    gen = torch.Generator().manual_seed(c["seed"])
    batches, saved = [], {}
    for k, (sizes, objects) in enumerate(c["batches"]):
        samples, targets = upstream.random_batch(gen, sizes, c["num_classes"], objects)
        batches.append((samples, targets))
        saved[f"batch.{k}.tensors"], saved[f"batch.{k}.mask"] = samples.tensors, samples.mask
        for b, t in enumerate(targets):
            saved[f"batch.{k}.target.{b}.boxes"], saved[f"batch.{k}.target.{b}.labels"] = t["boxes"], t["labels"]
    e = {}
    for s in range(c["steps"]):
        samples, targets = batches[s % len(batches)]
        model.train()
        criterion.train()
        losses = criterion(model(samples), targets)
        total = sum(losses[k] * w for k, w in criterion.weight_dict.items() if k in losses)
        opt.zero_grad()
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip_max_norm"])
        e[f"step.{s}.lr"] = torch.tensor(opt.param_groups[0]["lr"], dtype=torch.float64)
        e[f"step.{s}.loss"], e[f"step.{s}.grad_norm"] = total.detach(), norm.detach()
        opt.step()
        if (s + 1) % c["steps_per_epoch"] == 0:
            sched.step()
    params = dict(model.named_parameters())
    for p in FINAL:
        e[f"final.{p}"] = params[p].detach().clone()
    e["final.param_sum"] = sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad)

    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    config = {k: c[k] for k in MODEL_KEYS + TRAIN_KEYS}
    config.update(weights_rule="closed_form_v1", torch_version_of_reference=torch.__version__,
                  upstream_commit=upstream_commit())
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    torch.save({k: v.contiguous() for k, v in saved.items()}, os.path.join(d, "batches.pth"))
    torch.save(e, os.path.join(d, "expected.pth"))
    print(f"wrote {d}: {c['steps']} steps, losses {[round(float(e[f'step.{s}.loss']), 4) for s in range(c['steps'])]}")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "train_steps")
    torch.set_num_threads(1)
    for name, c in CASES.items():
        make(name, c, out)


if __name__ == "__main__":
    main()
