#!/usr/bin/env python3
"""Checks the Kubernetes PyTorchJob for detr_train: every replica runs the container the training
operator expects ("pytorch") with the same detr_train command line, and detr_train's own parser
accepts it (--parse_only) as the operator launches it (RANK/WORLD_SIZE set).

usage: scripts/ci/check_pytorchjob.py JOB.yaml DETR_TRAIN
Exits 0 when consistent, 1 otherwise, 77 (skipped) without python3-yaml.
"""
import os
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
    job = yaml.safe_load(open(path))
    assert job["kind"] == "PyTorchJob", job["kind"]
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"}, set(replicas)
    assert replicas["Master"]["replicas"] == 1
    world = sum(r["replicas"] for r in replicas.values())
    commands = []
    for name, spec in replicas.items():
        (container,) = spec["template"]["spec"]["containers"]
        assert container["name"] == "pytorch", f"{name}: container {container['name']!r}"
        assert container["command"] == ["detr_train"], container["command"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/mnt/data", "/mnt/output"} <= mounts, f"{name}: mounts {mounts}"
        commands.append(container["args"])
    assert all(c == commands[0] for c in commands), "replicas run different command lines"
    env = dict(os.environ, RANK="1", WORLD_SIZE=str(world), MASTER_ADDR="detr-train-master-0",
               MASTER_PORT="23456")
    r = subprocess.run([tool, "--parse_only"] + [str(a) for a in commands[0]], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"detr_train rejects the job's arguments: {r.stderr.strip()}")
        return 1
    print(f"{path}: {world} replicas, detr_train accepts: {' '.join(map(str, commands[0]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
