#!/usr/bin/env python3
"""Local test of the CVAT nuclio function's contract: trains a tiny model with detr_train, generates the
function from its classes.csv, calls the handler with a CVAT-style request and checks the response.

usage: scripts/test_nuclio_function.py BUILD_DIR    (exit 0 pass, 1 fail, 77 skipped without python3-yaml)
"""
import base64
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types

try:
    import yaml
except ImportError:
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system):
        os.execv(system, [system] + sys.argv)
    print("skipped: python3-yaml is needed")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    tools = os.path.join(sys.argv[1], "src", "cli")
    tmp = tempfile.mkdtemp(prefix="detr_nuclio_")
    data, out, fn = (os.path.join(tmp, d) for d in ("data", "out", "function"))
    subprocess.run([f"{tools}/detr_make_dataset", "--out", data, "--images", "4", "--width", "96", "--height", "80"],
                   check=True, capture_output=True)
    subprocess.run([f"{tools}/detr_train", "--coco_path", data, "--output_dir", out, "--epochs", "1",
                    "--batch_size", "2", "--device", "cpu", "--backbone", "resnet18", "--hidden_dim", "32",
                    "--nheads", "2", "--enc_layers", "1", "--dec_layers", "1", "--dim_feedforward", "64",
                    "--num_queries", "5", "--scales", "64", "--max_size", "128", "--val_size", "80",
                    "--val_split", "0", "--eval_every", "0", "--num_workers", "0",
                    "--backbone_weights", "none"], check=True, capture_output=True)
    subprocess.run([sys.executable, f"{ROOT}/scripts/make_nuclio_function.py", f"{out}/classes.csv", fn], check=True)

    spec = yaml.safe_load(open(f"{fn}/function.yaml"))
    labels = json.loads(spec["metadata"]["annotations"]["spec"])
    assert spec["metadata"]["annotations"]["type"] == "detector"
    assert spec["spec"]["handler"] == "main:handler"
    assert [l["name"] for l in labels] == ["box", "ellipse", "triangle"], labels

    module_spec = importlib.util.spec_from_file_location("main", f"{fn}/main.py")
    main_module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(main_module)
    main_module.PREDICT = f"{tools}/detr_predict"
    context = types.SimpleNamespace(
        user_data=types.SimpleNamespace(), logger=types.SimpleNamespace(info=lambda *a: None),
        Response=lambda **kw: types.SimpleNamespace(**kw))
    main_module.MODEL = f"{out}/checkpoint.pth"
    main_module.init_context(context)
    image = open(os.path.join(data, "images", "0.jpg"), "rb").read()
    event = types.SimpleNamespace(body={"image": base64.b64encode(image).decode(), "threshold": 0.0})
    response = main_module.handler(context, event)
    assert response.status_code == 200 and response.content_type == "application/json"
    shapes = json.loads(response.body)
    assert len(shapes) == 5, shapes  # threshold 0: every query
    for s in shapes:
        assert set(s) == {"confidence", "label", "points", "type"}, s
        assert s["type"] == "rectangle" and len(s["points"]) == 4 and isinstance(s["confidence"], str)
        assert s["label"] in {"box", "ellipse", "triangle"}, s
        x1, y1, x2, y2 = s["points"]
        assert x2 >= x1 and y2 >= y1
    print(f"nuclio handler: {len(shapes)} shapes, labels {sorted({s['label'] for s in shapes})}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
