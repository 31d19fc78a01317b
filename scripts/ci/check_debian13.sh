#!/usr/bin/env bash
# The README's commands in a clean Debian 13 (trixie: LibTorch 2.6, oneDNN 3.x) root: scripts/test.sh
# (and the optional golden data when given), as .ci/run does for Debian 12. Run as root; about as long
# as CI. usage: scripts/ci/check_debian13.sh [--fixtures DIR] [--skip-demo]
exec "$(dirname "$0")/clean_root_check.sh" --suite trixie "$@"
