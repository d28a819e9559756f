#!/usr/bin/env bash
# logbookd --metrics-listen against a real PostgreSQL: /healthz, /readyz and
# /metrics over HTTP, with exact figures for what the test did (RPCs by
# method and code, events and bytes appended, subscriptions open, quota
# refusals, build info); and --log-format json, every line of its log one
# JSON object. Needs LOGBOOK_TEST_ENV, LOGBOOKD and LOGBOOK_CLI.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
cli=$LOGBOOK_CLI
dsn=$(create_database metrics) || fail "cannot create a database"
"$cli" migrate up --database "$dsn" >/dev/null || fail "cannot migrate"
latest=$(psql -X -At "$dsn" -c "SELECT max(version) FROM logbook.schema_migrations")
start_logbookd "$dsn" "$work/server.log" --metrics-listen 127.0.0.1:0 --quota-subscriptions 1 \
  --log-format json ||
  fail "logbookd did not start"
port=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$work/server.log" | head -1 | cut -d: -f3)
[ -n "$port" ] || fail "logbookd logged no metrics address"

# get PATH: prints the status code, then the body.
get() {
  python3 - "http://127.0.0.1:$port$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10)
    print(r.status); print(r.read().decode(), end="")
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode(), end="")
PY
}
# metric NAME{LABELS}: its value in /metrics.
metric() { get /metrics | grep -v '^#' | grep -F -- "$1 " | awk '{ print $NF }'; }

check "healthz" 0 '^200 ok$' -- sh -c "$(declare -f get); port=$port; get /healthz | paste -sd' '"
check "readyz" 0 '^200 ready$' -- sh -c "$(declare -f get); port=$port; get /readyz | paste -sd' '"
check "unknown path" 0 '^404' -- sh -c "$(declare -f get); port=$port; get /nope | head -1"

"$cli" append m-1 --type Noted --data '{"a":1}' >/dev/null || fail "append"
"$cli" append m-1 --type Noted --data '{"bb":22}' --expect 0 >/dev/null || fail "append 2"
"$cli" append m-1 --type Noted --data '{}' --expect 0 >/dev/null 2>&1 &&
  fail "a wrong expected version was accepted"
# A consumer group on category m (PER_STREAM): m-1's first event nacked
# RETRY (due again in 2 s, and its second waits behind it, so nothing goes
# to the first consumer as it leaves); then both parked.
"$cli" group create mg --category m --retry-backoff-ms 2000 >/dev/null || fail "group create"
"$cli" consume mg --consumer c1 --count 1 --fail-types Noted >/dev/null || fail "consume, retry"
"$cli" consume mg --consumer c1 --count 2 --park-types Noted >/dev/null || fail "consume, park"
"$cli" verify m-1 >/dev/null || fail "verify"
# One subscription open (the quota is 1): a second is refused.
"$cli" subscribe --category m >"$work/sub.out" 2>&1 &
sub=$!
wait_for_line() {
  for _ in $(seq 200); do grep -q "$2" "$1" && return 0; sleep 0.05; done
  return 1
}
wait_for_line "$work/sub.out" 'm-1@1' || fail "the subscription delivered nothing: $(cat "$work/sub.out")"
"$cli" subscribe m-1 --count 1 >/dev/null 2>&1 && fail "a second subscription was allowed"

