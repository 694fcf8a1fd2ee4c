#!/usr/bin/env bash
# Debian packages pixsearch's browser tests use. Safe to run again; does nothing when present.
set -euo pipefail
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: ${packages[*]} missing and cannot be installed here (needs root + apt);" \
       "browser tests will be skipped." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" fonts-dejavu-core >/dev/null
