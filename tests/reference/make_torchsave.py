"""Golden torch.save files, written by PyTorch itself, in the shape of upstream DETR's checkpoints.

Writes (format: tests/reference/README.md, "torchsave/"):
  detr_style_zip.pth     {'model', 'optimizer', 'lr_scheduler', 'epoch': 11, 'args'} as main.py of
                         facebookresearch/detr saves it: args from its own argument parser (an
                         argparse.Namespace), optimizer and lr_scheduler state dicts from torch.optim.AdamW
                         and StepLR set up as main.py does and stepped 12 times
  detr_style_legacy.pth  the same, with _use_new_zipfile_serialization=False (the pre-1.6 format)
  plain_state_dict.pth   the model alone, as a plain dict
  expected.json          each model tensor's dtype, shape, sum, abs-sum and first element
The model is an OrderedDict with _metadata, holding float32, float16, bfloat16, float64, int64 and bool
tensors, a 0-dim and an empty one, a view with a storage offset and a transposed (non-contiguous) view
of the same storage.

Usage: /usr/bin/python3 tests/reference/make_torchsave.py [OUT_DIR]   (default tests/data/torchsave)
Needs the facebookresearch/detr checkout ($DETR_REPO, default /tmp/detr) and pycocotools (which its
main.py imports; $COCOAPI_REPO, default /tmp/cocoapi).
"""
import sys
from collections import OrderedDict

import torch

from common import add_detr_to_path, import_pycocotools, output_dir, quiet, report, write_json

SEED = 11
EPOCH = 11
STEPS = 12


def upstream_args():
    """The argparse.Namespace upstream's main.py saves: its parser's defaults plus a dataset path,
    after init_distributed_mode (which adds `distributed`)."""
    import_pycocotools()
    add_detr_to_path()
    import main as detr_main
    import util.misc as utils

    args = detr_main.get_args_parser().parse_args(["--coco_path", "/data/coco", "--output_dir", "outputs"])
    with quiet():
        utils.init_distributed_mode(args)
    return args


def model_state():
    """A DETR-named state dict covering the dtypes and tensor layouts the reader must handle."""
    g = torch.Generator().manual_seed(SEED)
    base = torch.randn(6, 8, generator=g)
    state = OrderedDict()
    state["backbone.0.body.conv1.weight"] = torch.randn(4, 3, 7, 7, generator=g)
    state["backbone.0.body.bn1.running_var"] = torch.rand(4, generator=g) + 0.5
    state["transformer.encoder.layers.0.self_attn.in_proj_weight"] = base
    state["transformer.encoder.layers.0.self_attn.out_proj.weight"] = base.view(-1)[16:32].view(2, 8)  # offset 16
    state["transformer.decoder.norm.weight"] = base.t()  # strides (1, 8)
    state["class_embed.weight"] = torch.randn(5, 8, generator=g).to(torch.float16)
    state["class_embed.bias"] = torch.randn(5, generator=g).to(torch.bfloat16)
    state["query_embed.weight"] = torch.randn(3, 8, generator=g, dtype=torch.float64)
    state["input_proj.bias"] = torch.tensor(1.5)
    state["empty"] = torch.zeros(0, 4)
    state["counter"] = torch.tensor([7, -2, 1 << 40])
    state["flags"] = torch.tensor([True, False, True])
    state._metadata = OrderedDict([("", {"version": 1})])
    return state


def optimizer_and_scheduler(args):
    """AdamW with main.py's two parameter groups (the second at lr_backbone) and StepLR(lr_drop),
    after STEPS steps in which only the first parameter had a gradient."""
    g = torch.Generator().manual_seed(SEED + 1)
    head = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    backbone = [torch.nn.Parameter(torch.randn(3, generator=g)), torch.nn.Parameter(torch.randn(2, generator=g))]
    param_dicts = [{"params": [head]}, {"params": backbone, "lr": args.lr_backbone}]
    optimizer = torch.optim.AdamW(param_dicts, lr=args.lr, weight_decay=args.weight_decay)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_drop)
    for _ in range(STEPS):
        optimizer.zero_grad()
        (head ** 2).sum().backward()
        optimizer.step()
        lr_scheduler.step()
    return optimizer.state_dict(), lr_scheduler.state_dict()


def describe(tensor):
    """expected.json's entry for one tensor."""
    d = tensor.to(torch.float64)
    return {
        "dtype": str(tensor.dtype).replace("torch.", ""),
        "shape": list(tensor.shape),
        "sum": d.sum().item(),
        "abs_sum": d.abs().sum().item(),
        "first": d.reshape(-1)[0].item() if tensor.numel() else None,
    }


def main():
    out = output_dir(sys.argv, "torchsave")
    args = upstream_args()
    model = model_state()
    optimizer, lr_scheduler = optimizer_and_scheduler(args)
    checkpoint = {"model": model, "optimizer": optimizer, "lr_scheduler": lr_scheduler, "epoch": EPOCH,
                  "args": args}

    torch.save(checkpoint, out / "detr_style_zip.pth")
    report(out / "detr_style_zip.pth")
    torch.save(checkpoint, out / "detr_style_legacy.pth", _use_new_zipfile_serialization=False)
    report(out / "detr_style_legacy.pth")
    torch.save(dict(model), out / "plain_state_dict.pth")
    report(out / "plain_state_dict.pth")

    expected = {"epoch": EPOCH, "args.lr": args.lr, "args.backbone": args.backbone,
                "model": {name: describe(t) for name, t in model.items()}}
    write_json(out / "expected.json", expected, indent=1)


if __name__ == "__main__":
    main()
