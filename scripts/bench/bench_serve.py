#!/usr/bin/env python3
"""detr_predict --serve: model load, latency per request and throughput for a stream of images.

    scripts/bench/bench_serve.py BUILD_DIR CHECKPOINT [--images 8] [--batches 1,4] [--rounds 2]
        [--device cpu] [--threads 2] [--width 640] [--height 480] [--json FILE]

BUILD_DIR/src/cli/detr_make_dataset writes --images generated JPEGs. Per round and per --serve_batch
value (the order alternating from round to round), one server process is started and
- the model load is the time detr_predict reports on stderr ("model loaded in X s"), and the process
  start-up the rest of the time until it says it is serving;
- one request is sent as a warm-up (its image's first forward sets up the kernels), then
- sequential: each image sent alone, its answer awaited before the next (what one CVAT user who
  annotates frame by frame waits for): seconds per request;
- stream: every image written at once (base64, as CVAT's nuclio function sends them), all answers
  read: images per second. With --serve_batch > 1 the requests that arrive while the model runs are
  answered together.
The medians over the rounds are printed. Standard library only.
"""
import argparse
import base64
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def parse_args(argv):
    p = argparse.ArgumentParser(description="detr_predict --serve: load, latency and stream throughput.")
    p.add_argument("build_dir", type=Path)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--batches", default="1,4", help="--serve_batch values to compare, comma-separated")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def make_images(a, tmp):
    data = Path(tmp) / "data"
    subprocess.run([str(a.build_dir / "src" / "cli" / "detr_make_dataset"), "--out", str(data), "--images",
                    str(a.images), "--width", str(a.width), "--height", str(a.height)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    paths = sorted((data / "images").rglob("*.jpg"))[:a.images]
    if len(paths) < a.images:
        sys.exit(f"bench_serve: detr_make_dataset wrote {len(paths)} images, expected {a.images}")
    return [base64.b64encode(p.read_bytes()).decode() for p in paths]


class Server:
    def __init__(self, a, batch, log):
        self.log = log
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(a.build_dir / "src" / "cli" / "detr_predict"), "--checkpoint", str(a.checkpoint), "--serve",
             "--serve_batch", str(batch), "--device", a.device, "--num_threads", str(a.threads),
             "--threshold", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
        while "serving" not in Path(log).read_text():
            if self.proc.poll() is not None:
                sys.exit(f"bench_serve: detr_predict --serve exited: {Path(log).read_text()[-2000:]}")
            time.sleep(0.005)
        self.ready_s = time.perf_counter() - self.t0
        m = re.search(r"model loaded in ([0-9.eE+-]+) s", Path(log).read_text())
        self.load_s = float(m.group(1)) if m else float("nan")

    def ask(self, requests):
        """Writes the requests (from a second thread, so a full pipe never blocks) and reads their answers."""
        writer = threading.Thread(target=lambda: (self.proc.stdin.write("".join(requests)), self.proc.stdin.flush()))
        writer.start()
        answers = [json.loads(self.proc.stdout.readline()) for _ in requests]
        writer.join()
        for r in answers:
            if "error" in r:
                sys.exit(f"bench_serve: request {r.get('id')} failed: {r['error']}")
        return answers

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
        m = re.search(r"answered (\d+) requests with (\d+) forwards", Path(self.log).read_text())
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def request(i, image):
    return json.dumps({"id": i, "image": image, "topk": 10}) + "\n"


def one_server(a, batch, images, log):
    s = Server(a, batch, log)
    s.ask([request(-1, images[0])])  # warm-up
    t = time.perf_counter()
    for i, im in enumerate(images):
        s.ask([request(i, im)])
    sequential = (time.perf_counter() - t) / len(images)
    t = time.perf_counter()
    answers = s.ask([request(i, im) for i, im in enumerate(images)])
    stream = len(images) / (time.perf_counter() - t)
    if [r["id"] for r in answers] != list(range(len(images))):
        sys.exit("bench_serve: answers out of order")
    answered, forwards = s.close()
    return {"start_s": s.ready_s - s.load_s, "load_s": s.load_s, "sequential_s_per_image": sequential,
            "stream_images_per_s": stream, "answered": answered, "forwards": forwards}


def main(argv):
    a = parse_args(argv)
    batches = [int(b) for b in a.batches.split(",")]
    rows = {b: [] for b in batches}
    with tempfile.TemporaryDirectory() as tmp:
        images = make_images(a, tmp)
        for r in range(a.rounds):
            for b in (batches if r % 2 == 0 else list(reversed(batches))):
                row = one_server(a, b, images, Path(tmp) / f"serve_{b}.log")
                rows[b].append(row)
                print(f"round {r + 1}, --serve_batch {b}: start {row['start_s']:.2f} s, model load {row['load_s']:.2f} s, "
                      f"sequential {row['sequential_s_per_image']:.3f} s/image, stream {row['stream_images_per_s']:.3f} "
                      f"images/s ({row['answered']} requests, {row['forwards']} forwards)", flush=True)
    print(f"{a.images} images {a.width}x{a.height} (resized to 800 on the short side), {a.device}, {a.threads} threads; "
          "medians:")
    print("| --serve_batch | process start (s) | model load (s) | sequential (s/image) | stream (images/s) |")
    print("| --- | --- | --- | --- | --- |")
    med = {}
    for b in batches:
        med[b] = {k: statistics.median(x[k] for x in rows[b]) for k in rows[b][0]}
        m = med[b]
        print(f"| {b} | {m['start_s']:.2f} | {m['load_s']:.2f} | {m['sequential_s_per_image']:.3f} | "
              f"{m['stream_images_per_s']:.3f} |")
    if a.json:
        a.json.write_text(json.dumps({"rows": {str(b): v for b, v in rows.items()},
                                      "medians": {str(b): v for b, v in med.items()}}, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
