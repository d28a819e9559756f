#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for the tests.
#
#   tests/pg_cluster.sh start ENV_FILE   initdb in a new temp folder, start on a
#                                        free localhost port, create the roles,
#                                        write LOGBOOK_TEST_* lines to ENV_FILE
#                                        (and empty $LOGBOOK_TEST_CLIENT_ERRORS)
#   tests/pg_cluster.sh stop ENV_FILE    stop it and delete the folder
#   tests/pg_cluster.sh crash ENV_FILE   kill -9 the postmaster (a power cut)
#   tests/pg_cluster.sh restart ENV_FILE start it again on the same port
#   tests/pg_cluster.sh standby ENV_FILE PRIMARY_ENV_FILE
#                                        a streaming standby of that cluster
#                                        (pg_basebackup -R, application_name
#                                        "standby"), started on a free port
#   tests/pg_cluster.sh promote ENV_FILE promote a standby to primary
#
# initdb refuses to run as root, so as root the cluster runs as the
# unprivileged `postgres` user (created by Debian's postgresql package).
set -euo pipefail

usage="usage: pg_cluster.sh start|stop|crash|restart|promote ENV_FILE, or standby ENV_FILE PRIMARY_ENV_FILE"
action=${1:?$usage}
env_file=${2:?$usage}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "pg_cluster.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
start)
  # A new run of the suite: its client errors are collected afresh.
  if [ -n "${LOGBOOK_TEST_CLIENT_ERRORS:-}" ]; then : >"$LOGBOOK_TEST_CLIENT_ERRORS"; fi
  dir=$(mktemp -d /tmp/logbook-test-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_owner "$bindir/initdb" -D "$dir/data" -U logbook_admin --auth=trust -E UTF8 \
    --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && continue  # Taken.
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
         -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
         start >/dev/null; then
      break
    fi
    port=""
  done
  [ -n "$port" ] || { echo "pg_cluster.sh: could not start PostgreSQL" >&2; cat "$dir/server.log" >&2; exit 1; }
  psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U logbook_admin -d postgres)
  # The roles of docs/operations.md "Roles": the owner runs migrations, logbookd
  # connects as logbook_app, and as logbook_redactor (which reads every
  # tenant) for admin calls and the live tail.
  "${psql[@]}" -c "CREATE ROLE logbook_owner LOGIN CREATEDB" -c "CREATE ROLE logbook_app LOGIN" \
    -c "CREATE ROLE logbook_redactor LOGIN" -c "CREATE ROLE logbook_all_tenants" \
    -c "GRANT logbook_all_tenants TO logbook_redactor"
  cat >"$env_file" <<VARS
LOGBOOK_TEST_PG_DIR=$dir
LOGBOOK_TEST_PG_PORT=$port
LOGBOOK_TEST_ADMIN_DSN=postgresql://logbook_admin@127.0.0.1:$port/postgres
LOGBOOK_TEST_PG_BINDIR=$bindir
VARS
  echo "PostgreSQL test cluster on 127.0.0.1:$port in $dir"
  ;;
stop)
  [ -f "$env_file" ] || exit 0
  dir=$(sed -n 's/^LOGBOOK_TEST_PG_DIR=//p' "$env_file")
  if [ -n "$dir" ] && [ -d "$dir/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
  fi
  rm -f "$env_file"
  ;;
crash)
  dir=$(sed -n 's/^LOGBOOK_TEST_PG_DIR=//p' "$env_file")
  pid=$(head -n 1 "$dir/data/postmaster.pid")
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  ;;
restart)
  dir=$(sed -n 's/^LOGBOOK_TEST_PG_DIR=//p' "$env_file")
  port=$(sed -n 's/^LOGBOOK_TEST_PG_PORT=//p' "$env_file")
  # Orphaned backends of a crashed postmaster may still hold the port briefly.
  for attempt in $(seq 50); do
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
      start >/dev/null 2>&1 && exit 0
    sleep 0.2
  done
  echo "pg_cluster.sh: could not restart PostgreSQL" >&2; tail -n 20 "$dir/server.log" >&2; exit 1
  ;;
standby)
  primary_env=${3:?$usage}
  primary_port=$(sed -n 's/^LOGBOOK_TEST_PG_PORT=//p' "$primary_env")
  dir=$(mktemp -d /tmp/logbook-test-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_owner "$bindir/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U logbook_admin -D "$dir/data" \
    -R -X stream -c fast -d "application_name=standby" >"$dir/basebackup.log" 2>&1 ||
    { cat "$dir/basebackup.log" >&2; exit 1; }
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && continue  # Taken.
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
         -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
         start >/dev/null; then
      break
    fi
    port=""
  done
  [ -n "$port" ] || { echo "pg_cluster.sh: could not start the standby" >&2; cat "$dir/server.log" >&2; exit 1; }
  cat >"$env_file" <<VARS
LOGBOOK_TEST_PG_DIR=$dir
LOGBOOK_TEST_PG_PORT=$port
LOGBOOK_TEST_ADMIN_DSN=postgresql://logbook_admin@127.0.0.1:$port/postgres
LOGBOOK_TEST_PG_BINDIR=$bindir
VARS
  ;;
promote)
  dir=$(sed -n 's/^LOGBOOK_TEST_PG_DIR=//p' "$env_file")
  as_owner "$bindir/pg_ctl" -D "$dir/data" -w -t 30 promote >/dev/null
  ;;
*) echo "$usage" >&2; exit 2 ;;
esac
