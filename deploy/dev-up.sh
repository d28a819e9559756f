#!/usr/bin/env bash
# README command 1: installs what is missing, builds, starts a private
# PostgreSQL (data under .local/, reused across runs), applies the
# migrations as the owner role and starts logbookd as the application role.
# Running it again reuses the cluster and the build and restarts logbookd.
#
# LOGBOOK_PG_PORT (default 54329) and LOGBOOK_LISTEN (default
# 127.0.0.1:50051) move the two ports.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pg_port=${LOGBOOK_PG_PORT:-54329}
listen=${LOGBOOK_LISTEN:-127.0.0.1:50051}
state="$root/.local"
mkdir -p "$state"

deploy/install-deps.sh
deploy/build.sh

bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# initdb refuses root: as root the cluster belongs to the `postgres` user,
# which must be able to reach the folder.
pg_dir="$state/pg"
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$state"; then
  pg_dir="/var/tmp/logbook-dev-$(echo "$root" | sha256sum | cut -c1-12)"
  echo "==> $state is not reachable by the postgres user; keeping the cluster in $pg_dir"
fi
if [ ! -f "$pg_dir/data/PG_VERSION" ]; then
  echo "==> creating a PostgreSQL cluster in $pg_dir"
  mkdir -p "$pg_dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$pg_dir"
  as_owner "$bindir/initdb" -D "$pg_dir/data" -U logbook_admin --auth=trust -E UTF8 \
    --locale=C.UTF-8 >"$pg_dir/initdb.log"
fi
if ! as_owner "$bindir/pg_ctl" -D "$pg_dir/data" status >/dev/null 2>&1; then
  echo "==> starting PostgreSQL on 127.0.0.1:$pg_port"
  as_owner "$bindir/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
fi
psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U logbook_admin -d postgres)
if [ -z "$("${psql[@]}" -Atc "SELECT 1 FROM pg_roles WHERE rolname = 'logbook_owner'")" ]; then
  echo "==> creating roles logbook_owner (migrations) and logbook_app (logbookd)"
  "${psql[@]}" -c "CREATE ROLE logbook_owner LOGIN CREATEDB" -c "CREATE ROLE logbook_app LOGIN"
fi
if [ -z "$("${psql[@]}" -Atc "SELECT 1 FROM pg_database WHERE datname = 'logbook'")" ]; then
  "${psql[@]}" -c "CREATE DATABASE logbook OWNER logbook_owner"
fi

owner_dsn="postgresql://logbook_owner@127.0.0.1:$pg_port/logbook"
app_dsn="postgresql://logbook_app@127.0.0.1:$pg_port/logbook"
echo "==> migrating"
build/clients/logbook migrate up --database "$owner_dsn"

if [ -f "$state/logbookd.pid" ] && kill -0 "$(cat "$state/logbookd.pid")" 2>/dev/null; then
  echo "==> stopping the running logbookd"
  kill "$(cat "$state/logbookd.pid")"
  while kill -0 "$(cat "$state/logbookd.pid")" 2>/dev/null; do sleep 0.1; done
fi
if (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null; then
  echo "dev-up: $listen is already in use by another program; set LOGBOOK_LISTEN" >&2
  exit 1
fi
echo "==> starting logbookd on $listen"
nohup build/service/logbookd --listen "$listen" --database "$app_dsn" \
  >>"$state/logbookd.log" 2>&1 &
echo $! >"$state/logbookd.pid"
export LOGBOOK_ADDRESS=$listen
for _ in $(seq 100); do
  code=0
  build/clients/logbook stream dev-up-probe >/dev/null 2>&1 || code=$?
  [ "$code" = 3 ] && break  # NOT_FOUND: the server answered.
  if ! kill -0 "$(cat "$state/logbookd.pid")" 2>/dev/null; then
    echo "dev-up: logbookd exited; its log:" >&2
    tail -n 20 "$state/logbookd.log" >&2
    exit 1
  fi
  sleep 0.1
done

cat <<TRY

Logbook is running: logbookd on $listen, PostgreSQL on 127.0.0.1:$pg_port.
Try:
  export LOGBOOK_ADDRESS=$listen
  build/clients/logbook append order-1 --type OrderPlaced --data '{"total": 5}' --expect none
  build/clients/logbook read order-1
  build/clients/logbook subscribe '\$all'          # catch-up, then live (Ctrl-C stops)
  build/clients/logbook stream order-1
  psql "$owner_dsn" -c 'SELECT * FROM logbook.event_log'
Logs: $state/logbookd.log and $pg_dir/server.log. Stop: deploy/dev-down.sh
TRY
