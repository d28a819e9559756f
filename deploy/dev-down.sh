#!/usr/bin/env bash
# Stops what deploy/dev-up.sh started. Keeps the data; --purge deletes it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state="$root/.local"
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ -f "$state/logbookd.pid" ] && kill -0 "$(cat "$state/logbookd.pid")" 2>/dev/null; then
  echo "==> stopping logbookd"
  kill "$(cat "$state/logbookd.pid")"
  while kill -0 "$(cat "$state/logbookd.pid")" 2>/dev/null; do sleep 0.1; done
fi
rm -f "$state/logbookd.pid"
for pg_dir in "$state/pg" "/var/tmp/logbook-dev-$(echo "$root" | sha256sum | cut -c1-12)"; do
  if [ -f "$pg_dir/data/PG_VERSION" ]; then
    echo "==> stopping PostgreSQL ($pg_dir)"
    as_owner "$bindir/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    if [ "${1:-}" = "--purge" ]; then rm -rf "$pg_dir"; fi
  fi
done
if [ "${1:-}" = "--purge" ]; then rm -rf "$state"; echo "==> deleted the dev data"; fi
