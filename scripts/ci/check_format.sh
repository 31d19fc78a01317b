#!/usr/bin/env bash
# Fails when a C++ file of the repository differs from what clang-format 14 makes of it (.clang-format).
#   scripts/ci/check_format.sh          # check: lists the files that differ, exit 1 if any
#   scripts/ci/check_format.sh --fix    # rewrite them in place
# Other clang-format versions format some constructs differently, so the check needs version 14
# (Debian 12's clang-format-14, which scripts/setup/install_deps.sh installs there); without it the
# check is skipped (exit 77) and says why.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tool=""
for candidate in clang-format-14 clang-format; do
  if command -v "$candidate" >/dev/null && "$candidate" --version | grep -q 'version 14\.'; then
    tool=$candidate; break
  fi
done
if [ -z "$tool" ]; then
  echo "skipped: the tree is formatted with clang-format 14, which is not installed here" \
       "($(clang-format --version 2>/dev/null || echo 'no clang-format'))"
  exit 77
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.hpp' '*.cc' 2>/dev/null || find src models datasets util include tests fuzz -name '*.cpp' -o -name '*.h')
if [ "${1:-}" = --fix ]; then
  "$tool" -i "${files[@]}"
  echo "formatted ${#files[@]} files with $("$tool" --version)"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$tool" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf '%s: not formatted (scripts/ci/check_format.sh --fix)\n' "${bad[@]}"
  echo "${#bad[@]} of ${#files[@]} files differ from clang-format 14's output"
  exit 1
fi
echo "${#files[@]} files formatted as clang-format 14 does"
