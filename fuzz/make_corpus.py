#!/usr/bin/env python3
"""Hand-made seeds for the fuzz corpora (fuzz/corpus/{torch_save,coco}), without PyTorch.

torch_save/: small torch.save files in both formats written the way torch.save writes them, with a
stand-in `torch` module (the pickles only name torch's classes and functions): zip (little- and
big-endian, a deflated record, protocols 2 and 5), legacy (protocols 1, 2 and 4, a storage view, a
shared storage), lists shared through the memo, and malformed ones (empty, truncated, a plain pickle). The committed golden files
(tests/data/torchsave/*.pth) are copied beside them.
coco/: minimal annotation files for the image folder fuzz_coco.cpp creates (a.png 64x48, b.jpg
32x24, sub/c.gif 10x10, huge.png, junk.jpg), valid and broken, and a few tests/data/cocoeval files.

Usage: python3 fuzz/make_corpus.py   (rewrites fuzz/corpus/ in place; deterministic)
"""
import io
import json
import pickle
import shutil
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"

# ---- a stand-in torch: just enough names for pickle to reference -----------------------------------
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils
torch._utils = torch_utils


def _storage_class(name, fmt):
    cls = type(name, (), {"__module__": "torch", "fmt": fmt})
    setattr(torch, name, cls)
    return cls


FloatStorage = _storage_class("FloatStorage", "f")
DoubleStorage = _storage_class("DoubleStorage", "d")
LongStorage = _storage_class("LongStorage", "q")
HalfStorage = _storage_class("HalfStorage", "e")
BoolStorage = _storage_class("BoolStorage", "?")
ByteStorage = _storage_class("ByteStorage", "B")


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    """A storage: its class, key and values (+ an optional legacy view (key, offset, size))."""

    def __init__(self, cls, key, values, view=None):
        self.cls, self.key, self.values, self.view = cls, key, values, view

    def data(self, byteorder="<"):
        return struct.pack(byteorder + self.cls.fmt * len(self.values), *self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce_ex__(self, protocol):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, OrderedDict()))


def contiguous(storage, size):
    stride, s = [], 1
    for d in reversed(size):
        stride.insert(0, s)
        s *= d
    return Tensor(storage, 0, size, stride)


class Pickler(pickle.Pickler):
    def __init__(self, f, protocol, legacy):
        super().__init__(f, protocol=protocol)
        self.legacy = legacy
        self.storages = OrderedDict()

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        self.storages.setdefault(obj.key, obj)
        pid = ("storage", obj.cls, obj.key, "cpu", len(obj.values))
        if self.legacy:
            pid += (obj.view,)
        return pid


# ---- torch.save's two formats ----------------------------------------------------------------------
def zip_format(obj, protocol=2, byteorder="little", deflate=(), name="archive"):
    pkl = io.BytesIO()
    p = Pickler(pkl, protocol, legacy=False)
    p.dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        def add(record, data):
            method = zipfile.ZIP_DEFLATED if record in deflate else zipfile.ZIP_STORED
            z.writestr(zipfile.ZipInfo(f"{name}/{record}"), data, compress_type=method)

        add("data.pkl", pkl.getvalue())
        add("byteorder", byteorder)
        for key, s in p.storages.items():
            add(f"data/{key}", s.data("<" if byteorder == "little" else ">"))
        add("version", "3\n")
    return out.getvalue()


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def legacy_format(obj, protocol=2):
    f = io.BytesIO()
    pickle.dump(LEGACY_MAGIC, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
                f, protocol=2)
    p = Pickler(f, protocol, legacy=True)
    p.dump(obj)
    pickle.dump(list(p.storages), f, protocol=2)
    for s in p.storages.values():
        f.write(struct.pack("<q", len(s.values)))
        f.write(s.data())
    return f.getvalue()


