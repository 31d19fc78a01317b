#!/usr/bin/env bash
# Real photos for the resize-fidelity test (tests/data/photos), taken from Debian's python3-skimage
# package (scikit-image's sample data), both free of copyright restrictions:
#   rocket.jpg  - DSCOVR launch on Falcon 9, released into the public domain by SpaceX (the original JPEG)
#   chelsea.jpg - "Chelsea the cat", CC0 by the photographer Stefan van der Walt (chelsea.png, saved by
#                 PIL as a JPEG at quality 90 so that both files exercise the JPEG decoder)
# usage: tests/reference/make_photos.sh [out_dir]      (needs apt-get download and python3-pil)
set -euo pipefail
out=${1:-$(cd "$(dirname "$0")/.." && pwd)/data/photos}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download python3-skimage >/dev/null 2>&1 && dpkg -x python3-skimage_*.deb x)
data=$(echo "$tmp"/x/usr/lib/python3/dist-packages/skimage/data)
mkdir -p "$out"
cp "$data/rocket.jpg" "$out/rocket.jpg"
/usr/bin/python3 -c "from PIL import Image; Image.open('$data/chelsea.png').convert('RGB').save('$out/chelsea.jpg', quality=90)"
ls -l "$out"
