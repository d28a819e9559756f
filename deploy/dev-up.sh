#!/usr/bin/env bash
# README command 1: installs what is missing, builds, starts a private
# PostgreSQL (data under .local/pg, reused across runs), applies the
# migrations as the owner role and starts logbookd as the application role.
# Running it again reuses the cluster and the build and restarts logbookd, so
# it serves the new build. deploy/dev-down.sh stops both.
#
# LOGBOOK_PG_PORT (default 54329), LOGBOOK_LISTEN (default 127.0.0.1:50051)
# and LOGBOOK_HTTP_LISTEN (the HTTP API and web console, default
# 127.0.0.1:8080) move the ports; LOGBOOK_JOBS sets the build's
# parallelism (default 2); LOGBOOK_PREFIX where `cmake --install` puts
# logbook and logbookd (default /usr/local as root, else ~/.local).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pg_port=${LOGBOOK_PG_PORT:-54329}
listen=${LOGBOOK_LISTEN:-127.0.0.1:50051}
http_listen=${LOGBOOK_HTTP_LISTEN:-127.0.0.1:8080}
state="$root/.local"

die() { echo "dev-up: $*" >&2; exit 1; }
[[ "$pg_port" =~ ^[0-9]+$ ]] || die "LOGBOOK_PG_PORT must be a port number, not '$pg_port'"
[[ "$listen" == *:* ]] || die "LOGBOOK_LISTEN must be host:port, not '$listen'"
listen_host=${listen%:*}
listen_port=${listen##*:}
[ "$listen_host" = 0.0.0.0 ] && probe_host=127.0.0.1 || probe_host=$listen_host
# True when something accepts TCP connections on host $1, port $2.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

deploy/install-deps.sh
deploy/build.sh
# logbook and logbookd on the PATH, with logbook's bash completion.
if [ "$(id -u)" = 0 ]; then prefix=${LOGBOOK_PREFIX:-/usr/local}; else prefix=${LOGBOOK_PREFIX:-$HOME/.local}; fi
cmake --install build --prefix "$prefix" >/dev/null
echo "==> installed logbook and logbookd in $prefix/bin"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "    ($prefix/bin is not on your PATH yet: add it)" ;; esac
cli="$root/build/clients/logbook"
logbookd="$root/build/service/logbookd"

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
# As root, runs "$@" as postgres (from /, which it can always enter).
as_owner() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

mkdir -p "$state"
# initdb refuses to run as root: as root the cluster belongs to the
# `postgres` user, which must be able to reach its folder. When it cannot
# (a parent directory such as /root is private), the cluster lives under
# /var/tmp instead, one per checkout.
fallback_dir="/var/tmp/logbook-dev-$(printf '%s' "$root" | sha256sum | cut -c1-12)"
pg_dir="$state/pg"
if [ ! -f "$pg_dir/data/PG_VERSION" ] && [ "$(id -u)" = 0 ]; then
  chmod a+x "$state"
  if [ -f "$fallback_dir/data/PG_VERSION" ] || ! runuser -u postgres -- test -x "$state"; then
    pg_dir=$fallback_dir
    echo "==> the postgres user cannot reach $state; keeping the cluster in $pg_dir"
  fi
fi
if [ ! -f "$pg_dir/data/PG_VERSION" ]; then
  echo "==> creating a PostgreSQL cluster in $pg_dir"
  mkdir -p "$pg_dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$pg_dir"; fi
  as_owner "$bindir/initdb" -D "$pg_dir/data" -U logbook_admin --auth=trust -E UTF8 \
    --locale=C.UTF-8 >"$pg_dir/initdb.log" 2>&1 || { cat "$pg_dir/initdb.log" >&2; exit 1; }
fi

# Our cluster may already be running, perhaps on another port than asked.
running_port=""
if as_owner "$bindir/pg_ctl" -D "$pg_dir/data" status >/dev/null 2>&1; then
  running_port=$(sed -n 4p "$pg_dir/data/postmaster.pid")
  if [ "$running_port" != "$pg_port" ]; then
    echo "==> PostgreSQL runs on port $running_port; restarting it on $pg_port"
    as_owner "$bindir/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null
    running_port=""
  fi
fi
if [ -z "$running_port" ]; then
  port_open 127.0.0.1 "$pg_port" &&
    die "port $pg_port is taken by another program; set LOGBOOK_PG_PORT to a free port"
  echo "==> starting PostgreSQL on 127.0.0.1:$pg_port"
  as_owner "$bindir/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null || {
    echo "dev-up: PostgreSQL did not start; the end of $pg_dir/server.log:" >&2
    tail -n 20 "$pg_dir/server.log" >&2
    exit 1
  }
else
  echo "==> PostgreSQL already running on 127.0.0.1:$pg_port"
fi

psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U logbook_admin -d postgres)
exists() { [ -n "$("${psql[@]}" -Atc "$1")" ]; }
for role in "logbook_owner LOGIN CREATEDB" "logbook_app LOGIN" "logbook_redactor LOGIN" \
            "logbook_all_tenants NOLOGIN"; do
  if ! exists "SELECT 1 FROM pg_roles WHERE rolname = '${role%% *}'"; then
    echo "==> creating role ${role%% *}"
    "${psql[@]}" -c "CREATE ROLE $role"
  fi