# ---- seeds -----------------------------------------------------------------------------------------
def torch_save_seeds():
    w = Storage(FloatStorage, "0", [0.5 * i for i in range(6)])
    counts = Storage(LongStorage, "1", [7, -2, 1 << 40])
    half = Storage(HalfStorage, "2", [1.0, -2.5, 65504.0])
    flags = Storage(BoolStorage, "3", [True, False])
    state = OrderedDict()
    state["weight"] = contiguous(w, (2, 3))
    state["weight_t"] = Tensor(w, 0, (3, 2), (1, 3))  # a transposed view of the same storage
    state["row"] = Tensor(w, 3, (3,), (1,))           # an offset view
    state["scalar"] = Tensor(w, 5, (), ())
    state["counts"] = contiguous(counts, (3,))
    state["half"] = contiguous(half, (3,))
    state["flags"] = contiguous(flags, (2,))
    checkpoint = {"model": state, "epoch": 3, "lr": 1e-4, "name": "detr", "raw": b"\x00\xff",
                  "nested": [1, (2.5, None, True), {"k": [False]}], "big": 1 << 70}
    seeds = {
        "zip_checkpoint.pth": zip_format(checkpoint),
        "zip_proto5.pth": zip_format(checkpoint, protocol=5, name="model"),
        "zip_big_endian.pth": zip_format({"x": contiguous(Storage(DoubleStorage, "0", [1.0, -0.25]), (2,))},
                                         byteorder="big"),
        "zip_deflated.pth": zip_format(state, deflate=("data.pkl", "data/0")),
        "legacy_proto2.pth": legacy_format(checkpoint),
        "legacy_proto1.pth": legacy_format({"a": contiguous(Storage(ByteStorage, "0", [1, 2, 3]), (3,))}, protocol=1),
        "legacy_proto4.pth": legacy_format(checkpoint, protocol=4),
        "legacy_view.pth": legacy_format({"v": contiguous(Storage(FloatStorage, "0", [1.0] * 6, view=("5", 2, 3)), (3,))}),
        "empty": b"",
        "plain_pickle.pkl": pickle.dumps({"a": [1, 2.0, "three"]}, protocol=2),
        "zip_magic_only": b"PK\x03\x04",
    }
    shared = [1.5]
    for _ in range(12):  # memo references: 13 levels of one list shared twice (4096 paths, 13 lists)
        shared = [shared, shared]
    seeds["zip_shared_lists.pth"] = zip_format({"shared": shared, "t": contiguous(w, (6,))})
    seeds["zip_truncated.pth"] = seeds["zip_checkpoint.pth"][:600]
    seeds["legacy_truncated.pth"] = seeds["legacy_proto2.pth"][:-5]
    return seeds


def coco_seeds():
    def dump(d):
        return json.dumps(d).encode()

    good = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
            {"id": 2, "file_name": "sub/c.gif", "width": 10, "height": 10},
            {"id": 3, "file_name": "C:/annotator/home/b.jpg", "width": 32, "height": 24},
            {"id": 4, "file_name": "junk.jpg", "width": 5, "height": 5},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 20], "area": 200, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 100, 100], "iscrowd": 1},
            {"id": 3, "image_id": 3, "category_id": 1, "bbox": [40.5, 30, 0, 5.25]},
            {"id": 4, "image_id": 1, "category_id": 3, "bbox": [-5, -5, 1e30, 3], "area": None, "iscrowd": True},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog, \"big\""}],
    }
    bad = json.loads(json.dumps(good))
    bad["images"].append({"id": 5.0, "file_name": "huge.png", "width": 100000, "height": 100000})
    bad["images"].append({"id": 6, "file_name": "../b.jpg", "width": 33, "height": 24})
    bad["annotations"].append({"id": 5, "image_id": 6, "category_id": 1, "bbox": [1, 1, -2, 3]})
    return {
        "minimal.json": dump(good),
        "bad_images.json": dump(bad),
        "upstream_info.json": dump({"info": {"year": 2017}, "licenses": [], **good}),
        "sparse_ids.json": dump({"images": good["images"][:1], "annotations": [],
                                 "categories": [{"id": 99999, "name": "x"}, {"id": 0, "name": "bg"}]}),
        "wrong_types.json": dump({"images": {"id": 1}, "categories": [{"id": "1", "name": 2}]}),
        "not_object.json": b"[1, 2, 3]",
        "truncated.json": dump(good)[:150],
        "empty.json": b"",
    }


def write(dir_, files):
    dir_.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (dir_ / name).write_bytes(data)


def main():
    for p in OUT.rglob("*"):  # regenerated; regress_* (inputs fuzzing found) stay
        if p.is_file() and not p.name.startswith("regress_"):
            p.unlink()
    write(OUT / "torch_save", torch_save_seeds())
    for p in sorted((ROOT / "tests" / "data" / "torchsave").glob("*.pth")):
        shutil.copy(p, OUT / "torch_save" / p.name)
    write(OUT / "coco", coco_seeds())
    for case in ("case_00", "case_03", "case_07"):
        shutil.copy(ROOT / "tests" / "data" / "cocoeval" / case / "gt.json", OUT / "coco" / f"cocoeval_{case}.json")
    shutil.copy(ROOT / "tests" / "data" / "cocoeval_segm" / "case_04" / "gt.json", OUT / "coco" / "cocoeval_segm_case_04.json")
    for p in sorted((ROOT / "fuzz" / "seeds" / "coco").glob("*.json")):  # hand-written segmentation seeds
        shutil.copy(p, OUT / "coco" / p.name)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{OUT}: {sum(1 for p in OUT.rglob('*') if p.is_file())} files, {total} bytes")


if __name__ == "__main__":
    main()
