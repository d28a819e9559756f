#!/usr/bin/env bash
# Invariant 3: an append that returned OK survives kill -9 of logbookd and of
# PostgreSQL. Uses a cluster of its own, since it crashes it.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
env_file="$work/pg.env"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null
  "$here/pg_cluster.sh" stop "$env_file"
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

"$here/pg_cluster.sh" start "$env_file" >/dev/null || fail "cannot start PostgreSQL"
. "$env_file"
dsn="postgresql://logbook_admin@127.0.0.1:$LOGBOOK_TEST_PG_PORT/postgres"
"$LOGBOOK_CLI" migrate up --database "$dsn" >/dev/null || fail "migrate"

. "$here/e2e/lib.sh"
start_server() {
  start_logbookd "$dsn" "$work/server.log" || fail "logbookd did not start"
}
start_server

# Acknowledged appends, each recorded only once the server said OK.
acked=0
for i in $(seq 0 199); do
  if "$LOGBOOK_CLI" append "durable-$((i % 5))" --type Tick --data "{\"i\":$i}" >/dev/null; then
    acked=$((acked + 1))
  fi
done
[ "$acked" = 200 ] || fail "only $acked of 200 appends were acknowledged"

kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null; server_pid=""
"$here/pg_cluster.sh" crash "$env_file"
"$here/pg_cluster.sh" restart "$env_file" || fail "PostgreSQL did not come back"
start_server

count=$("$LOGBOOK_CLI" read '$all' --limit 100000 | wc -l)
[ "$count" = 200 ] || fail "after the crash \$all holds $count events, expected 200"
last=$("$LOGBOOK_CLI" read '$all' --backward --limit 1 --json)
grep -q '"global_position":200' <<<"$last" || fail "last event is not at position 200: $last"
# The log continues without a hole.
"$LOGBOOK_CLI" append durable-0 --type Tick --data '{"after":"crash"}' | grep -q "position 201" \
  || fail "the next append did not get position 201"

# PostgreSQL restarts under a running logbookd: it reconnects by itself, and
# the first read and append after the restart succeed.
"$here/pg_cluster.sh" crash "$env_file"
"$here/pg_cluster.sh" restart "$env_file" || fail "PostgreSQL did not come back (2)"
"$LOGBOOK_CLI" read durable-1 --backward --limit 1 | grep -q "Tick" || fail "read after restart"
"$LOGBOOK_CLI" append durable-1 --type Tick --data '{"after":"restart"}' | grep -q "position 202" \
  || fail "append after restart did not get position 202"
echo "2 passed, 0 failed"
