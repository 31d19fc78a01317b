#!/usr/bin/env python3
"""Checks an Onepanel workflow template for detr_train: every {{workflow.parameters.X}} it uses is
declared, and the detr_train command line it builds (with the parameters' defaults, and with a fine-tune
checkpoint) is accepted by detr_train's own parser (--parse_only).

usage: scripts/ci/check_workflow_template.py TEMPLATE.yaml DETR_TRAIN
Exits 0 when the template is consistent, 1 otherwise, 77 (skipped) without python3-yaml.
"""
import os
import re
import shlex
import subprocess
import sys

try:
    import yaml
except ImportError:
    system = "/usr/bin/python3"  # the distribution's Python, where python3-yaml installs
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system):
        os.execv(system, [system] + sys.argv)
    print("skipped: python3-yaml is needed")
    sys.exit(77)


def main():
    path, tool = sys.argv[1], sys.argv[2]
    text = open(path).read()
    doc = yaml.safe_load(text)
    params = {p["name"]: str(p.get("value", "")) for p in doc["spec"]["arguments"]["parameters"]}
    used = set(re.findall(r"\{\{workflow\.parameters\.([\w-]+)\}\}", text))
    errors = [f"parameter '{u}' is used but not declared" for u in sorted(used - set(params))]
    for p in doc["spec"]["arguments"]["parameters"]:
        for key in ("name", "value", "visibility"):
            if key not in p:
                errors.append(f"parameter '{p.get('name')}' has no '{key}'")
    train = next(t for t in doc["spec"]["templates"] if "container" in t)
    script = train["container"]["args"][0]
    # The defaults; a fine-tune checkpoint; every option of every select parameter.
    variants = [{}, {"cvat-finetune-checkpoint": "artifacts/ns/wf/pod/output/"}]
    for p in doc["spec"]["arguments"]["parameters"]:
        if p.get("type") == "select.select":
            variants += [{p["name"]: str(o["value"])} for o in p.get("options", [])]
    for variant in variants:
        values = dict(params, **variant)
        finetune = values["cvat-finetune-checkpoint"]
        resolved = re.sub(r"\{\{workflow\.parameters\.([\w-]+)\}\}", lambda m: values[m.group(1)], script)
        resolved = resolved.replace("\\\n", " ")
        line = next(l for l in resolved.splitlines() if "detr_train" in l)
        pretrained = "--pretrained /mnt/data/models" if finetune else ""
        masks = "--masks" if values.get("task") == "segmentation" else ""
        args = shlex.split(line.replace("$pretrained", pretrained).replace("$masks", masks))
        args = args[args.index("detr_train") + 1:]
        r = subprocess.run([tool] + args + ["--parse_only"], capture_output=True, text=True)
        print(f"detr_train {' '.join(args)} -> exit {r.returncode}")
        if r.returncode != 0:
            errors.append(f"detr_train rejects the template's command line: {r.stderr.strip()}")
    for e in errors:
        print("error:", e)
    print(f"{len(params)} parameters declared, {len(used)} used, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
