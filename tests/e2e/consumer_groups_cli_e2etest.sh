#!/usr/bin/env bash
# Consumer groups through the `logbook` CLI against a real logbookd: group
# create, list, info, update and delete; consume with acks, retries and
# parking; parked, replay and drop; a consumer that outlives a restart of
# logbookd; the order-emails example; and the errors, worded as the server
# words them. Outputs are compared whole, with times, instance names, event
# ids and lag seconds masked. Needs LOGBOOK_TEST_ENV (the pg_cluster
# fixture), LOGBOOKD, LOGBOOK_CLI and ORDER_EMAILS.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
cli=$LOGBOOK_CLI
fail_context() { echo "--- server log (tail):"; tail -n 15 "$work/server.log" 2>/dev/null; }
dsn=$(create_database cg_cli) || fail "cannot create a database"
"$cli" migrate up --database "$dsn" >/dev/null || fail "migrate up"
start_logbookd "$dsn" "$work/server.log" || fail "logbookd did not start"

# mask: times, instance names, UUIDs, seconds with decimals and handling
# times, which change from run to run, become <time>, <instance>, <uuid>,
# <s> and <ns>.
mask() {
  sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z/<time>/g' \
    -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g' \
    -e 's/ on [A-Za-z0-9._-]+:[0-9]+:[0-9a-f]+/ on <instance>/g' \
    -e 's/"instance":"[^"]*"/"instance":"<instance>"/g' \
    -e 's/[0-9]+\.[0-9]+ s\b/<s> s/g' -e 's/("lag_seconds"|"oldest_parked_age_seconds"):[0-9.e+-]+/\1:<s>/g' \
    -e 's/"handled_at_ns":[0-9]+/"handled_at_ns":<ns>/g'
}

# prints WANT -- COMMAND...: runs COMMAND; if its stdout followed by its
# stderr, masked and without empty lines, is exactly WANT, returns its exit
# code, else prints a diff (- wanted, + got) and returns 99. For check:
#   check NAME EXIT '' -- prints "$want" -- COMMAND...
prints() {
  local want=$1 out code got
  shift 2
  out=$("$@" 2>"$work/prints.stderr")
  code=$?
  got=$({ printf '%s\n' "$out"; cat "$work/prints.stderr"; } | mask | sed '/^$/d')
  if [ "$got" != "$want" ]; then
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | sed -n '/^[<>]/p' | sed 's/^</-/; s/^>/+/'
    return 99
  fi
  return "$code"
}

# info GROUP: `group info GROUP` without the lines that never change here
# (target, created at, and the settings, which `group update` checks).
info() {
  "$cli" group info "$1" | grep -Ev '^(target|created at|strategy|ack timeout|max deliveries|retry backoff|max in flight) '
}

