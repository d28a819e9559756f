#!/usr/bin/env bash
# Reads from a hot standby (logbookd --replica-database): a real streaming
# replica (pg_basebackup -R) serves ReadStream, ReadAll, GetStream, Verify
# and subscriptions' catch-up while it has replayed as far as logbookd
# knows the log to be (a catch-up window: all of the window); with
# its replay paused (pg_wal_replay_pause) and the log moved on, the primary
# serves them, so no read misses an event; resumed, the replica serves
# again. The same holds for the events of a ROUND_ROBIN consumer group's
# leases. logbook_reads_total{database} says which served. Clusters of its
# own.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/e2e/lib.sh"
begin_test
primary_env="$work/primary.env"
standby_env="$work/standby.env"
stop_clusters() {
  [ -n "${KEEP:-}" ] && return
  "$here/pg_cluster.sh" stop "$standby_env"
  "$here/pg_cluster.sh" stop "$primary_env"
}
on_exit stop_clusters
cli=$LOGBOOK_CLI

# Not a new run of the suite: the client errors collected so far stay.
env -u LOGBOOK_TEST_CLIENT_ERRORS "$here/pg_cluster.sh" start "$primary_env" >/dev/null || fail "cannot start the primary"
primary_port=$(sed -n 's/^LOGBOOK_TEST_PG_PORT=//p' "$primary_env")
primary="postgresql://logbook_admin@127.0.0.1:$primary_port/postgres"
"$cli" migrate up --database "$primary" >/dev/null || fail "migrate"
"$here/pg_cluster.sh" standby "$standby_env" "$primary_env" || fail "cannot start the standby"
standby_port=$(sed -n 's/^LOGBOOK_TEST_PG_PORT=//p' "$standby_env")
standby="postgresql://logbook_admin@127.0.0.1:$standby_port/postgres"
[ "$(psql -X -At "$standby" -c "SELECT pg_is_in_recovery()")" = t ] || fail "the standby is not one"
pass "a streaming standby of the primary"

start_logbookd "$primary" "$work/server.log" --replica-database "$standby" \
  --metrics-listen 127.0.0.1:0 || fail "logbookd did not start"
port=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$work/server.log" | head -1 | cut -d: -f3)
# reads DATABASE: logbook_reads_total{database="DATABASE"}.
reads() {
  python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())" |
    awk -v k="logbook_reads_total{database=\"$1\"}" '$1 == k { print $2 }'
}
replayed() { psql -X -At "$standby" -c "SELECT last_position FROM logbook.log_head"; }
wait_replayed() {
  for _ in $(seq 200); do [ "$(replayed)" = "$1" ] && return 0; sleep 0.05; done
  fail "the standby replayed to $(replayed), not $1"
}

for i in 1 2 3 4 5; do "$cli" append r-1 --type Tick --data "{\"i\":$i}" >/dev/null || fail "append $i"; done
wait_replayed 5
p0=$(reads primary) r0=$(reads replica)
check "read, caught up" 0 '^5  r-1@4' -- sh -c "'$cli' read r-1 | tail -1"
check "stream, caught up" 0 '^version        4$' -- "$cli" stream r-1
check "verify, caught up" 0 '^ok: 5 events' -- "$cli" verify r-1
check "subscribe, caught up" 0 '^1 2 3 4 5$' -- \
  sh -c "'$cli' subscribe '\$all' --count 5 | cut -d' ' -f1 | paste -sd' '"
# One read each (a page of ReadStream, GetStream, Verify, a catch-up window).
[ "$(reads primary)" = "$p0" ] && [ "$(reads replica)" = $((r0 + 4)) ] ||
  fail "reads: primary $p0 -> $(reads primary), replica $r0 -> $(reads replica)"
pass "the replica served the 4 reads, the primary none"

