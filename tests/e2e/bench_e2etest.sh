#!/usr/bin/env bash
# logbook-bench against a real logbookd with tiny counts: every scenario runs
# and the catch-up subscriber gets exactly the events it should (positions
# after..head, once each, in order), in single and batched messages. Asserts
# no speed. Needs LOGBOOK_TEST_ENV (the pg_cluster fixture), LOGBOOKD,
# LOGBOOK_CLI and LOGBOOK_BENCH.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
dsn=$(create_database bench) || fail "cannot create a database"
"$LOGBOOK_CLI" migrate up --database "$dsn" >/dev/null || fail "migrate up"
start_logbookd "$dsn" "$work/server.log" || fail "logbookd did not start"

# bench CONDITION ARGS...: runs logbook-bench ARGS and wants exit 0 and the
# Python CONDITION true of its JSON result `r`.
bench() {
  local condition=$1
  shift
  "$LOGBOOK_BENCH" --address "$LOGBOOK_ADDRESS" "$@" >"$work/out.json" || return
  python3 -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ($condition) else 1)" \
    "$work/out.json" || { echo "wanted $condition; got:"; cat "$work/out.json"; return 1; }
}

# The log is empty: catch-up appends 2,500 events, then reads 1..2500.
check "catch-up fills and reads 1..2500 (client default: batches, unpacked)" 0 "" -- bench \
  'r["filled_events"] == 2500 and r["events"] == 2500 and r["from_position"] == 1 and r["caught_up_at"] == 2500 and r["exact"] and r["handler_calls"] == 2501 and r["max_events_per_call"] == 1' \
  catch-up --events 2500 --fill-batch 100
check "catch-up of the last 1,000 in batches of at most 7" 0 "" -- bench \
  'r["filled_events"] == 0 and r["events"] == 1000 and r["from_position"] == 1501 and r["caught_up_at"] == 2500 and r["exact"] and r["max_events_per_call"] == 7' \
  catch-up --events 1000 --events-per-message 7
check "catch-up of everything, one event per message" 0 "" -- bench \
  'r["events"] == 2500 and r["exact"] and r["handler_calls"] == 2501 and r["max_events_per_call"] == 1' \
  catch-up --events 2500 --events-per-message 1
check "append-single" 0 "" -- bench 'r["events_per_s"] > 0 and r["failures"] == 0 and r["events_per_append"] == 1' \
  append-single --clients 4 --seconds 1
check "append-batch" 0 "" -- bench 'r["events_per_s"] > 0 and r["failures"] == 0 and r["events_per_append"] == 100' \
  append-batch --clients 2 --seconds 1
check "append-contended" 0 "" -- bench 'r["events_per_s"] > 0 and r["failures"] == 0 and r["streams"] == 4' \
  append-contended --clients 8 --seconds 1
check "live-latency" 0 "" -- bench 'r["deliveries"] > 0 and r["failures"] == 0' \
  live-latency --rate 50 --seconds 1 --warmup 0 --all-subscribers 2 --category-subscribers 3 --categories 3
check "group round-robin: 4 workers ack a 300-event backlog over 10 streams, then live" 0 "" -- bench \
  'r["exact"] and r["failures"] == 0 and r["backlog_events"] == 300 and r["filled_events"] == 300 and r["events_per_s"] > 0 and r["live_missing"] == 0 and r["live_deliveries"] > 0' \
  group --strategy round-robin --events 300 --streams 10 --rate 50 --seconds 1 --warmup 0
check "group per-stream, raw Consume streams" 0 "" -- bench \
  'r["exact"] and r["failures"] == 0 and r["client"] == "raw" and r["live_missing"] == 0' \
  group --strategy per-stream --client raw --events 300 --streams 10 --rate 50 --seconds 1 --warmup 0

finish
