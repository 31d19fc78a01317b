#!/usr/bin/env python3
"""Mean absolute difference (uint8 levels) between detr_train's resize and upstream's PIL resize.

Upstream resizes PIL images with torchvision's F.resize -> Image.BILINEAR, antialiased on downscale.
This script resizes real photos both ways at the sizes upstream's get_size_with_aspect_ratio gives and
prints the mean absolute pixel difference. Needs Debian's python3-pil and python3-numpy.

usage: scripts/bench/resize_fidelity.py BUILD_DIR IMAGE [IMAGE...]
Exits 1 when a mean difference exceeds 0.5 levels or a pixel differs by more than 2 levels;
77 (skipped) when PIL or numpy is missing.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image
except ImportError:
    system = "/usr/bin/python3"  # the distribution's Python, where python3-pil installs
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system):
        os.execv(system, [system] + sys.argv)
    print("skipped: python3-pil and python3-numpy are needed")
    sys.exit(77)


def upstream_size(w, h, size, max_size):
    if max_size:
        mn, mx = float(min(w, h)), float(max(w, h))
        if mx / mn * size > max_size:
            size = int(round(max_size * mn / mx))
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    return (int(size * h / w), size) if w < h else (size, int(size * w / h))


def main():
    build, images = sys.argv[1], sys.argv[2:]
    worst_mean, worst_max = 0.0, 0
    print("| image | size | to | ratio | mean abs diff (levels) | max abs diff |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in images:
        img = Image.open(path).convert("RGB")
        w, h = img.size
        for size in (int(min(w, h) * 0.6), int(min(w, h) * 0.4), int(min(w, h) * 1.7)):
            oh, ow = upstream_size(w, h, size, None)
            ref = np.asarray(img.resize((ow, oh), Image.BILINEAR), dtype=np.int16)
            with tempfile.NamedTemporaryFile(suffix=".png") as out:
                subprocess.run([f"{build}/src/cli/detr_resize", path, out.name, "--size", str(size)], check=True)
                ours = np.asarray(Image.open(out.name).convert("RGB"), dtype=np.int16)
            assert ours.shape == ref.shape, (ours.shape, ref.shape)
            d = np.abs(ours - ref)
            print(f"| {path.split('/')[-1]} | {w}x{h} | {ow}x{oh} | {ow / w:.2f} | {d.mean():.3f} | {d.max()} |")
            worst_mean, worst_max = max(worst_mean, float(d.mean())), max(worst_max, int(d.max()))
    print(f"worst mean {worst_mean:.3f} levels, worst pixel {worst_max} levels")
    return 0 if worst_mean <= 0.5 and worst_max <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
