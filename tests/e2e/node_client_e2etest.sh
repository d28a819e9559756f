#!/usr/bin/env bash
# The TypeScript client (clients/node, issue 22): `npm ci` (the npm
# registry; package-lock.json pins everything), built with tsc, its proto
# copied in from proto/; then its node:test suite against a real logbookd,
# which the suite restarts once on the same port (LOGBOOK_RESTART) to prove
# subscriptions resume, and against a second one with TLS, client
# certificates and tokens; the projection example against a real read-model
# database, stopped, restarted and killed; the catch-up benchmark on a few
# events; and the README's quickstart. Needs LOGBOOK_TEST_ENV (the
# pg_cluster fixture), LOGBOOKD and LOGBOOK_CLI.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
root=$(cd "$(dirname "$0")/../.." && pwd)
pkg=$root/clients/node
fail_context() {
  local log
  for log in "$work"/server*.log "$work"/projection*.log; do
    [ -f "$log" ] && { echo "--- tail of $log"; tail -n 20 "$log"; }
  done
}

command -v node >/dev/null && command -v npm >/dev/null || fail "node and npm are needed (deploy/install-deps.sh)"
[[ "$(node --version)" =~ ^v(2[0-9]|[3-9][0-9])\. ]] || fail "node 20 or later is needed, not $(node --version)"

(cd "$pkg" && npm ci --no-audit --no-fund) >"$work/npm-ci.log" 2>&1 ||
  fail "npm ci in clients/node: $(tail -n 20 "$work/npm-ci.log")"
pass "npm ci in clients/node"
(cd "$pkg" && npm run build) >"$work/build.log" 2>&1 || fail "npm run build: $(tail -n 30 "$work/build.log")"
cmp -s "$root/proto/logbook/v1/event_store.proto" "$pkg/proto/logbook/v1/event_store.proto" ||
  fail "the package's proto is not proto/logbook/v1/event_store.proto"
(cd "$pkg" && npm pack --dry-run --json --ignore-scripts) >"$work/pack.json" 2>"$work/pack.log" ||
  fail "npm pack --dry-run: $(cat "$work/pack.log")"
for f in dist/index.js dist/index.d.ts dist/client.d.ts proto/logbook/v1/event_store.proto package.json; do
  grep -q "\"path\": \"$f\"" "$work/pack.json" || fail "the package lacks $f"
done
pass "built with tsc: the package has its types and its proto, copied from proto/"

dsn=$(create_database node) || fail "cannot create a database"
"$LOGBOOK_CLI" migrate up --database "$dsn" >/dev/null || fail "cannot migrate"

# A second logbookd that wants TLS, a client certificate and a token.
make_ca ca && make_ca other-ca && make_cert server ca "IP:127.0.0.1,DNS:localhost" &&
  make_cert client ca || fail "openssl cannot make the certificates"
tokens() { "$LOGBOOK_CLI" auth token create "$1" --roles "$2" 2>/dev/null; }
writer=$(tokens node-writer reader,writer,consumer) && reader=$(tokens node-reader reader) ||
  fail "logbook auth token create"
{ sed -n 2p <<<"$writer"; sed -n 2p <<<"$reader"; } >"$work/tokens"
start_logbookd "$dsn" "$work/server-secure.log" --tls-cert "$work/server.pem" --tls-key "$work/server.key" \
  --tls-client-ca "$work/ca.pem" --auth-tokens "$work/tokens" || fail "logbookd with TLS did not start"
secure_address=$LOGBOOK_ADDRESS

start_logbookd "$dsn" "$work/server.log" || fail "logbookd did not start"
restart_script "$work/restart.sh" "$dsn"

(cd "$pkg" && LOGBOOK_RESTART="$work/restart.sh" LOGBOOK_SECURE_ADDRESS="$secure_address" \
  LOGBOOK_TLS_DIR="$work" LOGBOOK_WRITER_TOKEN=$(sed -n 1p <<<"$writer") \
  LOGBOOK_READER_TOKEN=$(sed -n 1p <<<"$reader") timeout 300 \
  node --test --test-concurrency=1 build/test/*.test.js >"$work/node-test.log" 2>&1)
code=$?
grep -E '^(not ok|# (tests|pass|fail|cancelled|skipped|todo)) ' "$work/node-test.log"
[ "$code" = 0 ] || { cat "$work/node-test.log"; fail "node --test failed (exit $code)"; }
grep -Eq '^# pass [1-9][0-9]*$' "$work/node-test.log" || fail "node --test ran no tests"
for none in fail cancelled skipped todo; do
  grep -q "^# $none 0$" "$work/node-test.log" || fail "node --test: $(grep "^# $none " "$work/node-test.log")"
done
pass "the TypeScript client's tests pass against logbookd, none skipped"

# The projection example: a read model in a database of its own, its
# checkpoint moved in the transaction that applies each event.
readmodel=$(create_database node_readmodel) || fail "cannot create the read model's database"
category="proj$$"
append() {
  "$LOGBOOK_CLI" append "$category-$1" --type "$2" --data "$3" | sed -n 's/.*(position \([0-9]*\),.*/\1/p'
}
sql() { psql -X -At -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin -d "${readmodel##*/}" -c "$1"; }
checkpoint() { sql "SELECT position FROM projection_checkpoints WHERE name = 'orders:$category'" 2>/dev/null; }
orders() { sql "SELECT order_id, total, paid, events, version FROM orders ORDER BY order_id"; }
projection_pid=""
start_projection() {
  node "$pkg/build/examples/projection.js" "$LOGBOOK_ADDRESS" "$readmodel" "$category" \
    >"$work/projection$1.log" 2>&1 &
  projection_pid=$!
}
# wait_for_checkpoint POSITION: until the projection has applied it.
wait_for_checkpoint() {
  for _ in $(seq 400); do
    [ "$(checkpoint)" = "$1" ] && return 0
    kill -0 "$projection_pid" 2>/dev/null || fail "the projection ended: $(cat "$work"/projection*.log)"
    sleep 0.05
  done
  fail "the projection's checkpoint is '$(checkpoint)', not $1"
}
stop_projection() {
  # Once it is live: its SIGTERM handler is installed by then.
  for _ in $(seq 200); do grep -q '^caught up at position' "$work/projection$1.log" && break; sleep 0.05; done
  kill -TERM "$projection_pid"
  wait "$projection_pid" || fail "the projection exited with $? on SIGTERM: $(cat "$work/projection$1.log")"
  grep -q '^stopped$' "$work/projection$1.log" || fail "the projection did not stop cleanly"
}

