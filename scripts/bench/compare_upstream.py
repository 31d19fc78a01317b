#!/usr/bin/python3
"""detr_bench against upstream DETR's training step, side by side in one sitting, with the ratios.

    scripts/bench/compare_upstream.py BUILD_DIR [--config default|small|small_r50] [--masks]
        [--rounds 2] [--warmup 1] [--steps 2] [--repeats 3] [--batch_size 2] [--threads 2]
        [--upstream_blas same|as_is] [--json FILE]

Runs BUILD_DIR/src/cli/detr_bench --mode train and scripts/bench/bench_upstream.py (upstream's
checkout with the system's python3-torch, as tests/reference sets it up) on the same generated data
and flags, alternating them --rounds times so that the host's drift hits both alike, then prints each
run and the ratios of the medians: upstream s/step / ours (the speed-up) and our peak RSS / upstream's.

--upstream_blas: the OpenBLAS kernels upstream runs. detr-cpp's executables switch a dynamic OpenBLAS
away from its SSE3 fallback on CPUs it does not know (util/blas_kernels.h); Python's torch does not.
"same" (the default) gives upstream the kernels ours ran (OPENBLAS_CORETYPE), so the ratio measures
the two implementations on equal BLAS; "as_is" leaves upstream as a user runs it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable  # the one with python3-torch


def parse_args(argv):
    p = argparse.ArgumentParser(description="detr_bench against upstream DETR, alternated, with the ratios.")
    p.add_argument("build_dir", type=Path)
    p.add_argument("--config", default="default", choices=["default", "small", "small_r50"])
    p.add_argument("--masks", action="store_true")
    p.add_argument("--rounds", type=int, default=2, help="alternations of ours and upstream's")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--upstream_blas", default="same", choices=["same", "as_is"])
    p.add_argument("--json", type=Path, help="also write every run and the ratios here")
    return p.parse_args(argv)


def run_json(cmd, env):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        r = subprocess.run(cmd + ["--json", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode != 0:
            sys.exit(f"compare_upstream: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}")
        return json.loads(out.read_text())


def main(argv):
    a = parse_args(argv)
    common = ["--config", a.config, "--batch_size", str(a.batch_size), "--warmup", str(a.warmup), "--steps",
              str(a.steps), "--repeats", str(a.repeats)] + (["--masks"] if a.masks else [])
    ours_cmd = [str(a.build_dir / "src" / "cli" / "detr_bench"), "--mode", "train", "--device", "cpu",
                "--num_threads", str(a.threads)] + common
    up_cmd = [PYTHON, str(HERE / "bench_upstream.py"), str(a.build_dir), "--device", "cpu", "--threads",
              str(a.threads)] + common
    runs = {"ours": [], "upstream": []}
    for i in range(a.rounds):
        ours = run_json(ours_cmd, dict(os.environ))
        up_env = dict(os.environ)
        if a.upstream_blas == "same" and ours.get("blas_kernels"):
            up_env["OPENBLAS_CORETYPE"] = ours["blas_kernels"]
        up = run_json(up_cmd, up_env)
        for name, r in (("ours", ours), ("upstream", up)):
            runs[name].append({"s_per_step": r["train"]["s_per_step"], "peak_rss_gb": r["peak_rss_gb"],
                               "phases": r["train"]["phase_s_per_step"]})
            print(f"round {i + 1} {name:8s}: {r['train']['s_per_step']:.3f} s/step, peak RSS {r['peak_rss_gb']:.2f} GB",
                  flush=True)
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("s_per_step", "peak_rss_gb")} for k, v in runs.items()}
    speedup = med["upstream"]["s_per_step"] / med["ours"]["s_per_step"]
    memory = med["ours"]["peak_rss_gb"] / med["upstream"]["peak_rss_gb"]
    print(f"config {a.config}{' + masks' if a.masks else ''}, batch {a.batch_size}, {a.threads} threads, "
          f"OpenBLAS kernels ours {ours.get('blas_kernels') or '?'}, upstream "
          f"{'the same' if a.upstream_blas == 'same' else 'as it chooses'}")
    print(f"median s/step: ours {med['ours']['s_per_step']:.3f}, upstream {med['upstream']['s_per_step']:.3f}"
          f" -> {speedup:.2f}x faster")
    print(f"median peak RSS: ours {med['ours']['peak_rss_gb']:.2f} GB, upstream {med['upstream']['peak_rss_gb']:.2f} GB"
          f" -> {memory:.2f} of upstream's")
    if a.json:
        a.json.write_text(json.dumps({"runs": runs, "medians": med, "speedup": speedup, "memory_ratio": memory,
                                      "config": a.config, "masks": a.masks, "upstream_blas": a.upstream_blas},
                                     indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