done
# The admin connection reads every tenant: the live tail, signed checkpoints.
"${psql[@]}" -c "GRANT logbook_all_tenants TO logbook_redactor"
if ! exists "SELECT 1 FROM pg_database WHERE datname = 'logbook'"; then
  echo "==> creating database logbook (owner logbook_owner)"
  "${psql[@]}" -c "CREATE DATABASE logbook OWNER logbook_owner"
fi

owner_dsn="postgresql://logbook_owner@127.0.0.1:$pg_port/logbook"
app_dsn="postgresql://logbook_app@127.0.0.1:$pg_port/logbook"
redactor_dsn="postgresql://logbook_redactor@127.0.0.1:$pg_port/logbook"
echo "==> applying migrations as logbook_owner"
"$cli" migrate up --database "$owner_dsn"

# The pid file names our logbookd only while that process still runs the
# logbookd binary (a stale file may name an unrelated process by now).
ours_running() {
  local pid
  pid=$(cat "$state/logbookd.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)" 2>/dev/null)" = logbookd ]
}
if ours_running; then
  pid=$(cat "$state/logbookd.pid")
  echo "==> stopping the running logbookd (pid $pid)"
  kill "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; sleep 0.2; fi
fi
rm -f "$state/logbookd.pid"
port_open "$probe_host" "$listen_port" &&
  die "$listen is already in use by another program; stop it or set LOGBOOK_LISTEN"

# Admin calls (redaction) need a token: one per dev setup, kept with its state.
token_file="$state/admin-token"
if [ ! -s "$token_file" ]; then
  (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$token_file")
fi
# Every other call needs one too: a developer token with every role but
# admin, in a tokens file of its own (docs/security.md).
dev_token_file="$state/dev-token"
auth_tokens="$state/auth-tokens"
if [ ! -s "$dev_token_file" ] || [ ! -s "$auth_tokens" ]; then
  made=$("$cli" auth token create developer --roles reader,writer,consumer,operator 2>/dev/null) ||
    die "logbook auth token create failed"
  (umask 077 && sed -n 1p <<<"$made" >"$dev_token_file" && sed -n 2p <<<"$made" >"$auth_tokens")
fi
export LOGBOOK_TOKEN
LOGBOOK_TOKEN=$(cat "$dev_token_file")

echo "==> starting logbookd on $listen"
echo "---- $(date -u +%Y-%m-%dT%H:%M:%SZ) dev-up: starting logbookd" >>"$state/logbookd.log"
# A development server off loopback serves plaintext on purpose (logbookd
# otherwise refuses to; docs/security.md).
insecure=()
case "$listen_host" in 127.*|localhost|::1|\[::1\]) ;; *) insecure=(--insecure-listen) ;; esac
nohup "$logbookd" --listen "$listen" --database "$app_dsn" --admin-database "$redactor_dsn" \
  --admin-token-file "$token_file" --auth-tokens "$auth_tokens" --http-listen "$http_listen" \
  "${insecure[@]}" \
  >>"$state/logbookd.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$state/logbookd.pid"
# GetStream of a stream that does not exist answers NOT_FOUND (exit code 3)
# once the server serves; 6 means not reachable yet.
up=""
for _ in $(seq 150); do
  code=0
  "$cli" --address "$probe_host:$listen_port" --timeout 2 stream dev-up-probe >/dev/null 2>&1 ||
    code=$?
  if [ "$code" = 3 ]; then up=1; break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dev-up: logbookd exited; the end of $state/logbookd.log:" >&2
    tail -n 20 "$state/logbookd.log" >&2
    rm -f "$state/logbookd.pid"
    exit 1
  fi
  sleep 0.1
done
[ -n "$up" ] || die "logbookd (pid $pid) does not answer on $listen; see $state/logbookd.log"

address_hint=""
[ "$listen" = 127.0.0.1:50051 ] || address_hint="
  export LOGBOOK_ADDRESS=$probe_host:$listen_port"
cat <<TRY

Logbook is running: logbookd on $listen (pid $pid), PostgreSQL on 127.0.0.1:$pg_port.
The web console and the HTTP API: http://$http_listen/ (sign in with the developer token).
Calls need the developer token (every role but admin):
  export LOGBOOK_TOKEN=\$(cat $dev_token_file)$address_hint
Try, from $root:
  build/clients/logbook append order-1 --type OrderPlaced --data '{"total": 5}'
  build/clients/logbook append order-1 --type OrderPaid --data '{"amount": 5}' --expect exists
  build/clients/logbook read order-1
  build/clients/logbook read '\$all' --json
  build/clients/logbook stream order-1
  build/clients/logbook subscribe --category order    # backlog, then live; Ctrl-C stops
  LOGBOOK_ADMIN_TOKEN=\$(cat $token_file) build/clients/logbook redact order-1 0 --reason 'GDPR request'
  build/clients/logbook verify --all
  psql $owner_dsn -c 'SELECT global_position, stream_id, stream_version, event_type FROM logbook.event_log'
Logs: $state/logbookd.log and $pg_dir/server.log
Stop: deploy/dev-down.sh (keeps the data; --purge deletes it)
TRY
