#!/usr/bin/env bash
# The projection worker example keeps its read model exactly right although
# it is killed with SIGKILL again and again while events are appended.
# Needs LOGBOOK_TEST_ENV (the pg_cluster fixture), LOGBOOKD, LOGBOOK_CLI and
# PROJECTION_WORKER.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d)
server_pid=""
worker_pid=""
cleanup() {
  [ -n "$worker_pid" ] && kill -9 "$worker_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin)
"${psql[@]}" -d postgres -c "CREATE DATABASE proj_log_$$" -c "CREATE DATABASE proj_model_$$"
log_dsn="postgresql://logbook_admin@127.0.0.1:$LOGBOOK_TEST_PG_PORT/proj_log_$$"
model_dsn="postgresql://logbook_admin@127.0.0.1:$LOGBOOK_TEST_PG_PORT/proj_model_$$"
"$LOGBOOK_CLI" migrate up --database "$log_dsn" >/dev/null || fail "migrate"
start_logbookd "$log_dsn" "$work/server.log" || fail "logbookd did not start"

start_worker() {
  "$PROJECTION_WORKER" --database "$model_dsn" --category order >>"$work/worker.log" 2>&1 &
  worker_pid=$!
}

# Writers: orders with amounts, and carts the projection must ignore.
for w in 1 2 3 4; do
  ( for i in $(seq 1 60); do
      "$LOGBOOK_CLI" append "order-$((i % 7))" --type Placed \
        --data "{\"amount\": $(( (w * 100 + i) % 97 ))}" >/dev/null || exit 1
      "$LOGBOOK_CLI" append "cart-$w" --type Added --data '{"amount": 1000}' >/dev/null || exit 1
    done ) &
done

# Kill the worker at random moments while the writers run.
start_worker
for round in 1 2 3 4; do
  sleep "0.$(( RANDOM % 7 + 2 ))"
  kill -9 "$worker_pid"; wait "$worker_pid" 2>/dev/null
  start_worker
done
for job in $(jobs -p); do
  [ "$job" = "$worker_pid" ] || [ "$job" = "$server_pid" ] || wait "$job" || fail "a writer failed"
done

# Expected totals, from the log itself.
"$LOGBOOK_CLI" read '$all' --category order --limit 100000 --json >"$work/orders.json" || fail "read"
awk -F'"stream_id":"' '{
      split($2, s, "\""); match($0, /"amount":[0-9]+/);
      n[s[1]]++; a[s[1]] += substr($0, RSTART + 9, RLENGTH - 9)
    } END { for (k in n) print k "|" n[k] "|" a[k] }' "$work/orders.json" | sort >"$work/expected"
last=$("$LOGBOOK_CLI" read '$all' --backward --limit 1 --json | grep -o '"global_position":[0-9]*' | cut -d: -f2)
[ "$(wc -l <"$work/expected")" = 7 ] || fail "expected 7 order streams, got: $(cat "$work/expected")"

# The last worker catches up (checkpoints advance past the carts too).
for _ in $(seq 300); do
  at=$("${psql[@]}" -d "proj_model_$$" -Atc "SELECT position FROM projection_checkpoints" 2>/dev/null)
  [ "${at:-0}" -ge "$last" ] && break
  sleep 0.1
done
[ "${at:-0}" -ge "$last" ] || fail "the worker's checkpoint is ${at:-none}, the log ends at $last"
"${psql[@]}" -d "proj_model_$$" -Atc \
  "SELECT stream_id || '|' || events || '|' || amount_total FROM order_totals ORDER BY 1" \
  | sort >"$work/actual"
if ! diff "$work/expected" "$work/actual" >"$work/diff"; then
  fail "read model differs from the events (expected < > actual): $(cat "$work/diff")"
fi
restarts=$(grep -c "resuming after position" "$work/worker.log")
[ "$restarts" = 5 ] || fail "the worker started $restarts times, expected 5"
echo "1 passed, 0 failed"
