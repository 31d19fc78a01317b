#!/usr/bin/env python3
"""Fails on an include that runs up the layering: util/, proto/ <- models/, datasets/ <- src/ <- tools, tests.

    scripts/ci/check_layering.py REPO_ROOT

Each directory may include (with "...") only from itself and the layers below it, as upstream's packages
import: util/ is the base; proto/ (the protobuf messages and their bounded parsing) is a base beside it;
models/ and datasets/ build on util/ (datasets/ also on proto/) and not on each other; src/ (the runtime)
builds on all of them. Prints every offending line as FILE:LINE: "INCLUDE" (DIR may not include LAYER/).
"""
import pathlib
import re
import sys

ALLOWED = {
    "util": {"util"},
    "proto": {"proto"},
    "models": {"models", "util"},
    "datasets": {"datasets", "util", "proto"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def violations(root):
    for layer, allowed in ALLOWED.items():
        for path in sorted((root / layer).rglob("*")):
            if path.suffix not in {".h", ".cpp", ".hpp", ".cc"}:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                target = match.group(1).split("/")[0]
                if "/" in match.group(1) and target not in allowed:
                    yield f'{path.relative_to(root)}:{number}: "{match.group(1)}" ({layer}/ may not include {target}/)'


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = pathlib.Path(sys.argv[1])
    found = list(violations(root))
    for line in found:
        print(line)
    checked = sum(1 for layer in ALLOWED for p in (root / layer).rglob("*") if p.suffix in {".h", ".cpp"})
    print(f"{len(found)} upward includes in {checked} files of {', '.join(ALLOWED)}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