# wait_exit PID SECONDS: waits for a background job to end (exit code as
# its), or kills it after SECONDS and returns 124. Call it from the
# script's own shell (a subshell cannot wait for the job), then check
# its code with exited.
wait_exit() {
  local pid=$1 i
  for ((i = 0; i < $2 * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid"
}

# exited CODE: returns CODE, for check.
exited() { return "$1"; }

# wait_for FILE REGEX: waits up to 10 s for a line of FILE to match.
wait_for() {
  local i
  for ((i = 0; i < 200; i++)); do
    grep -Eq -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# Creating, listing, showing.
check "list none" 0 '' -- prints '' -- "$cli" group list
check "create" 0 '' -- prints "created group emails on category order: per-stream, ack timeout 30000 ms, max deliveries 10, retry backoff 1000 to 60000 ms, max in flight 100" -- \
  "$cli" group create emails --category order
check "create every flag" 0 '' -- prints "created group audit on \$all, prefix order-, types OrderPlaced,OrderPaid: round-robin, ack timeout 1000 ms, max deliveries 2, retry backoff 0 to 0 ms, max in flight 7" -- \
  "$cli" group create audit --all --prefix order- --type OrderPlaced --type OrderPaid --from-now \
  --strategy round-robin --ack-timeout-ms 1000 --max-deliveries 2 --retry-backoff-ms 0 \
  --retry-backoff-max-ms 0 --max-in-flight 7
check "create on a stream after a position" 0 '' -- prints "created group one.stream_1 on stream order-1: per-stream, ack timeout 30000 ms, max deliveries 10, retry backoff 1000 to 60000 ms, max in flight 100" -- \
  "$cli" group create one.stream_1 --stream order-1 --after-position 2
check "list" 0 '' -- prints "audit  \$all, prefix order-, types OrderPlaced,OrderPaid  round-robin  checkpoint 0  lag 0  in flight 0  parked 0  members 0
emails  category order  per-stream  checkpoint 0  lag 0  in flight 0  parked 0  members 0
one.stream_1  stream order-1  per-stream  checkpoint 2  lag 0  in flight 0  parked 0  members 0" -- \
  "$cli" group list
check "list json" 0 '' -- prints '{"acked":0,"checkpoint_position":0,"created_at":"<time>","delivered":0,"group":"audit","head_position":0,"in_flight":0,"lag_events":0,"lag_seconds":<s>,"members":[],"oldest_parked_age_seconds":<s>,"parked":0,"settings":{"ack_timeout_ms":1000,"max_deliveries":2,"max_in_flight":7,"retry_backoff_max_ms":0,"retry_backoff_ms":0,"strategy":"round-robin"},"target":{"all":true,"prefix":"order-","types":["OrderPlaced","OrderPaid"]}}
{"acked":0,"checkpoint_position":0,"created_at":"<time>","delivered":0,"group":"emails","head_position":0,"in_flight":0,"lag_events":0,"lag_seconds":<s>,"members":[],"oldest_parked_age_seconds":<s>,"parked":0,"settings":{"ack_timeout_ms":30000,"max_deliveries":10,"max_in_flight":100,"retry_backoff_max_ms":60000,"retry_backoff_ms":1000,"strategy":"per-stream"},"target":{"category":"order"}}
{"acked":0,"checkpoint_position":2,"created_at":"<time>","delivered":0,"group":"one.stream_1","head_position":0,"in_flight":0,"lag_events":0,"lag_seconds":<s>,"members":[],"oldest_parked_age_seconds":<s>,"parked":0,"settings":{"ack_timeout_ms":30000,"max_deliveries":10,"max_in_flight":100,"retry_backoff_max_ms":60000,"retry_backoff_ms":1000,"strategy":"per-stream"},"target":{"stream_id":"order-1"}}' -- \
  "$cli" group list --json
check "info" 0 '' -- prints "group                 emails
target                category order
strategy              per-stream
ack timeout           30000 ms
max deliveries        10
retry backoff         1000 ms, at most 60000 ms
max in flight         100
checkpoint            0
head                  0
lag                   0 events, <s> s
in flight             0
parked                0
delivered             0
acked                 0
created at            <time>
members               0" -- "$cli" group info emails

# Five events of the category (and one of another), consumed. Per stream,
# an event waits for the ack of the one before it: order-1@1 (position 3)
# comes after order-3@0 (position 4), order-2@1 after both.
"$cli" append order-1 --type OrderPlaced --data '{"n":1}' >/dev/null &&
  "$cli" append order-2 --type OrderPlaced --data '{"n":2}' >/dev/null &&
  "$cli" append order-1 --type OrderPaid --data '{"n":3}' >/dev/null &&
  "$cli" append order-3 --type OrderPlaced --data '{"n":4}' >/dev/null &&
  "$cli" append cart-1 --type Added --data '{"n":5}' >/dev/null &&
  "$cli" append order-2 --type OrderPaid --data '{"n":6}' >/dev/null || fail "append"
check "consume 5" 0 '' -- prints "1  order-1@0  OrderPlaced  attempt 1  ack
2  order-2@0  OrderPlaced  attempt 1  ack
4  order-3@0  OrderPlaced  attempt 1  ack
3  order-1@1  OrderPaid  attempt 1  ack
6  order-2@1  OrderPaid  attempt 1  ack
-- joined group emails as worker-1 on <instance>, max in flight 5 (Ctrl-C to stop)
-- owns 3 streams with pending events (1 live member: worker-1): order-1, order-2, order-3" -- \
  "$cli" consume emails --consumer worker-1 --count 5
check "info after consuming" 0 '' -- prints "group                 emails
checkpoint            6
head                  6
lag                   0 events, <s> s
in flight             0
parked                0
delivered             5
acked                 5
members               0" -- info emails
check "stream group after its position" 0 '' -- prints '{"action":"ack","attempt":1,"delivery_id":3,"event":{"content_type":"application/json","data":{"n":3},"event_id":"<uuid>","global_position":3,"recorded_at":"<time>","stream_id":"order-1","stream_version":1,"tenant":"default","type":"OrderPaid","written_by":"anonymous"},"handled_at_ns":<ns>}
-- joined group one.stream_1 as w on <instance>, max in flight 1 (Ctrl-C to stop)
-- owns 1 stream with pending events (1 live member: w): order-1' -- \
  "$cli" consume one.stream_1 --consumer w --count 1 --json

# Parking, listing, replaying.
"$cli" append order-4 --type Broken --data '{}' >/dev/null &&
  "$cli" append order-4 --type OrderPlaced --data '{}' >/dev/null || fail "append"
check "consume parks" 0 '' -- prints "7  order-4@0  Broken  attempt 1  park
8  order-4@1  OrderPlaced  attempt 1  ack
-- joined group emails as worker-1 on <instance>, max in flight 2 (Ctrl-C to stop)
-- owns 1 stream with pending events (1 live member: worker-1): order-4" -- \
  "$cli" consume emails --consumer worker-1 --count 2 --park-types Broken,Other
check "parked" 0 '' -- prints "7  order-4@0  Broken  attempts 1  <time>  nacked: type Broken is in --park-types" -- \
  "$cli" group parked emails
check "parked json" 0 '' -- prints '{"attempts":1,"delivery_id":7,"parked_at":"<time>","reason":"nacked: type Broken is in --park-types","stream_id":"order-4","stream_version":0,"type":"Broken"}' -- \
  "$cli" group parked emails --json
check "info with one parked" 0 '' -- prints "group                 emails
checkpoint            8
head                  8
lag                   0 events, <s> s
in flight             0
parked                1 (oldest <s> s ago)
delivered             7
acked                 6
members               0" -- info emails
check "replay" 0 '' -- prints "replayed 1 parked event" -- "$cli" group replay emails --all
check "parked after replay" 0 '' -- prints "" -- "$cli" group parked emails
check "consume the replayed event" 0 '' -- prints "7  order-4@0  Broken  attempt 1  ack
-- joined group emails as worker-1 on <instance>, max in flight 1 (Ctrl-C to stop)
-- owns 1 stream with pending events (1 live member: worker-1): order-4" -- \
  "$cli" consume emails --consumer worker-1 --count 1
check "info after the replay" 0 '' -- prints "group                 emails
checkpoint            8
head                  8
lag                   0 events, <s> s
in flight             0
parked                0
delivered             8
acked                 7
members               0" -- info emails

# Retries until max_deliveries park it; then dropping.
check "update" 0 '' -- prints "updated group emails: per-stream, ack timeout 30000 ms, max deliveries 2, retry backoff 100 to 200 ms, max in flight 100" -- \
  "$cli" group update emails --max-deliveries 2 --retry-backoff-ms 100 --retry-backoff-max-ms 200
"$cli" append order-5 --type Flaky --data '{}' >/dev/null || fail "append"
check "consume retries" 0 '' -- prints "9  order-5@0  Flaky  attempt 1  retry
9  order-5@0  Flaky  attempt 2  retry
-- joined group emails as worker-1 on <instance>, max in flight 2 (Ctrl-C to stop)
-- owns 1 stream with pending events (1 live member: worker-1): order-5" -- \
  "$cli" consume emails --consumer worker-1 --count 2 --fail-types Other,Flaky
parked_after_retries() {
  local i
  for ((i = 0; i < 100; i++)); do
    [ -n "$("$cli" group parked emails)" ] && break
    sleep 0.05
  done
  "$cli" group parked emails
}
check "parked after max deliveries" 0 '' -- prints "9  order-5@0  Flaky  attempts 2  <time>  delivered 2 times (max_deliveries) without an ack; the last: nacked: type Flaky is in --fail-types" -- \
  parked_after_retries
check "drop one" 0 '' -- prints "dropped 1 parked event" -- "$cli" group drop emails 9
check "drop it again" 3 '' -- prints "logbook: delivery 9 is not parked in group 'emails'" -- "$cli" group drop emails 9
check "drop all of none" 0 '' -- prints "dropped 0 parked events" -- "$cli" group drop emails --all
check "replay unknown id" 3 '' -- prints "logbook: delivery 1 is not parked in group 'emails'" -- "$cli" group replay emails 1

# Settings changed show in info; a change out of range changes nothing.
check "update more" 0 '' -- prints "updated group emails: round-robin, ack timeout 5000 ms, max deliveries 3, retry backoff 100 to 400 ms, max in flight 50" -- \
  "$cli" group update emails --strategy round-robin --ack-timeout-ms 5000 --max-deliveries 3 \
  --retry-backoff-max-ms 400 --max-in-flight 50
check "update out of range" 5 '' -- prints "logbook: settings.ack_timeout_ms: 5 is outside 100..3600000" -- \
  "$cli" group update emails --ack-timeout-ms 5 --max-deliveries 4
check "update backoffs crossed" 5 '' -- prints "logbook: settings.retry_backoff_ms: 500 is more than retry_backoff_max_ms 400" -- \
  "$cli" group update emails --retry-backoff-ms 500
check "info after updates" 0 '' -- prints "group                 emails
target                category order
strategy              round-robin
ack timeout           5000 ms
max deliveries        3
retry backoff         100 ms, at most 400 ms
max in flight         50
checkpoint            9
head                  9
lag                   0 events, <s> s
in flight             0
parked                0
delivered             10
acked                 7
created at            <time>
members               0" -- "$cli" group info emails

# A connected consumer: a member in info; its name taken; SIGTERM ends it
# with exit 0 once its acks are in.
"$cli" consume emails --consumer worker-2 >"$work/bg.out" 2>"$work/bg.err" &
bg=$!
wait_for "$work/bg.err" '^-- joined' || fail "consume did not join: $(cat "$work/bg.err")"
check "info with a member" 0 '' -- prints "  worker-2  on <instance>, 0 in flight, 0 streams owned, connected at <time>" -- \
  sh -c "'$cli' group info emails | grep '^  '"
check "consumer name taken" 4 '' -- prints "logbook: consumer 'worker-2' is already connected to group 'emails'" -- \
  "$cli" consume emails --consumer worker-2
"$cli" append order-6 --type OrderPlaced --data '{}' >/dev/null || fail "append"
wait_for "$work/bg.out" '^10  ' || fail "no delivery to the connected consumer"
kill -TERM "$bg"
wait_exit "$bg" 10
check "consume ends on SIGTERM" 0 '' -- exited $?
check "consume output" 0 '' -- prints "10  order-6@0  OrderPlaced  attempt 1  ack
-- joined group emails as worker-2 on <instance>, max in flight 50 (Ctrl-C to stop)" -- \
  cat "$work/bg.out" "$work/bg.err"
check "acked before exiting" 0 '' -- prints "acked                 8" -- sh -c "'$cli' group info emails | grep '^acked '"

# A consumer outlives a restart of logbookd on the same address.
"$cli" consume emails --consumer worker-3 --count 2 >"$work/rs.out" 2>"$work/rs.err" &
bg=$!
wait_for "$work/rs.err" '^-- joined' || fail "consume did not join: $(cat "$work/rs.err")"
"$cli" append order-7 --type OrderPlaced --data '{}' >/dev/null || fail "append"
wait_for "$work/rs.out" '^11  ' || fail "no delivery before the restart"
sleep 0.1  # Its ack goes out.
stop_logbookd
"$LOGBOOKD" --listen "$LOGBOOK_ADDRESS" --database "$dsn" --log-level debug 2>>"$work/server.log" &
server_pid=$!
for ((i = 0; i < 200; i++)); do
  [ "$(grep -c '^-- joined' "$work/rs.err")" -ge 2 ] && break
  sleep 0.05
done
"$cli" append order-7 --type OrderPlaced --data '{}' >/dev/null || fail "append after the restart"
wait_exit "$bg" 20
check "consume across a restart" 0 '' -- exited $?
# How often it reconnects while logbookd is down, and why it was cut off,
# depend on timing: those lines are counted as one.
check "consume across a restart output" 0 '' -- prints "11  order-7@0  OrderPlaced  attempt 1  ack
12  order-7@1  OrderPlaced  attempt 1  ack
-- joined group emails as worker-3 on <instance>, max in flight 2 (Ctrl-C to stop)
-- disconnected: <why>
-- joined group emails as worker-3 on <instance>, max in flight 2 (Ctrl-C to stop)" -- \
  sh -c "cat '$work/rs.out' '$work/rs.err' | sed -E 's/^-- disconnected: .*/-- disconnected: <why>/' | uniq"
check "checkpoint after the restart" 0 '' -- prints "checkpoint            12" -- sh -c "'$cli' group info emails | grep '^checkpoint '"

# The order-emails example: one row per OrderPlaced event id, nothing twice.
# order-1's email went out before, from a delivery whose ack was lost.
emails_dsn=$(create_database cg_emails) || fail "cannot create a database"
first_id=$("$cli" read order-1 --limit 1 --json | grep -o '"event_id":"[^"]*"' | cut -d'"' -f4)
psql -X -q -v ON_ERROR_STOP=1 -d "$emails_dsn" -c "CREATE TABLE sent_emails (
  event_id uuid PRIMARY KEY, order_stream text NOT NULL, sent_at timestamptz NOT NULL);
  INSERT INTO sent_emails VALUES ('$first_id', 'order-1', now())" || fail "cannot prepare sent_emails"
"$ORDER_EMAILS" --database "$emails_dsn" --create-group --consumer e1 >"$work/emails.out" 2>"$work/emails.err" &
bg=$!
wait_for "$work/emails.err" 'joined group order_emails' || fail "order-emails did not join: $(cat "$work/emails.err")"
sent_count() { psql -X -A -t -d "$emails_dsn" -c "SELECT count(*) FROM sent_emails"; }
for ((i = 0; i < 200; i++)); do [ "$(sent_count)" = 7 ] && break; sleep 0.05; done
check "order-emails sent one per OrderPlaced" 0 '' -- prints "order-1|1
order-2|1
order-3|1
order-4|1
order-6|1
order-7|2" -- psql -X -A -t -d "$emails_dsn" -c "SELECT order_stream, count(*) FROM sent_emails GROUP BY 1 ORDER BY 1"
check "order-emails rows are the OrderPlaced event ids" 0 '' -- prints \
  "$("$cli" read '$all' --type OrderPlaced --json | grep -o '"event_id":"[^"]*"' | cut -d'"' -f4 | sort | mask)" -- \
  psql -X -A -t -d "$emails_dsn" -c "SELECT event_id FROM sent_emails ORDER BY event_id::text"
kill -TERM "$bg"
wait_exit "$bg" 10
check "order-emails stops on SIGTERM" 0 '' -- exited $?
check "order-emails sent nothing twice" 0 '' -- prints "already sent the confirmation of order-1 (event <uuid>, attempt 1)
sent the confirmation of order-2 (event <uuid>, attempt 1)
sent the confirmation of order-3 (event <uuid>, attempt 1)
sent the confirmation of order-4 (event <uuid>, attempt 1)
sent the confirmation of order-6 (event <uuid>, attempt 1)
sent the confirmation of order-7 (event <uuid>, attempt 1)
sent the confirmation of order-7 (event <uuid>, attempt 1)" -- sort "$work/emails.out"
check "order-emails log" 0 '' -- prints "order-emails e1: created group order_emails
order-emails e1: joined group order_emails on <instance>, max in flight 100
order-emails e1: stopped after 6 emails sent (1 sent before, skipped): OK" -- cat "$work/emails.err"

# Bad input and missing groups, as the server words them.
check "create bad name" 5 '' -- prints "logbook: group: only letters, digits, '.', '_' and '-' are allowed" -- \
  "$cli" group create 'bad name!' --category order
check "create exists" 4 '' -- prints "logbook: consumer group 'emails' already exists" -- \
  "$cli" group create emails --category order
check "create filter on a stream" 5 '' -- prints "logbook: target.filter: applies to category and all targets; a stream_id target takes every event of the stream" -- \
  "$cli" group create s --stream order-1 --type X
check "create empty category" 5 '' -- prints "logbook: target.category: must not be empty" -- \
  "$cli" group create s --category ''
check "info unknown" 3 '' -- prints "logbook: consumer group 'nope' does not exist" -- "$cli" group info nope
check "update unknown" 3 '' -- prints "logbook: consumer group 'nope' does not exist" -- "$cli" group update nope --max-deliveries 2
check "parked unknown" 3 '' -- prints "logbook: consumer group 'nope' does not exist" -- "$cli" group parked nope
check "replay unknown" 3 '' -- prints "logbook: consumer group 'nope' does not exist" -- "$cli" group replay nope --all
check "drop unknown" 3 '' -- prints "logbook: consumer group 'nope' does not exist" -- "$cli" group drop nope 1
check "delete unknown" 3 '' -- prints "logbook: consumer group 'nope' does not exist" -- "$cli" group delete nope
check "consume unknown" 3 '' -- prints "logbook: consumer group 'nope' does not exist" -- "$cli" consume nope --consumer c
check "consume unknown counted" 3 '' -- prints "logbook: consumer group 'nope' does not exist" -- "$cli" consume nope --consumer c --count 1
check "consume bad consumer name" 5 '' -- prints "logbook: join.consumer: only letters, digits, '.', '_' and '-' are allowed" -- \
  "$cli" consume emails --consumer 'bad name!'
check "consume too many in flight" 5 '' -- prints "logbook: join.max_in_flight: 51 is more than the group's 50" -- \
  "$cli" consume emails --consumer c --max-in-flight 51
check "parked page too big" 5 '' -- prints "logbook: max_count: 20000 is more than 10000" -- \
  "$cli" group parked emails --max-count 20000
check "create no target" 2 '' -- prints "logbook: group create: give --stream, --category or --all, exactly one" -- \
  "$cli" group create g
check "create two targets" 2 '' -- prints "logbook: group create: give --stream, --category or --all, exactly one" -- \
  "$cli" group create g --all --category order
check "create two starts" 2 '' -- prints "logbook: group create: give at most one of --from-beginning, --after-position and --from-now" -- \
  "$cli" group create g --all --from-now --after-position 3
check "create bad strategy" 2 '' -- prints "--strategy: fifo not in {per-stream,round-robin}
Run with --help for more information." -- "$cli" group create g --all --strategy fifo
check "update nothing" 2 '' -- prints "logbook: group update: give at least one setting to change" -- "$cli" group update emails
check "replay nothing" 2 '' -- prints "logbook: group replay: give --all or delivery ids, exactly one" -- "$cli" group replay emails
check "drop both" 2 '' -- prints "logbook: group drop: give --all or delivery ids, exactly one" -- "$cli" group drop emails --all 3
check "consume no consumer" 2 'consumer is required' -- "$cli" consume emails
check "group no subcommand" 2 'A subcommand is required' -- "$cli" group
check "help" 0 'Manage consumer groups' -- "$cli" --help
check "consume help" 0 'DELIVERY_ID  STREAM@VERSION  TYPE  attempt N  ACTION' -- "$cli" consume --help
check "create help" 0 'Deliveries of one event before it is parked \(default 10; 1 to 1000\)' -- "$cli" group create --help

# Deleting: a connected consumer's call ends with NOT_FOUND.
"$cli" consume emails --consumer worker-4 >"$work/del.out" 2>"$work/del.err" &
bg=$!
wait_for "$work/del.err" '^-- joined' || fail "consume did not join: $(cat "$work/del.err")"
check "delete" 0 '' -- prints "deleted group emails" -- "$cli" group delete emails
wait_exit "$bg" 10
check "connected consumer of a deleted group" 3 '' -- exited $?
check "its message" 0 '' -- prints "-- joined group emails as worker-4 on <instance>, max in flight 50 (Ctrl-C to stop)
logbook: consumer group 'emails' does not exist" -- cat "$work/del.out" "$work/del.err"
check "info deleted" 3 '' -- prints "logbook: consumer group 'emails' does not exist" -- "$cli" group info emails
check "delete again" 3 '' -- prints "logbook: consumer group 'emails' does not exist" -- "$cli" group delete emails
check "list after delete" 0 '' -- prints "audit
one.stream_1
order_emails" -- sh -c "'$cli' group list | cut -d' ' -f1"

# A consumer process killed (SIGKILL) holding a delivery: the server sees
# its connection drop and hands the event to another consumer at once,
# long before the group's ack timeout (10 minutes), as a second delivery.
"$cli" group create crashy --category crash --ack-timeout-ms 600000 >/dev/null || fail "create crashy"
"$cli" consume crashy --consumer victim --hold-types Crash >"$work/victim.out" 2>"$work/victim.err" &
victim=$!
wait_for "$work/victim.err" '^-- joined' || fail "victim did not join: $(cat "$work/victim.err")"
"$cli" append crash-1 --type Crash --data '{}' >/dev/null || fail "append crash-1"
wait_for "$work/victim.out" 'hold$' || fail "victim got nothing: $(cat "$work/victim.out")"
kill -KILL "$victim"
wait "$victim" 2>/dev/null
check "held by the killed consumer" 0 '' -- prints "13  crash-1@0  Crash  attempt 1  hold" -- cat "$work/victim.out"
# logbookd sees the connection drop: the victim is no member any more.
for ((i = 0; i < 200; i++)); do
  "$cli" group info crashy | grep -q '^members  *0$' && break
  sleep 0.05
done
check "its delivery goes to another" 0 '' -- prints "13  crash-1@0  Crash  attempt 2  ack
-- joined group crashy as survivor on <instance>, max in flight 1 (Ctrl-C to stop)
-- owns 1 stream with pending events (1 live member: survivor): crash-1" -- \
  timeout 20 "$cli" consume crashy --consumer survivor --count 1

stop_logbookd || fail "logbookd did not stop cleanly"
finish