# The replica stops replaying; the log moves on.
psql -X -q "$standby" -c "SELECT pg_wal_replay_pause()" >/dev/null || fail "cannot pause replay"
for i in 6 7 8; do "$cli" append r-1 --type Tick --data "{\"i\":$i}" >/dev/null || fail "append $i"; done
[ "$(replayed)" = 5 ] || fail "the paused standby replayed to $(replayed)"
p1=$(reads primary) r1=$(reads replica)
check "read, replica behind" 0 '^8  r-1@7' -- sh -c "'$cli' read r-1 | tail -1"
check "read all from 6, replica behind" 0 '^6 7 8$' -- \
  sh -c "'$cli' read '\$all' --from 6 | cut -d' ' -f1 | paste -sd' '"
check "stream, replica behind" 0 '^version        7$' -- "$cli" stream r-1
check "verify, replica behind" 0 '^ok: 8 events' -- "$cli" verify r-1
check "subscribe, replica behind" 0 '^1 2 3 4 5 6 7 8$' -- \
  sh -c "'$cli' subscribe '\$all' --count 8 | cut -d' ' -f1 | paste -sd' '"
[ "$(reads replica)" = "$r1" ] && [ "$(reads primary)" = $((p1 + 5)) ] ||
  fail "reads: primary $p1 -> $(reads primary), replica $r1 -> $(reads replica)"
pass "with the replica behind, the primary served the 5 reads: nothing missed"

psql -X -q "$standby" -c "SELECT pg_wal_replay_resume()" >/dev/null || fail "cannot resume replay"
wait_replayed 8
p2=$(reads primary) r2=$(reads replica)
check "read, caught up again" 0 '^8  r-1@7' -- sh -c "'$cli' read r-1 | tail -1"
[ "$(reads primary)" = "$p2" ] && [ "$(reads replica)" = $((r2 + 1)) ] ||
  fail "reads: primary $p2 -> $(reads primary), replica $r2 -> $(reads replica)"
pass "caught up again, the replica serves again"
check "appends go to the primary" 0 'at version 8' -- "$cli" append r-1 --type Tick --data '{}'

# A ROUND_ROBIN consumer group's leases read their events from the replica
# once it has replayed them, and from the primary while it has not.
# consume_from DATABASE COUNT POSITIONS: `logbook consume` of COUNT events
# gets POSITIONS, the leases' reads all served by DATABASE (replica or
# primary), at least one.
consume_from() {
  local served=$1 other=primary before_served before_other
  [ "$served" = primary ] && other=replica
  before_served=$(reads "$served") before_other=$(reads "$other")
  check "consume $2 from the $served" 0 "^$3\$" -- \
    sh -c "'$cli' consume rr --consumer w --count $2 2>/dev/null | cut -d' ' -f1 | paste -sd' '"
  [ "$(reads "$served")" -gt "$before_served" ] && [ "$(reads "$other")" = "$before_other" ] ||
    fail "reads: $served $before_served -> $(reads "$served"), $other $before_other -> $(reads "$other")"
  pass "the $served served the leases' events, the $other none"
}
wait_replayed 9
"$cli" group create rr --stream r-1 --strategy round-robin >/dev/null || fail "group create"
consume_from replica 9 '1 2 3 4 5 6 7 8 9'
psql -X -q "$standby" -c "SELECT pg_wal_replay_pause()" >/dev/null || fail "cannot pause replay"
for i in 10 11; do "$cli" append r-1 --type Tick --data "{\"i\":$i}" >/dev/null || fail "append $i"; done
consume_from primary 2 '10 11'
psql -X -q "$standby" -c "SELECT pg_wal_replay_resume()" >/dev/null || fail "cannot resume replay"
check "group settled" 0 '^checkpoint +11$' -- sh -c "'$cli' group info rr | grep '^checkpoint'"
check "start-up line" 0 'reads may be served by 1 replica database' -- cat "$work/server.log"
stop_logbookd || fail "logbookd did not stop cleanly"
finish
