#!/bin/sh
# Runs a command on an optional golden-data fixture, or reports it skipped (exit 77) when absent.
# usage: run_with_fixture.sh DEFAULT_FIXTURES_DIR SUBDIR COMMAND... (FIXTURE in COMMAND stands for the directory)
# $DETR_FIXTURES overrides DEFAULT_FIXTURES_DIR, as for the GoogleTest cases.
root=${DETR_FIXTURES:-$1}
dir="$root/$2"
shift 2
if [ ! -d "$dir" ]; then
  echo "skipped: optional fixture $dir not found (the larger golden data set; set DETR_FIXTURES to its directory)"
  exit 77
fi
cmd=$1
shift
set -- "$@" END
for a; do
  shift
  [ "$a" = END ] && break
  [ "$a" = FIXTURE ] && a=$dir
  set -- "$@" "$a"
done
exec "$cmd" "$@"
