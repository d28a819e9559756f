#!/usr/bin/env bash
# Prints, one a line and sorted, the Debian packages that hold the shared
# libraries the given binaries load (ldd, then dpkg-query -S): what the
# runtime image must install for them (deploy/Containerfile). Fails naming
# a library that no package holds, or one ldd cannot find.
#
#   deploy/container/runtime-packages.sh build/service/logbookd build/clients/logbook
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
libs=$(ldd "$@" | awk '
  /not found/ { print "MISSING " $1; next }
  $2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)
if grep -q '^MISSING' <<<"$libs"; then
  echo "runtime-packages: ldd cannot find: $(grep '^MISSING' <<<"$libs" | cut -d' ' -f2 | paste -sd' ')" >&2
  exit 1
fi
for lib in $libs; do
  # Debian ships libraries under /usr/lib; ldd may name them by /lib.
  real=$(readlink -f "$lib")
  owner=$(dpkg-query -S "$real" 2>/dev/null || dpkg-query -S "${real#/usr}" 2>/dev/null || true)
  [ -n "$owner" ] || { echo "runtime-packages: no Debian package holds $lib ($real)" >&2; exit 1; }
  echo "${owner%%:*}"
done | sort -u
