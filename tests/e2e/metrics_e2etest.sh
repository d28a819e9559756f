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
# One subscription open (the quota is 1): a second is refused.
"$cli" subscribe m-1 >"$work/sub.out" 2>&1 &
sub=$!
wait_for_line() {
  for _ in $(seq 200); do grep -q "$2" "$1" && return 0; sleep 0.05; done
  return 1
}
wait_for_line "$work/sub.out" 'm-1@1' || fail "the subscription delivered nothing: $(cat "$work/sub.out")"
"$cli" subscribe m-1 --count 1 >/dev/null 2>&1 && fail "a second subscription was allowed"

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
