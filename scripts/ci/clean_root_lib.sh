# Sourced by scripts/ci/clean_root_check.sh and scripts/ci/check_cuda_build.sh: minimal Debian roots
# (debootstrap --variant=minbase) for proving the user's view, removed with their mounts on any exit.
# The caller sets: suite (bookworm|trixie), components (e.g. main or main,contrib,non-free), workdir,
# and optionally apt_cache (a folder outside the roots that keeps downloaded packages between runs).
# Must run as root (debootstrap, chroot, mounts). Needs network access to Debian's package archive.

phase() { echo; echo "=== clean root ($suite): $* [$(date -u +%H:%M:%S)]"; }
export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

base=$(mktemp -d "${workdir:-/var/tmp}/detr-clean-root.XXXXXX")
roots=()
cleanup() {
  set +e  # clean up whatever state a failure left
  for r in "${roots[@]}"; do
    # Deepest mounts first.
    grep -o " $r/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  done
  # A mount left in place (the apt cache is a bind mount on the same file system, which
  # --one-file-system would not stop at) keeps the roots on disk rather than deleting through it.
  if grep -q " $base/" /proc/mounts; then
    echo "clean root: mounts under $base remain; the roots are left there:" >&2
    grep -o " $base/[^ ]*" /proc/mounts >&2
    return
  fi
  rm -rf --one-file-system "$base"
}
trap cleanup EXIT

# Within a run the base system is downloaded once (a tarball), then unpacked per root.
tarball="$base/$suite-minbase.tgz"
phase "debootstrap minbase (download)"
debootstrap --variant=minbase --components="$components" --make-tarball="$tarball" "$suite" "$base/tarball-work" \
  >"$base/debootstrap.log" 2>&1 || { tail -n 20 "$base/debootstrap.log"; exit 1; }
rm -rf "$base/tarball-work"

new_root() {  # new_root DIR: a minimal root with /proc, /sys, /dev, name resolution (and the apt cache)
  local r=$1
  roots+=("$r")
  debootstrap --variant=minbase --components="$components" --unpack-tarball="$tarball" "$suite" "$r" \
    >>"$base/debootstrap.log" 2>&1 || { tail -n 20 "$base/debootstrap.log"; exit 1; }
  # The components asked for (an unpacked tarball's sources name only main).
  echo "deb http://deb.debian.org/debian $suite ${components//,/ }" >"$r/etc/apt/sources.list"
  mount -t proc proc "$r/proc"
  mount -t sysfs sysfs "$r/sys"
  mount --rbind /dev "$r/dev"
  mount --make-rslave "$r/dev"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  if [ -n "${apt_cache:-}" ]; then
    mkdir -p "$apt_cache/partial" "$r/var/cache/apt/archives"
    mount --bind "$apt_cache" "$r/var/cache/apt/archives"
  fi
}
in_root() { local r=$1; shift; chroot "$r" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 /bin/bash -c "$*"; }
clone_into() {  # clone_into ROOT REPO: a clone of REPO's checked-out commit at ROOT/src/detr-cpp
  git clone -q --no-hardlinks "$2" "$1/src/detr-cpp"
  git -C "$1/src/detr-cpp" checkout -q "$(git -C "$2" rev-parse HEAD)"  # this worktree's commit
  echo "checkout: $(git -C "$1/src/detr-cpp" log --oneline -1); beside it: $(ls -A "$1/src")"
}
install_tools() {  # install_tools FROM_ROOT TO_ROOT: FROM_ROOT's built tools and the runtime install script
  in_root "$1" "cd /src/detr-cpp && scripts/setup/install_bin.sh /opt/detr" >/dev/null
  mkdir -p "$2/usr/local/bin" "$2/tmp/scripts"
  cp "$1/opt/detr/bin/"* "$2/usr/local/bin/"
  cp "$1/src/detr-cpp/scripts/setup/install_runtime_deps.sh" "$2/tmp/scripts/"
}
