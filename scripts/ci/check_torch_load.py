#!/usr/bin/env python3
"""Checks that Python's torch.load reads a file written by detr-cpp, and prints what it holds.

    check_torch_load.py FILE [--unsafe] [--resave OUT] [--audit]

Loads FILE with torch.load(FILE, weights_only=True) (with --unsafe: weights_only=False, needed on
PyTorch 1.13 whose weights_only unpickler cannot read Python floats) and prints its structure:
types, tensor dtypes/shapes/strides and a SHA-256 of each tensor's bytes. With --resave, writes
what was loaded back with Python's torch.save (zip format, and OUT.legacy in the pre-1.6 format)
so that detr-cpp can check the round trip. With --audit, also lists the pickle opcodes and globals of
a zip file's data.pkl and flags any outside what PyTorch >= 2.0's weights_only unpickler accepts.
Exit code 0 when the load (and audit) succeeded, 1 otherwise.
Developer tool only: the C++ tests do not depend on Python.
"""
import argparse
import hashlib
import pickletools
import sys
import zipfile

import torch


def describe(value, indent=0, out=sys.stdout):
    pad = "  " * indent
    if isinstance(value, torch.Tensor):
        raw = value.detach().contiguous().view(-1).view(torch.uint8) if value.numel() else torch.empty(0)
        digest = hashlib.sha256(raw.numpy().tobytes()).hexdigest()[:16]
        extra = f" = {value.item()!r}" if value.dim() == 0 else ""
        print(f"{pad}{type(value).__name__} {value.dtype} {list(value.shape)} "
              f"contiguous={value.is_contiguous()} sha256={digest}{extra}", file=out)
    elif isinstance(value, dict):
        print(f"{pad}{type(value).__module__}.{type(value).__qualname__} ({len(value)} items)", file=out)
        for k, v in value.items():
            print(f"{pad}  {k!r}:", file=out)
            describe(v, indent + 2, out)
    elif isinstance(value, (list, tuple)):
        print(f"{pad}{type(value).__name__} ({len(value)} items)", file=out)
        for v in value:
            describe(v, indent + 1, out)
    else:
        print(f"{pad}{type(value).__name__} {value!r}", file=out)


# What torch/_weights_only_unpickler.py (PyTorch 2.x) accepts.
WEIGHTS_ONLY_OPCODES = {
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK", "TUPLE",
    "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT",
    "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING", "BINPERSID",
    "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1", "PROTO", "STOP",
}
WEIGHTS_ONLY_GLOBALS_PREFIXES = ("torch._utils._rebuild_", "torch.", "collections.OrderedDict", "_codecs.encode")


def audit(path):
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        data = z.read(name)
        names = z.namelist()
        other = sorted(n for n in names if "/data/" not in n)
        print(f"records: {other} + {len(names) - len(other)} storages")
    opcodes, globals_ = set(), set()
    for op, arg, _ in pickletools.genops(data):
        opcodes.add(op.name)
        if op.name == "GLOBAL":
            globals_.add(arg.replace(" ", "."))
    bad_ops = sorted(opcodes - WEIGHTS_ONLY_OPCODES)
    bad_globals = sorted(g for g in globals_ if not g.startswith(WEIGHTS_ONLY_GLOBALS_PREFIXES))
    print(f"opcodes: {sorted(opcodes)}")
    print(f"globals: {sorted(globals_)}")
    print(f"outside weights_only (PyTorch >= 2.0): opcodes {bad_ops}, globals {bad_globals}")
    return not bad_ops and not bad_globals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--unsafe", action="store_true", help="weights_only=False")
    parser.add_argument("--resave", help="write what was loaded back with torch.save")
    parser.add_argument("--audit", action="store_true", help="check data.pkl's opcodes and globals")
    args = parser.parse_args()
    if args.audit and not audit(args.file):
        return 1
    print(f"torch {torch.__version__}, weights_only={not args.unsafe}")
    try:
        value = torch.load(args.file, weights_only=not args.unsafe)
    except Exception as e:  # report, do not trace
        print(f"LOAD FAILED: {type(e).__name__}: {e}")
        return 1
    describe(value)
    if args.resave:
        torch.save(value, args.resave)
        torch.save(value, args.resave + ".legacy", _use_new_zipfile_serialization=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
