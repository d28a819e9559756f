#!/usr/bin/env bash
# Issue 20's failover without loss: a primary with a synchronous streaming
# standby, logbookd on a multi-host DSN (target_session_attrs=read-write),
# four clients appending (each records an event only once logbookd
# acknowledged it, and retries an unacknowledged one with the same event
# id), and a subscriber of $all. The primary is killed with kill -9 and the
# standby promoted (pg_ctl promote): logbookd appends again within 10 s
# without a restart, every acknowledged event is on the new primary, no
# event id is stored twice, verify --all is clean, and the subscriber got
# every event once, in order; a consumer group's worker handled every
# event and its checkpoint reached the head; the log's signed checkpoint
# from before the failover still matches, and a new one is signed after it.
# Clusters of its own, since it kills one.
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
admin() { psql -X -q -At -v ON_ERROR_STOP=1 "postgresql://logbook_admin@127.0.0.1:$1/postgres" "${@:2}"; }
"$cli" migrate up --database "postgresql://logbook_admin@127.0.0.1:$primary_port/postgres" >/dev/null ||
  fail "migrate"
"$here/pg_cluster.sh" standby "$standby_env" "$primary_env" || fail "cannot start the standby"
standby_port=$(sed -n 's/^LOGBOOK_TEST_PG_PORT=//p' "$standby_env")
admin "$primary_port" -c "ALTER SYSTEM SET synchronous_standby_names = 'standby'" \
  -c "SELECT pg_reload_conf()" >/dev/null || fail "cannot make the standby synchronous"
for _ in $(seq 100); do
  [ "$(admin "$primary_port" -c "SELECT sync_state FROM pg_stat_replication")" = sync ] && break
  sleep 0.1
done
[ "$(admin "$primary_port" -c "SELECT sync_state FROM pg_stat_replication")" = sync ] ||
  fail "the standby is not synchronous: $(admin "$primary_port" -c "TABLE pg_stat_replication")"
pass "a synchronous standby streams from the primary"

dsn="postgresql://logbook_admin@127.0.0.1:$primary_port,127.0.0.1:$standby_port/postgres?target_session_attrs=read-write&connect_timeout=2"
openssl genpkey -algorithm ed25519 -out "$work/signing.pem" 2>/dev/null &&
  openssl pkey -in "$work/signing.pem" -pubout -out "$work/signing.pub" || fail "openssl genpkey"
start_logbookd "$dsn" "$work/server.log" --signing-key "$work/signing.pem" \
  --checkpoint-interval 0 || fail "logbookd did not start"

"$cli" subscribe '$all' --json >"$work/sub.out" 2>"$work/sub.err" &
sub_pid=$!
# A consumer group's worker, across the failover too.
"$cli" group create fg --category fo --strategy round-robin >/dev/null || fail "group create"
"$cli" consume fg --consumer c1 --json >"$work/consume.out" 2>"$work/consume.err" &
consume_pid=$!

# appender N COUNT: COUNT events on stream fo-N, each retried with its own
# event id until acknowledged; prints "id" lines of acknowledged ones and
# the time of each acknowledgement.
appender() {
  local n=$1 count=$2 i id tries
  for i in $(seq 1 "$count"); do
    id=$(printf '00000000-0000-4000-8000-%04d%08d' "$n" "$i")
    tries=0
    until "$cli" --timeout 5 append "fo-$n" --type Tick --data "{\"i\":$i}" --event-id "$id" \
        >/dev/null 2>>"$work/appender-$n.err"; do
      tries=$((tries + 1))
      [ "$tries" -lt 200 ] || { echo "gave up on $id" >>"$work/appender-$n.err"; return 1; }
      sleep 0.1
    done
    echo "$id $(date +%s.%N)" >>"$work/acked-$n"
  done
}
for n in 1 2 3 4; do appender "$n" 60 & pids[$n]=$!; done

# Once some appends are in, the primary dies and the standby takes over.
for _ in $(seq 300); do
  [ "$(cat "$work"/acked-* 2>/dev/null | wc -l)" -ge 40 ] && break
  sleep 0.05
done
[ "$(cat "$work"/acked-* | wc -l)" -ge 40 ] || fail "the appenders did not get going"
# A signed checkpoint of the log as it is before the failover.
check "checkpoint before the failover" 0 '^checkpoint #1 at position [0-9]+, ' -- \
  "$cli" checkpoint --create
