#!/usr/bin/env bash
# Before `npm test`: the servers the suite runs for real (Redis for shared state, PostgreSQL for
# recordings), and Debian's chromium, in which test/console-browser.test.ts drives the console. Each test file starts its own throwaway instance on a free loopback port and stops
# it; this only makes sure the programs are there, installing Debian's packages when they are not
# and this user may (root, or sudo without a password).
set -euo pipefail

pg_bin () {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | sort -V | tail -n 1
}

missing=()
command -v redis-server > /dev/null || missing+=(redis-server)
[ -n "$(pg_bin)" ] || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
  as_root=(sudo -n)
else
  echo "npm test needs ${missing[*]} (Debian packages); install them: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages for the test suite"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null ||
  { "${as_root[@]}" apt-get update > /dev/null && "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null; }
# The packages' own services are not used: the tests start their own instances.
command -v redis-server > /dev/null && [ -n "$(pg_bin)" ] && [ -x /usr/bin/chromium ]
