#!/usr/bin/env bash
# System packages some tests need: Debian's Chromium (the review UI runs in it headless), a PostgreSQL server
# (the review store's PostgreSQL test) and a CJK font (the QA report's screenshot test shows Chinese, not boxes). Installed only when missing; needs root (or sudo) and a Debian package mirror.
# Without them those tests skip and say why; every other test still runs.
set -uo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo -n); else
  echo "install-test-deps: not root and no sudo; missing ${need[*]} (their tests will skip)" >&2; exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "install-test-deps: no apt-get; install ${need[*]} by hand (their tests will skip)" >&2; exit 0; fi

echo "install-test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >/dev/null \
  && "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "install-test-deps: apt-get failed; the tests that need ${need[*]} will skip" >&2
exit 0
