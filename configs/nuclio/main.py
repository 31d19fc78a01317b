"""CVAT auto-annotation with a detr-cpp model: a nuclio function for upstream CVAT (>= 1.x).

The handler follows CVAT's detector contract: the request body is {"image": <base64>, "threshold": float}
and the response is [{"confidence": "0.93", "label": "<name>", "points": [x1, y1, x2, y2],
"type": "rectangle"}]. A segmentation model (trained with --masks) answers with CVAT's mask shapes
instead, as CVAT's own serverless segmentation functions do: {"type": "mask", "mask": [0/1 pixels of the
object's box, row by row, then left, top, right, bottom], "points": its outline polygon}; with
DETR_SHAPES=polygon, polygons ({"type": "polygon", "points": [x1, y1, ...]}) for CVAT versions before
mask shapes. The model ($DETR_MODEL) stays loaded: each worker starts one
`detr_predict --serve` when the function starts and sends it every request as a JSON line, so a request
costs one inference, not a process start and a checkpoint load. The checkpoint's classes (names from
the training export) become CVAT's labels.
"""
import json
import os
import subprocess
import tempfile
import threading

MODEL = os.environ.get("DETR_MODEL", "/opt/nuclio/model/checkpoint.pth")
PREDICT = os.environ.get("DETR_PREDICT", "detr_predict")
SHAPES = os.environ.get("DETR_SHAPES", "mask")  # segmentation models: mask | polygon


class PredictServer:
    """One resident `detr_predict --serve` process; started again if it ever exits."""

    def __init__(self, predict, model):
        self.command = [predict, "--checkpoint", model, "--serve"]
        self.lock = threading.Lock()
        self.process = None
        self.requests = 0
        self.log = tempfile.TemporaryFile()  # the server's stderr, for errors

    def _start(self):
        self.log.seek(0)
        self.log.truncate()
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True, bufsize=1)

    def _last_words(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace").strip().splitlines()[-1:] or ["(nothing on stderr)"]

    def ask(self, request):
        """Sends one request (a dict) and returns the server's answer (a dict)."""
        with self.lock:
            for attempt in range(2):
                if self.process is None or self.process.poll() is not None:
                    self._start()
                self.requests += 1
                request = dict(request, id=self.requests)
                try:
                    self.process.stdin.write(json.dumps(request) + "\n")
                    self.process.stdin.flush()
                    line = self.process.stdout.readline()
                except BrokenPipeError:
                    line = ""
                if line:
                    return json.loads(line)
                self.process = None  # it died (a crash, or killed for memory): once more, fresh
            raise RuntimeError(f"{' '.join(self.command)} exited without answering: {self._last_words()[0]}")

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def init_context(context):
    context.user_data.model = MODEL
    context.user_data.server = PredictServer(PREDICT, MODEL)
    context.logger.info(f"detr-cpp model: {MODEL}")


def to_shapes(answer, shapes_kind=None):
    """detr_predict's detections as CVAT shapes: rectangles, or for masks CVAT mask shapes (or polygons)."""
    kind = shapes_kind or SHAPES
    shapes = []
    for d in answer["detections"]:
        shape = {"confidence": str(d["score"]), "label": d.get("category_name", str(d["category_id"]))}
        if "polygon" in d and kind == "polygon":
            if len(d["polygon"]) < 6:
                continue  # a mask too small to outline
            shape.update(points=d["polygon"], type="polygon")
        elif "cvat_mask" in d:
            if not d["cvat_mask"]:
                continue  # an empty mask
            shape.update(mask=d["cvat_mask"], points=d.get("polygon", []), type="mask")
        else:
            x, y, w, h = d["bbox"]
            shape.update(points=[x, y, x + w, y + h], type="rectangle")
        shapes.append(shape)
    return shapes


def caller_error(context, what):
    """A request the caller got wrong: HTTP 400 with one line saying what."""
    return context.Response(body=json.dumps({"error": what}), headers={}, content_type="application/json",
                            status_code=400)


def parse_body(body):
    """The request as (image, threshold), or a string saying what is wrong with it."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except (UnicodeDecodeError, ValueError) as e:
            return f"the body is not JSON ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    if not isinstance(body, dict):
        return f"the body must be a JSON object, got {type(body).__name__}"
    image = body.get("image")
    if not isinstance(image, str) or not image:
        return "field 'image' (a base64 string) is missing" if image is None else "field 'image' must be a base64 string"
    threshold = body.get("threshold", 0.5)
    if isinstance(threshold, str):
        try:
            threshold = float(threshold)
        except ValueError:
            return f"field 'threshold' must be a number in [0, 1], got {json.dumps(threshold)[:100]}"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        return f"field 'threshold' must be a number in [0, 1], got {json.dumps(threshold)[:100]}"
    return image, float(threshold)


def handler(context, event):
    parsed = parse_body(event.body)
    if isinstance(parsed, str):
        return caller_error(context, parsed)
    image, threshold = parsed
    answer = context.user_data.server.ask({"image": image, "threshold": threshold,
                                           "cvat_masks": SHAPES == "mask", "polygons": True})
    if "error" in answer:
        if answer.get("internal"):  # the request was fine; the server failed on it (out of memory, ...)
            return context.Response(body=json.dumps({"error": answer["error"]}), headers={},
                                    content_type="application/json", status_code=500)
        return caller_error(context, answer["error"])
    return context.Response(body=json.dumps(to_shapes(answer)), headers={}, content_type="application/json",
                            status_code=200)
