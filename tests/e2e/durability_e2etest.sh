#!/usr/bin/env bash
# Invariant 3: an append that returned OK survives kill -9 of logbookd and of
# PostgreSQL. Uses a cluster of its own, since it crashes it.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/e2e/lib.sh"
begin_test
env_file="$work/pg.env"
stop_cluster() { [ -n "${KEEP:-}" ] || "$here/pg_cluster.sh" stop "$env_file"; }
on_exit stop_cluster

# Not a new run of the suite: the client errors collected so far stay.
env -u LOGBOOK_TEST_CLIENT_ERRORS "$here/pg_cluster.sh" start "$env_file" >/dev/null || fail "cannot start PostgreSQL"
. "$env_file"
dsn="postgresql://logbook_admin@127.0.0.1:$LOGBOOK_TEST_PG_PORT/postgres"
"$LOGBOOK_CLI" migrate up --database "$dsn" >/dev/null || fail "migrate"

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
pass "200 appends acknowledged"

kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null; server_pid=""
"$here/pg_cluster.sh" crash "$env_file"
"$here/pg_cluster.sh" restart "$env_file" || fail "PostgreSQL did not come back"
start_server

count=$("$LOGBOOK_CLI" read '$all' --limit 100000 | wc -l)
[ "$count" = 200 ] || fail "after the crash \$all holds $count events, expected 200"
last=$("$LOGBOOK_CLI" read '$all' --backward --limit 1 --json)
grep -q '"global_position":200' <<<"$last" || fail "last event is not at position 200: $last"
# The log continues without a hole.
out=$("$LOGBOOK_CLI" append durable-0 --type Tick --data '{"after":"crash"}')
[[ "$out" == *"position 201"* ]] || fail "the next append did not get position 201: $out"
pass "every acknowledged append survived kill -9 of logbookd and PostgreSQL"

# PostgreSQL restarts under a running logbookd and an open subscription: the
# server reconnects by itself, the first read and append after the restart
# succeed, and the subscriber (resuming if its call ended) gets every event
# once, in order.
"$LOGBOOK_CLI" subscribe '$all' --count 203 --json >"$work/sub.out" 2>"$work/sub.err" &
sub_pid=$!
for _ in $(seq 100); do grep -q "caught up" "$work/sub.err" && break; sleep 0.05; done
"$here/pg_cluster.sh" crash "$env_file"
"$here/pg_cluster.sh" restart "$env_file" || fail "PostgreSQL did not come back (2)"
out=$("$LOGBOOK_CLI" read durable-1 --backward --limit 1) || fail "read after restart"
[[ "$out" == *Tick* ]] || fail "read after restart printed: $out"
out=$("$LOGBOOK_CLI" append durable-1 --type Tick --data '{"after":"restart"}')
[[ "$out" == *"position 202"* ]] || fail "append after restart did not get position 202: $out"
"$LOGBOOK_CLI" append durable-2 --type Tick --data '{"after":"restart"}' >/dev/null || fail "append 203"
for _ in $(seq 200); do kill -0 "$sub_pid" 2>/dev/null || break; sleep 0.05; done
kill "$sub_pid" 2>/dev/null && fail "the subscriber did not get all 203 events: $(wc -l <"$work/sub.out")"
positions=$(grep -o '"global_position":[0-9]*' "$work/sub.out" | cut -d: -f2 | tr '\n' ' ')
[ "$positions" = "$(seq -s ' ' 1 203) " ] || fail "subscriber saw positions: $positions"
pass "logbookd and a subscriber carry on over a PostgreSQL restart"

# SIGTERM while appends are in flight: every acknowledged append is stored.
for w in $(seq 1 6); do
  ( for i in $(seq 1 40); do
      id=$(printf '00000000-0000-4000-8000-%012d' $((w * 1000 + i)))
      # Stop at the first refusal: the server is going away.
      "$LOGBOOK_CLI" --timeout 5 append "term-$w" --type T --data '{}' --event-id "$id" \
        >/dev/null 2>&1 || break
      echo "$id"
    done ) >"$work/acked.$w" &
done
sleep 0.5
stop_logbookd; code=$?
[ "$code" = 0 ] || fail "logbookd exited with $code on SIGTERM"
wait
start_server
"$LOGBOOK_CLI" read '$all' --from 203 --limit 100000 --json >"$work/after-term.json" \
  || fail "cannot read after SIGTERM"
missing=0
for id in $(cat "$work"/acked.*); do
  grep -q "$id" "$work/after-term.json" || missing=$((missing + 1))
done
acked=$(cat "$work"/acked.* | wc -l)
[ "$missing" = 0 ] || fail "$missing of $acked acknowledged appends are missing after SIGTERM"
[ "$acked" -gt 0 ] || fail "no append was acknowledged before SIGTERM"
pass "every append acknowledged before SIGTERM is stored"
finish