# expect NAME{LABELS} VALUE: the metric has exactly that value.
expect() {
  local got
  got=$(metric "$1")
  [ "$got" = "$2" ] || fail "$1 is '$got', not $2: $(get /metrics | grep -F -- "${1%%\{*}")"
  pass "$1 = $2"
}
# The groups' gauges, read from the database at the first scrape.
expect 'logbook_consumer_group_parked{group="mg",tenant="default"}' 2
expect 'logbook_consumer_group_in_flight{group="mg",tenant="default"}' 0
expect 'logbook_consumer_group_lag_events{group="mg",tenant="default"}' 0
expect 'logbook_consumer_group_members{group="mg",tenant="default"}' 0
expect 'logbook_consumer_group_deliveries_total{group="mg",tenant="default"}' 3
expect 'logbook_consumer_group_redeliveries_total{group="mg",tenant="default"}' 1
expect 'logbook_consumer_group_settled_total{group="mg",how="retry",tenant="default"}' 1
expect 'logbook_consumer_group_settled_total{group="mg",how="park",tenant="default"}' 2
expect 'logbook_verifications_total{result="intact"}' 1
expect 'logbook_verifications_total{result="broken"}' 0
# The subscription got both events of m and is at the head.
expect logbook_subscription_events_delivered_total 2
expect logbook_subscription_fell_behind_total 0
expect logbook_subscription_lag_events 0
# Three appends, each its own group commit of one event (one refused).
expect logbook_group_commit_appends_count 3
expect logbook_group_commit_appends_sum 3
expect logbook_group_commit_events_sum 3
expect logbook_group_commit_write_seconds_count 3
# Connections: none leased at rest, none refused.
expect 'logbook_db_connections_in_use{pool="store"}' 0
expect 'logbook_db_connections_in_use{pool="consumer_groups"}' 0
expect 'logbook_db_connections_max{pool="store"}' 8  # --pool-size's default.
expect 'logbook_db_connections_max{pool="admin"}' 2
expect 'logbook_db_connections_max{pool="consumer_groups"}' 8
[ -z "$(metric 'logbook_db_connection_failures_total{pool="store"}')" ] ||
  fail "a connection was refused"
pass "no connection refused"

A='method="/logbook.v1.EventStore/Append"'
[ "$(metric "logbook_rpc_requests_total{code=\"OK\",$A}")" = 2 ] ||
  fail "Append OK: $(get /metrics | grep rpc_requests_total)"
pass "Append OK counted"
[ "$(metric "logbook_rpc_requests_total{code=\"ABORTED\",$A}")" = 1 ] || fail "Append ABORTED"
pass "Append ABORTED counted"
[ "$(metric "logbook_rpc_duration_seconds_count{$A}")" = 3 ] || fail "Append latencies"
pass "Append latencies observed"
[ "$(metric "logbook_events_appended_total")" = 2 ] || fail "events appended"
pass "events appended"
[ "$(metric "logbook_appended_bytes_total")" = 16 ] || fail "bytes appended" # {"a":1} and {"bb":22}
pass "bytes appended"
[ "$(metric "logbook_subscriptions_open")" = 1 ] || fail "subscriptions open"
pass "subscriptions open"
[ "$(metric "logbook_quota_refusals_total{quota=\"subscriptions\"}")" = 1 ] || fail "quota refusals"
pass "quota refusals"
S='method="/logbook.v1.EventStore/Subscribe"'
[ "$(metric "logbook_rpc_requests_total{code=\"RESOURCE_EXHAUSTED\",$S}")" = 1 ] ||
  fail "Subscribe RESOURCE_EXHAUSTED: $(get /metrics | grep Subscribe)"
pass "Subscribe refusal counted"
[ "$(metric "logbook_build_info{schema_version=\"$latest\",version=\"0.1.0\"}")" = 1 ] ||
  fail "build info: $(get /metrics | grep build_info)"
pass "build info"
# Not ready once the database lacks a migration this binary needs.
psql -X -q -v ON_ERROR_STOP=1 "$dsn" -c "CREATE TABLE kept AS SELECT * FROM logbook.schema_migrations
  WHERE version = $latest; DELETE FROM logbook.schema_migrations WHERE version = $latest" ||
  fail "cannot forget a migration"
check "readyz without the latest migration" 0 "^503 .*$(printf '%04d' "$latest")_" -- \
  sh -c "$(declare -f get); port=$port; get /readyz | paste -sd' '"
check "healthz still" 0 '^200 ok$' -- sh -c "$(declare -f get); port=$port; get /healthz | paste -sd' '"
psql -X -q -v ON_ERROR_STOP=1 "$dsn" -c "INSERT INTO logbook.schema_migrations SELECT * FROM kept" ||
  fail "cannot restore the migration"
check "readyz again" 0 '^200 ready$' -- sh -c "$(declare -f get); port=$port; get /readyz | paste -sd' '"
kill "$sub" 2>/dev/null
wait "$sub" 2>/dev/null
for _ in $(seq 200); do [ "$(metric logbook_subscriptions_open)" = 0 ] && break; sleep 0.05; done
[ "$(metric "logbook_subscriptions_open")" = 0 ] || fail "the subscription is still counted"
pass "a closed subscription is no longer open"

stop_logbookd || fail "logbookd did not stop cleanly"
# Its whole log, debug lines included, is JSON objects, one a line.
python3 - "$work/server.log" <<'PY' || fail "the log is not JSON lines"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
objs = [json.loads(l) for l in lines]
assert all(sorted(o) == ["level", "logger", "message", "time"] for o in objs), objs[:3]
assert any(o["message"].startswith("logbookd listening on 127.0.0.1:") and o["level"] == "info"
           for o in objs), lines[:5]
assert any(o["message"] == "logbookd stopped" for o in objs), lines[-3:]
print(len(objs), "JSON lines")
PY
pass "--log-format json"
# A port that is taken is refused at start-up, naming it.
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)" >"$work/taken" &
holder=$!
for _ in $(seq 100); do [ -s "$work/taken" ] && break; sleep 0.05; done
taken=$(cat "$work/taken")
check "a taken port" 1 "cannot listen on 127.0.0.1:$taken" -- \
  "$LOGBOOKD" --listen 127.0.0.1:0 --database "$dsn" --metrics-listen "127.0.0.1:$taken"
check "not HOST:PORT" 1 "'nope' is not HOST:PORT" -- \
  "$LOGBOOKD" --listen 127.0.0.1:0 --database "$dsn" --metrics-listen nope
kill "$holder" 2>/dev/null
finish
