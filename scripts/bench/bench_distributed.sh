#!/usr/bin/env bash
# Data-parallel scaling on one machine with Gloo on loopback: detr_bench training throughput of
#   A) 1 process  x T threads, batch B        (one worker's speed)
#   B) N processes x T threads, batch B each  (the job: N x B images per step)
#   C) 1 process  x N*T threads, batch N*B    (the same cores and global batch, without processes)
# and the scaling efficiency B / (N x A). Usage:
#   scripts/bench/bench_distributed.sh [N=2] [T=1] [B=2] [extra detr_bench flags, e.g. --config small]
# On a CPU-only machine the N processes share its cores: with N*T = cores, B measures how well
# data-parallel training uses them against C, not multi-machine scaling.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bench=${DETR_BENCH:-$root/build/src/cli/detr_bench}
n=${1:-2}; t=${2:-1}; b=${3:-2}; shift $(( $# < 3 ? $# : 3 ))
extra=("--config" "small" "--warmup" "1" "--steps" "3" "--repeats" "2" "--num_workers" "1" "$@")
port=$(( 29500 + RANDOM % 2000 ))
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

ips() { sed -n 's/.*"train":{"images_per_s":\([0-9.e+-]*\).*/\1/p' "$1" | tail -1; }
sync_s() { sed -n 's/.*"grad_sync":\([0-9.e+-]*\).*/\1/p' "$1" | tail -1; }

echo "A) 1 process x $t threads, batch $b" >&2
"$bench" --mode train --num_threads "$t" --batch_size "$b" "${extra[@]}" > "$tmp/a.out"
echo "B) $n processes x $t threads, batch $b each (Gloo, 127.0.0.1:$port)" >&2
pids=()
for ((r = n - 1; r >= 0; r--)); do
  RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r LOCAL_WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$bench" --mode train --num_threads "$t" --batch_size "$b" "${extra[@]}" > "$tmp/b$r.out" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "C) 1 process x $((n * t)) threads, batch $((n * b))" >&2
"$bench" --mode train --num_threads "$((n * t))" --batch_size "$((n * b))" "${extra[@]}" > "$tmp/c.out"

a=$(ips "$tmp/a.out"); bb=$(ips "$tmp/b0.out"); c=$(ips "$tmp/c.out")
for f in a b0 c; do head -3 "$tmp/$f.out"; done
awk -v a="$a" -v b="$bb" -v c="$c" -v n="$n" -v s="$(sync_s "$tmp/b0.out")" 'BEGIN {
  printf "A 1 process:            %.3f images/s\n", a
  printf "B %d processes:          %.3f images/s (gradient all-reduce %.3f s/step)\n", n, b, s
  printf "C 1 process, all cores: %.3f images/s\n", c
  printf "scaling efficiency B / (%d x A) = %.2f; B / C = %.2f\n", n, b / (n * a), b / c
}'
