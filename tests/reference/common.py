"""Shared helpers for the golden-data scripts in tests/reference.

Locates the repository and the reference checkouts (facebookresearch/detr via $DETR_REPO,
cocodataset/cocoapi via $COCOAPI_REPO), imports pycocotools from the cocoapi checkout, and writes
JSON the same way every time so that regenerating gives byte-identical files.
"""
import contextlib
import io
import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "tests" / "data"


def output_dir(argv, default_subdir):
    """The output directory: the first command-line argument, else tests/data/<default_subdir>."""
    out = Path(argv[1]) if len(argv) > 1 else DATA_DIR / default_subdir
    out.mkdir(parents=True, exist_ok=True)
    return out


def checkout(env_var, default):
    """A reference checkout: $<env_var>, else `default` (a work tree exported under /tmp)."""
    path = Path(os.environ.get(env_var, default))
    if not path.is_dir():
        sys.exit(f"{env_var}: no checkout at {path} (see tests/reference/README.md)")
    return path


def add_detr_to_path():
    """Puts the facebookresearch/detr checkout ($DETR_REPO, default /tmp/detr) first on sys.path."""
    repo = checkout("DETR_REPO", "/tmp/detr")
    sys.path.insert(0, str(repo))
    return repo


def import_pycocotools():
    """Imports pycocotools built in place in the cocoapi checkout ($COCOAPI_REPO/PythonAPI).

    numpy 1.24 (Debian 12) removed the alias np.float that cocoapi's cocoeval.py still uses in
    accumulate(); it meant the builtin float, so it is restored here instead of editing the checkout.
    """
    import numpy as np

    if "float" not in np.__dict__:
        np.float = float
    repo = checkout("COCOAPI_REPO", "/tmp/cocoapi")
    sys.path.insert(0, str(repo / "PythonAPI"))
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return COCO, COCOeval


@contextlib.contextmanager
def quiet():
    """Silences the progress lines pycocotools prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def write_json(path, value, indent=None):
    """Writes `value` as JSON (floats as Python's shortest round-trip repr) and reports the file."""
    path = Path(path)
    text = json.dumps(value, indent=indent, allow_nan=False)
    path.write_text(text + "\n")
    report(path)


def report(path):
    """Prints a written file with its size, relative to the repository when inside it."""
    path = Path(path).resolve()
    try:
        shown = path.relative_to(REPO_ROOT)
    except ValueError:
        shown = path
    print(f"wrote {shown} ({path.stat().st_size} bytes)")
