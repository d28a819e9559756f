#!/usr/bin/env bash
# The projection worker example keeps its read model exactly right although
# it is killed with SIGKILL again and again: three times while it catches up
# a backlog (so it dies in the middle of its transactions), once while live
# appends go on. The expected read model is computed from what the writers
# appended, not from the log. Needs LOGBOOK_TEST_ENV (the pg_cluster
# fixture), LOGBOOKD, LOGBOOK_CLI and PROJECTION_WORKER.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
server_pid=""
worker_pid=""
writer_pids=()
# Every failure shows the end of the worker's log.
fail_context() { echo "--- worker log (tail):"; tail -n 20 "$work/worker.log" 2>/dev/null; }

psql=(psql -X -q -v ON_ERROR_STOP=1)
log_dsn=$(create_database proj_log) || fail "createdb"
model_dsn=$(create_database proj_model) || fail "createdb"
"$LOGBOOK_CLI" migrate up --database "$log_dsn" >/dev/null || fail "migrate"
start_logbookd "$log_dsn" "$work/server.log" || fail "logbookd did not start"

# writer W N: appends N events to order-0..order-6, recording "stream amount"
# for each acknowledged one in $work/appended.W; every 5th time also an event
# of another category (cart, or orders: a category that merely starts alike)
# that the projection must ignore. Amounts may be negative; every 10th event
# has none and every 50th a decimal one, both of which count 0.
writer() {
  local w=$1 n=$2 i stream amount data
  for i in $(seq 1 "$n"); do
    stream="order-$(((w + i) % 7))"
    amount=$(((w * 31 + i * 17) % 101 - 20))
    data="{\"amount\": $amount}"
    if ((i % 50 == 0)); then amount=0; data='{"amount": 2.5}'
    elif ((i % 10 == 0)); then amount=0; data='{"note": "no amount"}'; fi
    "$LOGBOOK_CLI" append "$stream" --type Placed --data "$data" >/dev/null || return 1
    echo "$stream $amount" >>"$work/appended.$w"
    if ((i % 5 == 0)); then
      local other=cart
      ((i % 10 == 0)) && other=orders
      "$LOGBOOK_CLI" append "$other-$w" --type Added --data '{"amount": 1000}' >/dev/null || return 1
    fi
  done
}
start_writers() {  # start_writers FIRST LAST N
  writer_pids=()
  for w in $(seq "$1" "$2"); do
    writer "$w" "$3" &
    writer_pids+=($!)
  done
}
wait_writers() {
  for pid in "${writer_pids[@]}"; do wait "$pid" || fail "a writer's append failed"; done
  writer_pids=()
}
last_position() {
  "$LOGBOOK_CLI" read '$all' --backward --limit 1 --json | grep -o '"global_position":[0-9]*' | cut -d: -f2
}
checkpoint() {
  local at
  at=$("${psql[@]}" -d "$model_dsn" -Atc \
    "SELECT position FROM projection_checkpoints WHERE name = 'order_totals'" 2>/dev/null)
  echo "${at:-0}"
}
start_worker() {
  "$PROJECTION_WORKER" --database "$model_dsn" >>"$work/worker.log" 2>&1 &
  worker_pid=$!
}
# wait_checkpoint POSITION: until the worker's checkpoint is at least there.
wait_checkpoint() {
  local deadline=$((SECONDS + 30))
  while [ "$(checkpoint)" -lt "$1" ]; do
    kill -0 "$worker_pid" 2>/dev/null || fail "the worker exited while at $(checkpoint), waiting for $1"
    [ "$SECONDS" -lt "$deadline" ] || fail "the worker's checkpoint is $(checkpoint) after 30 s, waiting for $1"
    sleep 0.01
  done
}
kill_worker() {
  kill -9 "$worker_pid"
  wait "$worker_pid" 2>/dev/null
  worker_pid=""
}

# A backlog, then three kills while the worker catches it up: each when its
# checkpoint has moved a random 5-10% of the backlog on (polling lets it get
# further before the kill), so all three land with work left, most likely in
# the middle of a transaction.
start_writers 1 4 300
wait_writers
backlog=$(last_position)
[ "${backlog:-0}" -ge 1400 ] || fail "the backlog ends at position ${backlog:-none}"
resumed_at=(0)
start_worker
for round in 1 2 3; do
  wait_checkpoint $((resumed_at[-1] + backlog / 20 + RANDOM % (backlog / 20)))
  kill_worker
  at=$(checkpoint)
  [ "$at" -lt "$backlog" ] || fail "kill $round came after the worker caught up (at $at of $backlog)"
  resumed_at+=("$at")
  start_worker
done
pass "three kills while catching up the backlog"

# A fourth kill while live appends go on.
start_writers 5 8 100
wait_checkpoint $((backlog + 40))
sleep "0.$((RANDOM % 5))"
kill_worker
resumed_at+=("$(checkpoint)")
start_worker
wait_writers
last=$(last_position)
[ "${resumed_at[-1]}" -lt "$last" ] || fail "the live kill came after the last append (at ${resumed_at[-1]} of $last)"
pass "a kill while live appends go on"

# Every start resumed exactly where the previous run's last commit left it.
starts=$(sed -n 's/.*resuming after position \([0-9]*\)$/\1/p' "$work/worker.log" | tr '\n' ' ')
[ "$starts" = "${resumed_at[*]} " ] || fail "the worker resumed after: $starts; checkpoints were: ${resumed_at[*]}"
pass "every start resumed after the last commit"

# The last worker gets to the end of the log (periodic checkpoints carry it
# past trailing events of other categories) ...
wait_checkpoint "$last"
pass "the last worker reaches the end of the log"

# ... and its read model is exactly what was appended: per stream the count,
# the sum of the amounts, and the last version (events - 1; versions start at 0).
cat "$work"/appended.* | awk '{ n[$1]++; a[$1] += $2 }
  END { for (s in n) print s "|" n[s] "|" a[s] "|" n[s] - 1 }' | sort >"$work/expected"
[ "$(wc -l <"$work/expected")" = 7 ] || fail "expected 7 order streams: $(cat "$work/expected")"
[ "$(awk -F'|' '{ n += $2 } END { print n }' "$work/expected")" = 1600 ] || fail "not 1600 order events"
"${psql[@]}" -d "$model_dsn" -Atc "SELECT stream_id || '|' || events || '|' || amount_total || '|' ||
  last_version FROM order_totals" | sort >"$work/actual"
diff "$work/expected" "$work/actual" >"$work/diff" ||
  fail "read model differs from what was appended (< expected, > actual):
$(cat "$work/diff")"
pass "the read model is exactly what was appended"

# SIGTERM stops it cleanly.
kill -TERM "$worker_pid"
wait "$worker_pid"
code=$?
worker_pid=""
[ "$code" = 0 ] || fail "the worker exited with $code on SIGTERM"
tail -n 1 "$work/worker.log" | grep -q "stopped after .* at position $last: CANCELLED" ||
  fail "no clean stop line: $(tail -n 1 "$work/worker.log")"
pass "SIGTERM stops the worker cleanly"

echo "killed the worker at positions ${resumed_at[*]:1} (backlog $backlog, log end $last)"
finish