"$here/pg_cluster.sh" crash "$primary_env"
killed_at=$(date +%s.%N)
"$here/pg_cluster.sh" promote "$standby_env" || fail "pg_ctl promote failed"
for n in 1 2 3 4; do wait "${pids[$n]}" || fail "appender $n: $(tail -3 "$work/appender-$n.err")"; done
pass "four appenders got all 240 of their events acknowledged across the failover"

first_after=$(cat "$work"/acked-* | awk -v t="$killed_at" '$2 > t { print $2 }' | sort -n | head -1)
[ -n "$first_after" ] || fail "no append was acknowledged after the primary died"
resumed=$(awk -v a="$first_after" -v b="$killed_at" 'BEGIN { printf "%.1f", a - b }')
awk -v r="$resumed" 'BEGIN { exit !(r < 10) }' || fail "appends resumed only after ${resumed} s"
pass "logbookd appended again ${resumed} s after the primary died, without a restart"

new_primary="postgresql://logbook_admin@127.0.0.1:$standby_port/postgres"
acked_ids=$(cat "$work"/acked-* | awk '{ printf "%s\047%s\047", (NR > 1 ? "," : ""), $1 }')
stored=$(psql -X -At "$new_primary" -c "SELECT count(*) FROM logbook.event_log WHERE event_id IN ($acked_ids)")
[ "$stored" = 240 ] || fail "$stored of the 240 acknowledged events are on the new primary"
pass "every acknowledged event is on the new primary"
dups=$(psql -X -At "$new_primary" -c "SELECT count(*) FROM (SELECT event_id FROM logbook.event_log
  GROUP BY event_id HAVING count(*) > 1) d")
total=$(psql -X -At "$new_primary" -c "SELECT count(*) FROM logbook.event_log WHERE stream_id LIKE 'fo-%'")
[ "$dups" = 0 ] && [ "$total" = 240 ] || fail "$dups event ids stored twice; $total events on fo-*"
pass "no event id stored twice: 240 events, once each"
check "verify --all on the new primary" 0 '^ok: 240 events in 4 streams' -- "$cli" verify --all
# The checkpoint signed on the old primary came across and still matches;
# the new primary signs the next one, at its head (its id comes from a
# sequence, which a promoted standby continues some values further on).
head=$(psql -X -At "$new_primary" -c "SELECT max(global_position) FROM logbook.event_log")
check "checkpoint after the failover" 0 "^checkpoint #[0-9]+ at position $head, " -- \
  "$cli" checkpoint --create
check "verify both signed checkpoints" 0 "^ok: 240 events in 4 streams; 2 signed checkpoints match, the newest #[0-9]+ at position $head \(signature verified with the public key\)\$" -- \
  "$cli" verify --all --public-key "$work/signing.pub"

# The subscriber resumes without a gap: every position of $all once, in order.
for _ in $(seq 200); do
  [ "$(grep -c '"global_position"' "$work/sub.out")" -ge "$head" ] && break
  sleep 0.05
done
kill "$sub_pid" 2>/dev/null; wait "$sub_pid" 2>/dev/null
python3 - "$work/sub.out" "$head" <<'PY' || fail "the subscription: $(tail -3 "$work/sub.err")"
import json, sys
got = [json.loads(l)["global_position"] for l in open(sys.argv[1]) if l.startswith("{")]
want = list(range(1, int(sys.argv[2]) + 1))
assert got == want, f"got {len(got)} positions, first differences: " + str(
    [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w][:3])
PY
pass "the subscriber got positions 1..$head once each, in order"

# The group's state came across: its checkpoint reaches the head, and its
# worker handled every event (at least once).
checkpoint() { "$cli" group info fg --json | python3 -c "import json,sys; print(json.load(sys.stdin)['checkpoint_position'])"; }
for _ in $(seq 300); do [ "$(checkpoint)" = "$head" ] && break; sleep 0.1; done
[ "$(checkpoint)" = "$head" ] || fail "the group's checkpoint is $(checkpoint), not $head"
kill "$consume_pid" 2>/dev/null; wait "$consume_pid" 2>/dev/null
python3 - "$work/consume.out" "$head" <<'PY' || fail "the group's worker: $(tail -3 "$work/consume.err")"
import json, sys
got = {json.loads(l)["delivery_id"] for l in open(sys.argv[1]) if l.startswith("{")}
missing = set(range(1, int(sys.argv[2]) + 1)) - got
assert not missing, f"{len(missing)} events never handled, e.g. {sorted(missing)[:5]}"
PY
pass "the consumer group's checkpoint reached $head and its worker handled every event"
stop_logbookd || fail "logbookd did not stop cleanly"
finish
