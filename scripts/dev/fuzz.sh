#!/usr/bin/env bash
# Fuzzes the readers of hostile files with libFuzzer (Clang, AddressSanitizer + UBSan):
#   fuzz_torch_save  the torch.save reader (zip + legacy, the unpickler) and what uses a loaded value
#   fuzz_coco        the COCO annotation reader and what training does with a loaded dataset
#
#   scripts/dev/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s each, both targets)
#
# Installs clang and libFuzzer's runtime (Debian: clang libclang-rt-dev) when missing, configures a
# separate build directory (build-fuzz, or $DETR_FUZZ_BUILD_DIR) with -DDETR_FUZZ=ON and builds only
# the fuzz targets (fuzz/CMakeLists.txt: the readers' sources, instrumented). Each target starts from
# the committed corpus (fuzz/corpus/<target>, read only); the inputs it finds go to a scratch folder
# ($DETR_FUZZ_OUT, default build-fuzz/fuzz-runs/<target>/corpus), crashing inputs and logs beside it.
# Exits 1 when a target found a crash, a leak, a timeout or an out-of-memory input, printing how to
# replay it. Extra libFuzzer flags: $DETR_FUZZ_FLAGS (e.g. "-detect_leaks=0 -jobs=2").
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(torch_save coco)
build=${DETR_FUZZ_BUILD_DIR:-$root/build-fuzz}
out=${DETR_FUZZ_OUT:-$build/fuzz-runs}
jobs=${DETR_JOBS:-$(nproc)}
case "$seconds" in ''|*[!0-9]*) echo "usage: $0 [SECONDS] [torch_save|coco...]" >&2; exit 2 ;; esac

# ---- clang + libFuzzer ---------------------------------------------------------------------------
fuzzer_works() {
  local probe
  probe=$(mktemp -d)
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/p.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1
  local rc=$?
  rm -rf "$probe"
  return $rc
}
if ! command -v clang++ >/dev/null 2>&1 || ! fuzzer_works; then
  echo "fuzz.sh: installing clang and libFuzzer (Debian packages clang libclang-rt-dev)"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq clang libclang-rt-dev >/dev/null
  fuzzer_works || { echo "fuzz.sh: clang++ -fsanitize=fuzzer still fails to link" >&2; exit 1; }
fi

# ---- build ---------------------------------------------------------------------------------------
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  # RelWithDebInfo at -O1 without NDEBUG: asserts stay on, stacks stay readable. tcmalloc would
  # fight ASan's allocator; the PCH is not shared with sanitized targets anyway.
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DDETR_FUZZ=ON -DDETR_BUILD_TESTS=OFF -DDETR_ENABLE_PCH=OFF -DDETR_TCMALLOC=OFF
fi
cmake --build "$build" --parallel "$jobs" --target "${targets[@]/#/fuzz_}"

# ---- run -----------------------------------------------------------------------------------------
# -detect_leaks=0 in DETR_FUZZ_FLAGS (to look past a known leak) turns off the check at exit too.
leaks=1
case " ${DETR_FUZZ_FLAGS:-} " in *" -detect_leaks=0 "*) leaks=0 ;; esac
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=$leaks:allocator_may_return_null=0}
# LibTorch's zip reader leaks when its constructor throws (fuzz/lsan.supp says which leak and why).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1  # LibTorch's intra-op pool: one thread per fuzzing process
found=0
summary=()
for t in "${targets[@]}"; do
  bin=$(find "$build" -type f -name "fuzz_$t" -perm -u+x | head -n 1)
  [ -n "$bin" ] || { echo "fuzz.sh: fuzz_$t not built" >&2; exit 1; }
  work="$out/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  case "$t" in
    torch_save) max_len=16384 ;;
    *) max_len=8192 ;;
  esac
  echo "== fuzz_$t: ${seconds}s, corpus $root/fuzz/corpus/$t (+ $work/corpus), log $work/fuzz.log"
  rc=0
  # shellcheck disable=SC2086  # DETR_FUZZ_FLAGS: several flags
  "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$work/artifacts/" ${DETR_FUZZ_FLAGS:-} \
    "$work/corpus" "$root/fuzz/corpus/$t" >"$work/fuzz.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log" | tail -n 1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$work/fuzz.log" | tail -n 1)
  line="fuzz_$t: exit $rc, ${execs:-?} runs, ${speed:-?} exec/s, ${cov:-no coverage line}"
  artifacts=$(find "$work/artifacts" -type f | sort)
  if [ "$rc" != 0 ] || [ -n "$artifacts" ]; then
    found=1
    echo "$line: FOUND"
    grep -E '^==[0-9]+==ERROR|runtime error:|^SUMMARY|ERROR: libFuzzer|round trip:|deadly signal' "$work/fuzz.log" | head -n 20 || true
    for a in $artifacts; do echo "  input: $a   (replay: $bin $a)"; done
  else
    echo "$line"
  fi
  summary+=("$line")
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $found
