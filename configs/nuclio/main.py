"""CVAT auto-annotation with a detr-cpp model: a nuclio function for upstream CVAT (>= 1.x).

The handler follows CVAT's detector contract: the request body is {"image": <base64>, "threshold": float}
and the response is [{"confidence": "0.93", "label": "<name>", "points": [x1, y1, x2, y2],
"type": "rectangle"}]. Detection runs detr_predict on the checkpoint ($DETR_MODEL), whose classes
(names from the training export) become CVAT's labels.
"""
import base64
import json
import os
import subprocess
import tempfile

MODEL = os.environ.get("DETR_MODEL", "/opt/nuclio/model/checkpoint.pth")
PREDICT = os.environ.get("DETR_PREDICT", "detr_predict")


def init_context(context):
    context.user_data.model = MODEL
    context.logger.info(f"detr-cpp model: {MODEL}")


def detect(image_bytes, threshold, model=None, predict=None):
    """Runs detr_predict on one encoded image; returns CVAT shapes."""
    model, predict = model or MODEL, predict or PREDICT
    with tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, "image.jpg")  # the decoder reads the real format from the bytes
        results = os.path.join(tmp, "results.json")
        with open(image, "wb") as f:
            f.write(image_bytes)
        subprocess.run([predict, "--checkpoint", model, "--input", image, "--threshold", str(threshold),
                        "--output", results], check=True, capture_output=True)
        with open(results) as f:
            detections = json.load(f)
    shapes = []
    for d in detections:
        x, y, w, h = d["bbox"]
        shapes.append({"confidence": str(d["score"]), "label": d.get("category_name", str(d["category_id"])),
                       "points": [x, y, x + w, y + h], "type": "rectangle"})
    return shapes


def handler(context, event):
    data = event.body
    shapes = detect(base64.b64decode(data["image"]), float(data.get("threshold", 0.5)), context.user_data.model)
    return context.Response(body=json.dumps(shapes), headers={}, content_type="application/json", status_code=200)
