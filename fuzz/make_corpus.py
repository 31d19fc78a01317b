#!/usr/bin/env python3
"""Hand-made seeds for the fuzz corpora (fuzz/corpus/{torch_save,coco,formats,serve_request}), without PyTorch.

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


# ---- formats/ and serve_request/ ---------------------------------------------------------------------
# fuzz_formats.cpp: the first byte picks the format (0 VOC, 1 LabelMe, 2 CVAT XML, 3 Datumaro, 4 YOLO
# label file, 5 MOT gt.txt, 6 TFRecord, 7 YOLO names, 8 Ultralytics label file, 9 Ultralytics data.yaml,
# 10 KITTI label file, 11 CreateML JSON, 12 Open Images boxes CSV);
# the rest is that format's annotation file.

def _crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data):
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _tfrecord(payload):
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", _masked_crc(length)) + payload + struct.pack("<I", _masked_crc(payload))


def _pb_bytes_feature(key, values):
    def field(num, data):
        return _varint(num << 3 | 2) + _varint(len(data)) + data
    bytes_list = b"".join(field(1, v) for v in values)
    feature = field(1, bytes_list)
    return field(1, field(1, key.encode()) + field(2, feature))


def _pb_float_feature(key, values):
    def field(num, data):
        return _varint(num << 3 | 2) + _varint(len(data)) + data
    packed = struct.pack("<%df" % len(values), *values)
    feature = field(2, field(1, packed))
    return field(1, field(1, key.encode()) + field(2, feature))


def _varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _example(features):
    body = b"".join(features)
    return _varint(1 << 3 | 2) + _varint(len(body)) + body  # Example.features


def formats_seeds():
    voc = (b"<annotation><filename>a.jpg</filename><size><width>64</width><height>48</height><depth>3</depth>"
           b"</size><object><name>cat</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>2</ymin>"
           b"<xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>")
    labelme = (b"<annotation><filename>a.jpg</filename><folder>default</folder><imagesize><nrows>48</nrows>"
               b"<ncols>64</ncols></imagesize><object><name>cat</name><deleted>0</deleted><type>bounding_box"
               b"</type><polygon><pt><x>1</x><y>2</y></pt><pt><x>30</x><y>2</y></pt><pt><x>30</x><y>40</y></pt>"
               b"<pt><x>1</x><y>40</y></pt></polygon></object><object><name>dog</name><deleted>0</deleted>"
               b"<polygon><pt><x>5</x><y>5</y></pt><pt><x>20</x><y>8</y></pt><pt><x>9</x><y>30</y></pt>"
               b"</polygon></object></annotation>")
    cvat = (b"<annotations><version>1.1</version><meta><task><labels><label><name>cat</name></label><label>"
            b"<name>dog</name></label></labels></task></meta><image id=\"0\" name=\"a.jpg\" width=\"64\" "
            b"height=\"48\"><box label=\"cat\" xtl=\"1\" ytl=\"2\" xbr=\"30\" ybr=\"40\" occluded=\"0\"/>"
            b"<polygon label=\"dog\" points=\"5,5;20,8;9,30\"/><mask label=\"dog\" rle=\"3, 4, 2\" left=\"2\" "
            b"top=\"3\" width=\"3\" height=\"3\"/></image><track id=\"0\" label=\"cat\"><box frame=\"0\" "
            b"outside=\"0\" xtl=\"1\" ytl=\"1\" xbr=\"9\" ybr=\"9\"/></track></annotations>")
    datumaro = json.dumps({
        "categories": {"label": {"labels": [{"name": "cat"}, {"name": "dog"}]}},
        "items": [{"id": "a", "image": {"path": "a.jpg", "size": [48, 64]}, "annotations": [
            {"type": "bbox", "label_id": 0, "bbox": [1, 2, 29, 38]},
            {"type": "polygon", "label_id": 1, "points": [5, 5, 20, 8, 9, 30]},
            {"type": "mask", "label_id": 1, "rle": {"counts": "Xo0b1Vo1", "size": [48, 64]}}]}]}).encode()
    yolo = b"0 0.25 0.5 0.2 0.3\n1 0.75 0.5 0.1 0.1\n"
    ultralytics = (b"0 0.25 0.5 0.2 0.3\n1 0.1 0.1 0.4 0.1 0.4 0.5\n"
                   b"1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n")  # a box, a triangle, an oriented box
    ultralytics_yaml = (b"# a comment\npath: .\ntrain:\n  - images/train  # a folder\nval: [images/train]\n"
                        b"nc: 2\nnames: ['cat', \"dog\"]\nkpt_shape: [3, 2]\nroboflow:\n  version: 2\n")
    mot = b"1,1,1,2,29,38,1,1,1\n1,2,5,5,10,10,0,2,0.5\n"
    image = b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x30\x00\x40\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    record = _example([_pb_bytes_feature("image/filename", [b"a.jpg"]),
                       _pb_bytes_feature("image/encoded", [image]),
                       _pb_bytes_feature("image/format", [b"jpeg"]),
                       _pb_float_feature("image/object/bbox/xmin", [0.1]),
                       _pb_float_feature("image/object/bbox/ymin", [0.1]),
                       _pb_float_feature("image/object/bbox/xmax", [0.5]),
                       _pb_float_feature("image/object/bbox/ymax", [0.5]),
                       _pb_bytes_feature("image/object/class/text", [b"cat"])])
    return {
        "voc.bin": b"\x00" + voc,
        "voc_broken.bin": b"\x00" + voc[:90],
        "labelme.bin": b"\x01" + labelme,
        "cvat.bin": b"\x02" + cvat,
        "cvat_entities.bin": b"\x02<!DOCTYPE a><annotations>&lt;&#x41;&#65;<![CDATA[x]]></annotations>",
        "datumaro.bin": b"\x03" + datumaro,
        "yolo.bin": b"\x04" + yolo,
        "yolo_bad.bin": b"\x04" + b"7 nan 0.5 1e309 -1\n",
        "mot.bin": b"\x05" + mot,
        "tfrecord.bin": b"\x06" + _tfrecord(record),
        "tfrecord_bad_crc.bin": b"\x06" + _tfrecord(record)[:-1] + b"\x00",
        # Groups nested far past protobuf's recursion limit, and a feature declaring more bytes than it holds.
        "tfrecord_deep.bin": b"\x06" + _tfrecord(b"\x4b" * 20000 + b"\x4c" * 20000),
        "tfrecord_truncated_field.bin": b"\x06" + _tfrecord(b"\x0a\x7f\x0a\x10\x0a\x01"),
        # 50,000 empty feature entries in 100 KB: more than parsing may take for its size (refused).
        "tfrecord_many_entries.bin": b"\x06" + _tfrecord(b"\x0a" + _varint(100000) + b"\x0a\x00" * 50000),
        "yolo_names.bin": b"\x07cat\n\ndog\n",
        "ultralytics.bin": b"\x08" + ultralytics,
        "ultralytics_bad.bin": b"\x08" + b"1 0.1 nan 0.2\n2 0 0 1 1 0\n",
        "ultralytics_yaml.bin": b"\x09" + ultralytics_yaml,
        "kitti.bin": b"\x0a" + b"Car 0.00 0 -10 1 2 11 12 -1 -1 -1 -1000 -1000 -1000 -10\nDontCare -1 -1 -10 2 2 9 9 -1 -1 -1 -1 -1 -1 -1 0.5\n",
        "open_images.bin": b"\x0c" + b"ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\na,x,cat,1,0.1,0.5,0.2,0.9,0,0,1,0,0\n",
        "createml.bin": b"\x0b" + b'[{"image": "a.jpg", "annotations": [{"label": "cat", "coordinates": {"x": 8, "y": 6, "width": 4, "height": 2}}]}]',
    }


def serve_request_seeds():
    import base64
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes([200, 10, 10]) * 4 for _ in range(3))  # 4x3 RGB, filter 0 per row
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 8, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    b64 = base64.b64encode(png).decode()
    line = lambda obj: (json.dumps(obj) + "\n").encode()
    return {
        "png.json": line({"id": 1, "image": b64, "threshold": 0.3, "topk": 5, "cvat_masks": True, "polygons": True}),
        "bad_base64.json": line({"id": "x", "image": "%%%"}),
        "both.json": line({"image": b64, "path": "/nonexistent.jpg"}),
        "device.json": line({"path": "/dev/zero"}),
        "threshold.json": line({"image": b64, "threshold": "high"}),
        "deep.json": b'{"id": ' + b"[" * 100 + b"]" * 100 + b"}\n",
        "not_object.json": b"[1, 2, 3]\n",
        "gif_header_only.json": line({"image": base64.b64encode(b"GIF89a\x10\x00\x10\x00\x00\x00\x00").decode()}),
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
    write(OUT / "formats", formats_seeds())
    write(OUT / "serve_request", serve_request_seeds())
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{OUT}: {sum(1 for p in OUT.rglob('*') if p.is_file())} files, {total} bytes")


if __name__ == "__main__":
    main()
