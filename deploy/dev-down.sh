#!/usr/bin/env bash
# Stops what deploy/dev-up.sh started: logbookd and the dev PostgreSQL.
# Keeps the data; --purge deletes it (.local/ and, if dev-up had to put the
# cluster there, /var/tmp/logbook-dev-*).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state="$root/.local"
purge=""
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  *) echo "usage: deploy/dev-down.sh [--purge]" >&2; exit 2 ;;
esac

pid=$(cat "$state/logbookd.pid" 2>/dev/null || true)
if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
   [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)" 2>/dev/null)" = logbookd ]; then
  echo "==> stopping logbookd (pid $pid)"
  kill "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
fi
rm -f "$state/logbookd.pid"

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
# As root, runs "$@" as postgres (from /, which it can always enter).
as_owner() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
fallback_dir="/var/tmp/logbook-dev-$(printf '%s' "$root" | sha256sum | cut -c1-12)"
for pg_dir in "$state/pg" "$fallback_dir"; do
  [ -f "$pg_dir/data/PG_VERSION" ] || continue
  if [ -x "$bindir/pg_ctl" ] && as_owner "$bindir/pg_ctl" -D "$pg_dir/data" status >/dev/null 2>&1; then
    echo "==> stopping PostgreSQL ($pg_dir)"
    as_owner "$bindir/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null
  fi
  if [ -n "$purge" ] && [ "$pg_dir" = "$fallback_dir" ]; then rm -rf "$pg_dir"; fi
done
if [ -n "$purge" ]; then
  rm -rf "$state"
  echo "==> deleted the dev data"
fi
