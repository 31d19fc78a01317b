#!/usr/bin/env python3
"""Local test of the CVAT nuclio function's contract: trains a tiny model with detr_train, generates the
function from its classes.csv, calls the handler with a CVAT-style request and checks the response.

usage: scripts/ci/test_nuclio_function.py BUILD_DIR    (exit 0 pass, 1 fail, 77 skipped without python3-yaml)
"""
import base64
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import types

try:
    import yaml
except ImportError:
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system):
        os.execv(system, [system] + sys.argv)
    print("skipped: python3-yaml is needed")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    subprocess.run([sys.executable, f"{ROOT}/scripts/deploy/make_nuclio_function.py", f"{out}/classes.csv", fn], check=True)

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
    first = time.monotonic()
    response = main_module.handler(context, event)
    first = time.monotonic() - first
    assert response.status_code == 200 and response.content_type == "application/json"
    shapes = json.loads(response.body)
    # The model stays loaded: the same server process answers the next requests, bad ones included.
    server = context.user_data.server
    pid = server.process.pid
    again = time.monotonic()
    assert json.loads(main_module.handler(context, event).body) == shapes
    again = time.monotonic() - again
    bad = main_module.handler(context, types.SimpleNamespace(body={"image": "not base64!", "threshold": 0.5}))
    assert bad.status_code == 400 and "base64" in json.loads(bad.body)["error"], bad.body
    # The caller's mistakes are HTTP 400 with one line, answered without asking the server (measured
    # before: 500 for each of these).
    for body, needle in [({"threshold": 0.5}, "'image'"), ({"image": "aGk=", "threshold": "high"}, "'threshold'"),
                         ({"image": "aGk=", "threshold": 7}, "'threshold'"), (b"\xff\xfe not json", "not JSON"),
                         ([1, 2], "JSON object"), (json.dumps({"image": 3}).encode(), "'image'")]:
        r = main_module.handler(context, types.SimpleNamespace(body=body))
        error = json.loads(r.body)["error"]
        assert r.status_code == 400 and needle in error and "\n" not in error, (body, r.status_code, r.body)
    ok = main_module.handler(context, types.SimpleNamespace(body=json.dumps({"image": event.body["image"]}).encode()))
    assert ok.status_code == 200, ok.body  # a bytes body that is JSON, threshold defaulted
    assert server.process.pid == pid and server.requests == 4, (server.process.pid, pid, server.requests)
    server.process.kill()  # a dead server is started again on the next request
    server.process.wait()
    assert json.loads(main_module.handler(context, event).body) == shapes
    server.close()
    print(f"nuclio handler: first request {first:.2f} s (starts the server, loads the model), "
          f"second {again:.3f} s on the same process")
    assert len(shapes) == 5, shapes  # threshold 0: every query
    for s in shapes:
        assert set(s) == {"confidence", "label", "points", "type"}, s
        assert s["type"] == "rectangle" and len(s["points"]) == 4 and isinstance(s["confidence"], str)
        assert s["label"] in {"box", "ellipse", "triangle"}, s
        x1, y1, x2, y2 = s["points"]
        assert x2 >= x1 and y2 >= y1
    print(f"nuclio handler: {len(shapes)} shapes, labels {sorted({s['label'] for s in shapes})}: OK")
    return check_masks(tools, data, os.path.join(tmp, "masks"), image)


def check_masks(tools, data, out, image):
    """A segmentation model (--masks): the function answers CVAT mask shapes, or polygons."""
    subprocess.run([f"{tools}/detr_train", "--coco_path", data, "--output_dir", out, "--epochs", "1", "--masks",
                    "--batch_size", "2", "--device", "cpu", "--backbone", "resnet18", "--hidden_dim", "128",
                    "--nheads", "8", "--enc_layers", "1", "--dec_layers", "1", "--dim_feedforward", "64",
                    "--num_queries", "5", "--scales", "64", "--max_size", "128", "--val_size", "80",
                    "--val_split", "0", "--eval_every", "0", "--num_workers", "0",
                    "--backbone_weights", "none"], check=True, capture_output=True)
    for kind in ("mask", "polygon"):
        fn = f"{out}/function_{kind}"
        extra = ["--masks"] + (["--polygons"] if kind == "polygon" else [])
        subprocess.run([sys.executable, f"{ROOT}/scripts/deploy/make_nuclio_function.py", f"{out}/classes.csv", fn] + extra,
                       check=True)
        spec = yaml.safe_load(open(f"{fn}/function.yaml"))
        assert {l["type"] for l in json.loads(spec["metadata"]["annotations"]["spec"])} == {kind}, spec
        module_spec = importlib.util.spec_from_file_location(f"main_{kind}", f"{fn}/main.py")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        module.PREDICT, module.MODEL, module.SHAPES = f"{tools}/detr_predict", f"{out}/checkpoint.pth", kind
        context = types.SimpleNamespace(
            user_data=types.SimpleNamespace(), logger=types.SimpleNamespace(info=lambda *a: None),
            Response=lambda **kw: types.SimpleNamespace(**kw))
        module.init_context(context)
        event = types.SimpleNamespace(body={"image": base64.b64encode(image).decode(), "threshold": 0.0})
        response = module.handler(context, event)
        context.user_data.server.close()
        assert response.status_code == 200, response.body
        shapes = json.loads(response.body)
        assert shapes, "threshold 0 and no mask at all"
        for s in shapes:
            assert s["type"] == kind, s
            if kind == "polygon":
                assert len(s["points"]) >= 6 and len(s["points"]) % 2 == 0, s
                continue
            *bits, left, top, right, bottom = s["mask"]
            assert right >= left and bottom >= top and set(bits) <= {0, 1}, s
            assert len(bits) == (right - left + 1) * (bottom - top + 1), (len(bits), left, top, right, bottom)
        print(f"nuclio handler, segmentation model: {len(shapes)} {kind} shapes: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
