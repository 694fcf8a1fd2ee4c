#!/usr/bin/env bash
# Debian packages pixsearch's browser tests use. Safe to run again; does nothing when present.
#   scripts/install-system-deps.sh [STAMP]
# STAMP is written only when every package is present afterwards, so a run that could not
# install (no root, no apt) is tried again next time. With CI=true that is an error.
set -euo pipefail
stamp="${1:-}"
chromium="${PIXSEARCH_CHROMIUM:-/usr/bin/chromium}"
packages=()
[ -x "$chromium" ] || packages+=(chromium)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    case "${CI:-}" in
      1|true|TRUE|True|yes)
        echo "error: ${packages[*]} missing and cannot be installed here (needs root + apt);" \
             "CI must run the browser tests." >&2
        exit 1 ;;
    esac
    echo "note: ${packages[*]} missing and cannot be installed here (needs root + apt);" \
         "browser tests will be skipped." >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" fonts-dejavu-core >/dev/null
  [ -x "$chromium" ] || { echo "error: $chromium still missing after installing" >&2; exit 1; }
fi
if [ -n "$stamp" ]; then
  touch "$stamp"
fi