for i in 1 2 3; do
  append "$i" OrderPlaced "{\"total\": $((i * 10))}" >/dev/null
  last=$(append "$i" OrderPaid "{\"amount\": $i}")
done
[[ "$last" =~ ^[0-9]+$ ]] || fail "logbook append: '$last'"
start_projection 1
wait_for_checkpoint "$last"
stop_projection 1
want="$category-1|10|1|2|1
$category-2|20|2|2|1
$category-3|30|3|2|1"
[ "$(orders)" = "$want" ] || fail "the read model after the first run: $(orders)"
pass "the projection builds the read model, checkpoint $last"

first=$last
for i in 1 2 3; do append "$i" OrderPaid '{"amount": 100}' >/dev/null; done
last=$(append 4 OrderPlaced '{"total": 40}')
[[ "$last" =~ ^[0-9]+$ ]] || fail "logbook append: '$last'"
start_projection 2
wait_for_checkpoint "$last"
grep -q "^projecting category $category after position $first$" "$work/projection2.log" ||
  fail "the projection did not resume after $first: $(head -n 1 "$work/projection2.log")"
stop_projection 2
want="$category-1|10|101|3|2
$category-2|20|102|3|2
$category-3|30|103|3|2
$category-4|40|0|1|0"
[ "$(orders)" = "$want" ] || fail "the read model after a restart: $(orders)"
pass "restarted, the projection applies only the events after its checkpoint, each once"

# Killed (-9) wherever it is while it applies 500 events: whatever it had
# committed is exact, and the next run applies the rest once.
second=$last
last=$(cd "$work" && node --input-type=module -e "
  import { Client, NewEvent } from '$pkg/dist/index.js';
  const lb = new Client(process.argv[1]);
  const events = Array.from({ length: 500 }, () => new NewEvent('OrderPaid', { amount: 1 }));
  console.log((await lb.append('$category-1', events)).lastPosition);
  lb.close();" "$LOGBOOK_ADDRESS" 2>&1)
[[ "$last" =~ ^[0-9]+$ ]] || fail "appending 500 events: '$last'"
start_projection 3
for _ in $(seq 400); do [ "$(checkpoint)" != "$second" ] && break; sleep 0.01; done
kill -KILL "$projection_pid"
wait "$projection_pid" 2>/dev/null
killed_at=$(checkpoint)
start_projection 4
wait_for_checkpoint "$last"
stop_projection 4
want="$category-1|10|601|503|502
$category-2|20|102|3|2
$category-3|30|103|3|2
$category-4|40|0|1|0"
[ "$(orders)" = "$want" ] || fail "the read model after kill -9 at checkpoint $killed_at: $(orders)"
pass "killed at checkpoint $killed_at and restarted, the projection applied each event once"

# The catch-up benchmark, on a few events (the log holds more).
out=$(cd "$pkg" && timeout 60 node build/bench/catchup.js --address "$LOGBOOK_ADDRESS" --events 2000 2>&1) ||
  fail "bench/catchup.js: $out"
[[ "$out" =~ \"events\":2000, ]] && [[ "$out" =~ \"events_per_s\":[1-9] ]] || fail "bench/catchup.js printed: $out"
pass "bench/catchup.js reads 2000 events through subscribe"

# The README's complete program, as it is.
out=$(cd "$work" && timeout 30 node "$pkg/build/examples/quickstart.js" "$LOGBOOK_ADDRESS" 2>&1) ||
  fail "examples/quickstart.ts: $out"
want='^appended order-[0-9]+@0 at position [0-9]+
read 0 OrderPlaced \{ total: 30 \}
read 1 OrderPaid \{ amount: 30 \}
got [0-9]+ OrderPlaced
got [0-9]+ OrderPaid$'
[[ "$out" =~ $want ]] || fail "examples/quickstart.ts printed: $out"
[ "$(wc -l <"$pkg/examples/quickstart.ts")" -lt 30 ] || fail "examples/quickstart.ts has 30 lines or more"
# The README shows it without its first line (the comment).
sed -n '/^```ts$/,/^```$/{p;/^```$/q}' "$pkg/README.md" | sed '1d;$d' >"$work/readme.ts"
tail -n +2 "$pkg/examples/quickstart.ts" | diff "$work/readme.ts" - >"$work/readme.diff"
[ ! -s "$work/readme.diff" ] || fail "the README's program is not examples/quickstart.ts: $(cat "$work/readme.diff")"
pass "the README's program (examples/quickstart.ts) appends, reads and subscribes"
finish
