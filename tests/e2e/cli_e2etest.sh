#!/usr/bin/env bash
# The `logbook` CLI against a real logbookd: output, exit codes, migrations.
# Needs LOGBOOK_TEST_ENV (the pg_cluster fixture), LOGBOOKD and LOGBOOK_CLI.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
cli=$LOGBOOK_CLI
dsn=$(create_database cli) || fail "cannot create a database"

# Migrations.
migrations=("$(dirname "$0")/../../migrations/"*.sql)
count=${#migrations[@]}
latest=$((10#$(basename "${migrations[-1]}" | cut -c1-4)))
check "migrate status before" 0 '^0001_initial.sql  pending$' -- "$cli" migrate status --database "$dsn"
check "migrate up" 0 'applying 0001_initial.sql' -- "$cli" migrate up --database "$dsn"
check "migrate up again" 0 "^already up to date: schema version $latest\$" -- "$cli" migrate up --database "$dsn"
check "migrate verify" 0 "^ok: $count applied migration\\(s\\) match their files, 0 pending\$" -- "$cli" migrate verify --database "$dsn"
check "migrate from env" 0 'already up to date' -- env LOGBOOK_DATABASE_URL="$dsn" "$cli" migrate up
# The current definitions: listed, verified against the database itself, a
# function edited by hand named and restored.
definitions=$(cd "$(dirname "$0")/../../migrations" && ls functions/*.sql views/*.sql | wc -l)
check "migrate status lists definitions" 0 '^functions/append_cached.sql  applied  [0-9T:-]+Z$' -- \
  "$cli" migrate status --database "$dsn"
check "migrate verify definitions" 0 "^ok: $definitions definition\\(s\\) match the database, 0 to apply\$" -- \
  "$cli" migrate verify --database "$dsn"
psql -X -q -v ON_ERROR_STOP=1 "$dsn" -c "CREATE OR REPLACE FUNCTION logbook.position_at(p_time timestamptz)
  RETURNS bigint LANGUAGE sql STABLE AS \$\$ SELECT 0::bigint \$\$" || fail "cannot edit a function by hand"
check "migrate verify names a hand-edited function" 7 \
  '^functions/position_at.sql: function logbook.position_at\(timestamp with time zone\) differs from the file' -- \
  "$cli" migrate verify --database "$dsn"
check "migrate up reapplies every definition" 0 "^applied 0 migration\\(s\\) and $definitions definition\\(s\\) in" -- \
  "$cli" migrate up --database "$dsn" --reapply-definitions
check "migrate verify after reapplying" 0 "^ok: $definitions definition\\(s\\) match the database, 0 to apply\$" -- \
  "$cli" migrate verify --database "$dsn"
mkdir "$work/migrations"
cp "$(dirname "$0")/../../migrations/"*.sql "$work/migrations/"
echo "-- edited" >>"$work/migrations/0001_initial.sql"
check "migrate verify edited" 7 'EDITED after it was applied' -- "$cli" migrate verify --database "$dsn" --migrations-dir "$work/migrations"
check "migrate up edited" 7 'was edited after it was applied' -- "$cli" migrate up --database "$dsn" --migrations-dir "$work/migrations"
check "migrate bad action" 2 'action' -- "$cli" migrate sideways --database "$dsn"

# A server.
start_logbookd "$dsn" "$work/server.log" --admin-token s3cret || fail "logbookd did not start"

check "append" 0 '^appended OrderPlaced to order-1 at version 0 \(position 1, event id [0-9a-f-]{36}\)$' -- \
  "$cli" append order-1 --type OrderPlaced --data '{"total": 5}' --expect none
check "append json" 0 '"first_position":2,"first_version":1,"head_hash":"[0-9a-f]{64}","last_position":2,"last_version":1,"stream_id":"order-1"' -- \
  "$cli" append order-1 --type OrderPaid --data '{"paid": true}' --expect 0 --json
check "append conflict" 4 "wrong expected version for stream 'order-1': expected version 0, but the stream is at version 1" -- \
  "$cli" append order-1 --type X --data '{}' --expect 0
check "append bad json" 5 'events\[0\].data: not valid JSON' -- "$cli" append order-1 --type X --data '{nope'
check "append bad expect" 2 'expect takes any, none, exists or a version number' -- "$cli" append order-1 --type X --data '{}' --expect maybe
check "append missing type" 2 'type is required' -- "$cli" append order-1 --data '{}'
check "append from stdin" 0 'at version 2' -- sh -c "printf '{\"from\":\"stdin\"}' | '$cli' append order-1 --type Noted"
printf 'bin\000ary' >"$work/blob"
check "append binary file" 0 'at version 0' -- "$cli" append blob-1 --type Blob --content-type application/octet-stream --data-file "$work/blob"
check "append reused id" 0 'at version 3' -- "$cli" append order-1 --type X --data '{}' --event-id 0f8fad5b-d9cb-469f-a165-70867728950e
check "append reused id elsewhere" 4 'already stored in stream .order-1. at version 3' -- \
  "$cli" append order-2 --type X --data '{}' --event-id 0f8fad5b-d9cb-469f-a165-70867728950e
check "append bad uuid" 5 'events\[0\].event_id: not a UUID' -- "$cli" append order-1 --type X --data '{}' --event-id nope
check "append reserved" 5 "ids starting with '\\$' are reserved" -- "$cli" append '$all' --type X --data '{}'

check "read" 0 '^1  order-1@0  OrderPlaced  [0-9T:.-]+Z  by anonymous  \{"total":5\}' -- "$cli" read order-1
check "read from" 0 '^2  order-1@1  OrderPaid' -- "$cli" read order-1 --from 1 --limit 1
check "read backward" 0 '^5  order-1@3  X' -- "$cli" read order-1 --backward --limit 1
check "read json" 0 '^\{"content_type":"application/json","data":\{"from":"stdin"\},"event_id":"[0-9a-f-]{36}","global_position":3,"recorded_at":"[^"]+","stream_id":"order-1","stream_version":2,"tenant":"default","type":"Noted","written_by":"anonymous"\}$' -- \
  "$cli" read order-1 --from 2 --limit 1 --json
check "read binary json" 0 '"data":\{"base64":"YmluAGFyeQ=="\}' -- "$cli" read blob-1 --json
check "read binary text" 0 '<7 bytes>' -- "$cli" read blob-1
check "read all" 0 '^4  blob-1@0  Blob' -- "$cli" read '$all' --from 4 --limit 1
check "read all category" 0 '^3  order-1@2  Noted' -- "$cli" read '$all' --category order --type Noted
check "read missing" 3 "stream 'nope-1' does not exist" -- "$cli" read nope-1
check "read filter on stream" 2 'apply to .\$all. only' -- "$cli" read order-1 --category order
check "stream" 0 '^version        3$' -- "$cli" stream order-1
check "stream json" 0 '^\{"created_at":"[^"]+","first_version":0,"head_hash":"[0-9a-f]{64}","last_position":5,"state":"active","stream_id":"order-1","version":3\}$' -- "$cli" stream order-1 --json
check "stream missing" 3 'does not exist' -- "$cli" stream nope-1
listed=$("$cli" streams --prefix order 2>&1)
[ "$listed" = "order-1  version 3  last position 5  active" ] || fail "streams --prefix order printed: $listed"
pass "streams --prefix"
listed=$("$cli" streams --limit 2 --json 2>&1 | grep -o '"stream_id":"[^"]*"' | tr '\n' ' ')
[ "$listed" = '"stream_id":"blob-1" "stream_id":"order-1" ' ] || fail "streams --limit 2 --json printed: $listed"
pass "streams --limit --json"
listed=$("$cli" categories 2>&1 | tr '\n' ' ')
[ "$listed" = "blob order " ] || fail "categories printed: $listed"
pass "categories"
check "help" 0 'Append one event to a stream' -- "$cli" --help
check "append help" 0 'Expected stream version: any, none, exists or a number' -- "$cli" append --help
check "no command" 2 'A subcommand is required' -- "$cli"

# Subscriptions: the backlog, a category, and live events.
check "subscribe stream" 0 '^1  order-1@0  OrderPlaced.*
2  order-1@1  OrderPaid' -- "$cli" subscribe order-1 --count 2
check "subscribe category json" 0 '"global_position":4,.*"stream_id":"blob-1"' -- "$cli" subscribe --category blob --count 1 --json
check "subscribe from" 0 '^5  order-1@3  X' -- "$cli" subscribe '$all' --from 5 --count 1
check "subscribe usage" 2 'exactly one' -- "$cli" subscribe order-1 --category order
"$cli" subscribe '$all' --now --count 2 >"$work/live.out" 2>"$work/live.err" &
live_pid=$!
for _ in $(seq 100); do grep -q "caught up" "$work/live.err" && break; sleep 0.05; done
"$cli" read order-1 --follow >"$work/follow.out" 2>/dev/null &
follow_pid=$!
sleep 0.3
"$cli" append live-1 --type Live --data '{"n":1}' >/dev/null
"$cli" append order-1 --type Late --data '{"n":2}' >/dev/null
wait "$live_pid"
check "subscribe live" 0 '^6  live-1@0  Live  .*
7  order-1@4  Late' -- cat "$work/live.out"
check "subscribe caught up line" 0 '^-- caught up at position 5; following live' -- cat "$work/live.err"
for _ in $(seq 100); do grep -q "Late" "$work/follow.out" && break; sleep 0.05; done
kill "$follow_pid"; wait "$follow_pid" 2>/dev/null
"$cli" read later-1 --follow >"$work/later.out" 2>/dev/null &
later_pid=$!
sleep 0.3
"$cli" append later-1 --type Born --data '{}' >/dev/null
for _ in $(seq 100); do grep -q "Born" "$work/later.out" && break; sleep 0.05; done
kill "$later_pid"; wait "$later_pid" 2>/dev/null
check "read follow a stream created later" 0 '^8  later-1@0  Born' -- cat "$work/later.out"
check "read follow backward" 2 'follow reads forward' -- "$cli" read '$all' --backward --follow
check "read follow" 0 '^5  order-1@3  X.*
7  order-1@4  Late' -- cat "$work/follow.out"

# Receipts, schema versions, time travel, snapshots, redaction, deletion.
# lines N -- command...: the command's stdout has exactly N lines.
lines() { local n=$1; shift 2; [ "$("$@" 2>/dev/null | wc -l)" = "$n" ]; }
check "append schema version json" 0 '"events_since_snapshot":1,.*"head_hash":"[0-9a-f]{64}"' -- \
  "$cli" append rc-1 --type Opened --data '{"n":1}' --schema-version 2 --json
"$cli" append rc-1 --type Noted --data '{"n":2}' >/dev/null
"$cli" append rc-1 --type Noted --data '{"n":3}' >/dev/null
check "read schema version" 0 '^9  rc-1@0  Opened \(schema 2\)  [0-9T:.-]+Z  by anonymous  \{"n":1\}$' -- "$cli" read rc-1 --limit 1
check "read schema version json" 0 '"schema_version":2,"stream_id":"rc-1"' -- "$cli" read rc-1 --limit 1 --json
check "stream head hash" 0 '^head hash      [0-9a-f]{64}$' -- "$cli" stream rc-1
check "stream state" 0 '^state          active$' -- "$cli" stream rc-1
check "stream first version" 0 '^first version  0$' -- "$cli" stream rc-1
head=$("$cli" stream rc-1 --json | grep -o '"head_hash":"[0-9a-f]*"' | cut -d'"' -f4)
check "verify stream" 0 "^ok: 3 events, head $head\$" -- "$cli" verify rc-1
check "verify all" 0 '^ok: 11 events in 5 streams$' -- "$cli" verify --all
check "verify all json" 0 '^\{"events_checked":11,"ok":true,"streams_checked":5,"whole_log":true\}$' -- "$cli" verify --all --json
check "verify no progress when not a terminal" 0 '^$' -- sh -c "'$cli' verify --all 2>&1 >/dev/null"
check "verify usage" 2 'give a stream id or --all, exactly one' -- "$cli" verify
check "verify usage both" 2 'exactly one' -- "$cli" verify rc-1 --all
check "verify missing" 3 "stream 'nope-1' does not exist" -- "$cli" verify nope-1
check "verify help" 0 'BROKEN at STREAM@VERSION' -- "$cli" verify --help

check "read until" 0 '^10  rc-1@1  Noted' -- sh -c "'$cli' read rc-1 --until 1 | tail -n 1"
check "read until count" 0 '' -- lines 2 -- "$cli" read rc-1 --until 1
check "read all until backward" 0 '^10  rc-1@1' -- sh -c "'$cli' read '\$all' --until 10 --backward --limit 1"
at=$("$cli" read rc-1 --from 1 --limit 1 --json | grep -o '"recorded_at":"[^"]*"' | cut -d'"' -f4)
check "read as of" 0 '' -- lines 2 -- "$cli" read rc-1 --as-of "$at"
check "read as of all" 0 '^10  rc-1@1' -- sh -c "'$cli' read '\$all' --as-of '$at' --backward --limit 1"
check "read as of long ago" 0 '^$' -- "$cli" read rc-1 --as-of 2000-01-01T00:00:00Z
check "read as of bad" 2 'as-of takes an RFC 3339 time' -- "$cli" read rc-1 --as-of yesterday
check "read follow until" 2 'does not combine with --until or --as-of' -- "$cli" read rc-1 --follow --until 1

check "snapshot save" 0 '^saved a snapshot of rc-1 at version 1 \(schema 1\)$' -- \
  "$cli" snapshot save rc-1 1 --schema 1 --data '{"total":3}'
check "snapshot save stdin" 0 'at version 2 \(schema 1\)' -- \
  sh -c "printf '{\"total\":6}' | '$cli' snapshot save rc-1 2 --schema 1"
check "snapshot load" 0 '^rc-1@2  schema 1  [0-9T:.-]+Z  \{"total":6\}$' -- "$cli" snapshot load rc-1
check "snapshot load json" 0 '^\{"created_at":"[^"]+","schema_version":1,"state":\{"total":3\},"stream_id":"rc-1","stream_version":1\}$' -- \
  "$cli" snapshot load rc-1 --max-version 1 --json
check "snapshot load output" 0 'rc-1@2' -- "$cli" snapshot load rc-1 --output "$work/state"
check "snapshot output bytes" 0 '^\{"total":6\}$' -- cat "$work/state"
check "snapshot load none" 3 "has no snapshot of schema version 2" -- "$cli" snapshot load rc-1 --schema 2
check "snapshot beyond head" 7 'beyond the head' -- "$cli" snapshot save rc-1 9 --schema 1 --data '{}'
check "snapshot usage" 2 'A subcommand is required' -- "$cli" snapshot
check "snapshot save no schema" 2 'schema is required' -- "$cli" snapshot save rc-1 1 --data '{}'
check "events since snapshot" 0 '"events_since_snapshot":1,' -- "$cli" append rc-1 --type Noted --data '{"n":4}' --json

# A token and the tokens-file line that gives it out: the line holds the
# token's SHA-256, never the token.
made=$("$cli" auth token create billing --roles reader,writer --scopes 'orders-*,payments' 2>/dev/null) ||
  fail "auth token create"
token=$(sed -n 1p <<<"$made")
[[ "$token" =~ ^lbk_[0-9a-f]{64}$ ]] || fail "auth token create: token '$token'"
[ "$(sed -n 2p <<<"$made")" = "$(printf %s "$token" | sha256sum | cut -d' ' -f1) billing reader,writer - orders-*,payments" ] ||
  fail "auth token create: line '$(sed -n 2p <<<"$made")'"
pass "auth token create"
check "auth token create, a bad role" 2 'writr not in' -- "$cli" auth token create billing --roles reader,writr
check "auth token create with quotas" 0 '^[0-9a-f]{64} ops reader - \* subscriptions=10,appends=64-- ' -- \
  "$cli" auth token create ops --roles reader --quotas subscriptions=10,appends=64
check "auth token create, a bad quota" 2 "'subs=1' is not subscriptions=N" -- \
  "$cli" auth token create ops --roles reader --quotas subs=1

check "redact no token" 2 'redact: needs the admin role: give --admin-token' -- \
  env -u LOGBOOK_ADMIN_TOKEN "$cli" redact rc-1 1 --reason test
check "redact wrong token" 9 'authorization: unknown token' -- "$cli" redact rc-1 1 --reason test --admin-token nope
check "redact no reason" 2 'reason is required' -- "$cli" redact rc-1 1 --admin-token s3cret
check "redact" 0 '^redacted rc-1@1 \(position 10, audit position 13\)$' -- \
  env LOGBOOK_ADMIN_TOKEN=s3cret "$cli" redact rc-1 1 --reason 'customer asked'
check "redact again" 7 'already redacted' -- "$cli" redact rc-1 1 --reason again --admin-token s3cret
check "read redacted" 0 '^10  rc-1@1  Noted  [0-9T:.-]+Z  by anonymous  <redacted: customer asked>$' -- "$cli" read rc-1 --from 1 --limit 1
check "read redacted json" 0 '"data":null,.*"redaction_reason":"customer asked"' -- "$cli" read rc-1 --from 1 --limit 1 --json
check "read audit" 0 '^13  \$audit@0  EventRedacted' -- "$cli" read '$audit'
check "verify after redaction" 0 "^ok: 4 events, head [0-9a-f]{64}\$" -- "$cli" verify rc-1
check "verify all after redaction" 0 '^ok: 13 events in 6 streams$' -- "$cli" verify --all

"$cli" append del-1 --type A --data '{}' >/dev/null
"$cli" append del-1 --type B --data '{}' >/dev/null
check "delete conflict" 4 'wrong expected version' -- "$cli" delete del-1 --expect 0
check "delete" 0 '^deleted del-1 at version 1 \(audit position 16\)$' -- "$cli" delete del-1 --expect 1
check "read deleted" 3 'del-1' -- "$cli" read del-1
check "stream deleted" 0 '^state          soft_deleted$' -- "$cli" stream del-1
check "delete again" 3 'already deleted' -- "$cli" delete del-1
check "append revives" 0 'at version 2 \(position 17' -- "$cli" append del-1 --type C --data '{}'
check "stream revived" 0 '^first version  2$' -- "$cli" stream del-1
check "read revived" 0 '' -- lines 1 -- "$cli" read del-1
check "tombstone json" 0 '^\{"audit_position":18,"deleted_version":2,"stream_id":"del-1","tombstone":true\}$' -- \
  "$cli" delete del-1 --tombstone --json
check "append tombstoned" 7 'tombstoned' -- "$cli" append del-1 --type D --data '{}'
check "read tombstoned" 3 'tombstoned' -- "$cli" read del-1
check "stream tombstoned" 0 '^state          tombstoned$' -- "$cli" stream del-1
check "delete tombstoned" 7 'already tombstoned' -- "$cli" delete del-1
check "delete missing" 3 "stream 'nope-1' does not exist" -- "$cli" delete nope-1
check "delete help" 0 'Delete for good' -- "$cli" delete --help

# Tampering behind the service's back, as the superuser.
psql -X -q -d "$dsn" -c \
  "SET session_replication_role = replica; UPDATE logbook.event_log SET data = convert_to('{\"n\":99}', 'UTF8') WHERE stream_id = 'rc-1' AND stream_version = 2"
check "verify tampered" 8 '^BROKEN at rc-1@2 \(position 11\): DATA_CHANGED: .+' -- "$cli" verify rc-1
check "verify all tampered json" 8 '"first_broken":\{"detail":"[^"]+","global_position":11,"reason":"DATA_CHANGED","stream_id":"rc-1","stream_version":2\},"ok":false' -- \
  "$cli" verify --all --json
check "verify untouched stream" 0 '^ok: 5 events' -- "$cli" verify order-1

# With no subscription live, the live tail idles: while appends go on and
# then stop, logbookd spends no CPU on it and logs no failed tail read (it
# once re-read position 0 in a loop). Over 2 idle seconds it may use a
# quarter of a second of CPU at most; the loop used all of it.
"$cli" append idle-1 --type X --data '{}' >/dev/null
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }
idle_server() {
  local before idle_ticks
  before=$(cpu_ticks)
  sleep 2
  idle_ticks=$(( $(cpu_ticks) - before ))
  if [ "$idle_ticks" -gt $(( $(getconf CLK_TCK) / 4 )) ] || grep -q "cannot read the log tail" "$work/server.log"; then
    echo "$idle_ticks CPU ticks in 2 s; $(grep -c 'cannot read the log tail' "$work/server.log") tail read failures logged"
    return 1
  fi
}
check "idle server" 0 '' -- idle_server

stop_logbookd

# The size limits are flags of logbookd (and one append writer is enough).
check "append writers range" 105 '--append-writers: Value 0 not in range 1 to 64' -- \
  "$LOGBOOKD" --database "$dsn" --append-writers 0
start_logbookd "$dsn" "$work/server2.log" --max-event-bytes 10 --max-batch-events 2 \
  --append-writers 1 || fail "logbookd did not start with limit flags"
check "limit flag event bytes" 5 'events\[0\]: data and metadata are 11 bytes; the limit is 10' -- \
  "$cli" append order-1 --type X --data '"123456789"'
check "limit flag within" 0 'appended' -- "$cli" append order-1 --type X --data '"1234567"'
stop_logbookd

# Signed checkpoints, on a database of their own.
openssl genpkey -algorithm ed25519 -out "$work/signing.pem" 2>/dev/null
openssl pkey -in "$work/signing.pem" -pubout -out "$work/signing.pub" 2>/dev/null
openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout -out "$work/other.pub" 2>/dev/null
check "signing key flag" 2 "^--signing-key: $work/blob: not an Ed25519 private key" -- \
  "$LOGBOOKD" --database "$dsn" --signing-key "$work/blob"
ckpt_dsn=$(create_database cli_ckpt) || fail "cannot create a database"
"$cli" migrate up --database "$ckpt_dsn" >/dev/null || fail "migrate up"
start_logbookd "$ckpt_dsn" "$work/server3.log" --signing-key "$work/signing.pem" \
  --checkpoint-interval 0 || fail "logbookd did not start with a signing key"
check "checkpoint none yet" 3 'logbook: no checkpoint was signed yet$' -- "$cli" checkpoint
"$cli" append ck-1 --type A --data '{}' >/dev/null && "$cli" append ck-1 --type B --data '{}' >/dev/null
check "checkpoint create" 0 '^checkpoint #1 at position 2, [0-9T:.-]+Z' -- "$cli" checkpoint --create
check "checkpoint json" 0 '^\{"created_at":"[^"]+","id":1,"key_id":"[0-9a-f]{64}","log_hash":"[0-9a-f]{64}","log_position":2,"signature":"[0-9a-f]{128}"\}$' -- \
  "$cli" checkpoint --json
check "verify signed" 0 '^ok: 2 events in 1 stream; 1 signed checkpoint match, the newest #1 at position 2 \(signature verified with the public key\)$' -- \
  "$cli" verify --all --public-key "$work/signing.pub"
check "verify other key" 8 '^NOT PROVEN: checkpoint #1 is signed by key [0-9a-f]{64}, not by this public key' -- \
  "$cli" verify --all --public-key "$work/other.pub"
check "verify bad public key" 2 'not an Ed25519 public or private key' -- \
  "$cli" verify --all --public-key "$work/blob"
check "verify public key needs all" 2 'checks the checkpoints of --all' -- \
  "$cli" verify ck-1 --public-key "$work/signing.pub"
# The owner rewrites ck-1@1 with a receipt it recomputes, and the head:
# receipts cannot tell, the signed checkpoint can.
psql -X -q -d "$ckpt_dsn" -c "SET session_replication_role = replica;
  UPDATE logbook.event_log e SET data = '{\"forged\":1}', data_digest = sha256('{\"forged\":1}'),
    receipt_hash = logbook.receipt_hash(e.receipt_previous_hash, e.stream_id, e.stream_version,
      e.event_id, e.event_type, e.content_type, e.recorded_at, e.schema_version,
      e.correlation_id, e.causation_id, sha256('{\"forged\":1}'), e.metadata_digest,
      e.tenant, e.written_by)
  WHERE global_position = 2;
  UPDATE logbook.streams s SET head_hash = e.receipt_hash FROM logbook.event_log e
  WHERE s.stream_id = 'ck-1' AND e.global_position = 2" || fail "tampering failed"
check "verify stream rewritten" 0 '^ok: 2 events' -- "$cli" verify ck-1
check "verify rewritten" 8 "^BROKEN at ck-1@1 \(position 2\): CHECKPOINT_MISMATCH: changed since signed checkpoint #1 at position 2 \\(.*\\): its receipt hash [0-9a-f]{64} is not the [0-9a-f]{64} it hashed here\$" -- \
  "$cli" verify --all --public-key "$work/signing.pub"
stop_logbookd
# Every --checkpoint-interval seconds, a checkpoint when the head moved.
start_logbookd "$ckpt_dsn" "$work/server4.log" --signing-key "$work/signing.pem" \
  --checkpoint-interval 1 || fail "logbookd did not start with a checkpoint interval"
"$cli" append ck-2 --type C --data '{}' >/dev/null || fail "append"
signed_periodically() {
  for _ in $(seq 100); do
    grep -q 'signed checkpoint #2 of the log at position 3' "$work/server4.log" && return 0
    sleep 0.1
  done
  return 1
}
check "checkpoint every interval" 0 '' -- signed_periodically
check "checkpoint interval latest" 0 '^checkpoint #2 at position 3, ' -- "$cli" checkpoint
# A W3C trace context goes with the append, and comes back on reads.
tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
check "append traceparent" 0 'at version 0' -- "$cli" append traced-1 --type T --data '{}' --traceparent "$tp"
check "read traceparent" 0 "\"traceparent\":\"$tp\"" -- "$cli" read traced-1 --json
check "append bad traceparent" 5 "traceparent metadata: '00-xyz' is not a W3C traceparent" -- \
  "$cli" append traced-1 --type T --data '{}' --traceparent 00-xyz
check "nothing appended" 0 '^1$' -- sh -c "'$cli' read traced-1 | wc -l"
# The options above the commands are taken after them too, at any depth.
check "address after the command" 0 '"stream_id":"traced-1"' -- \
  env -u LOGBOOK_ADDRESS "$cli" read traced-1 --json --address "$LOGBOOK_ADDRESS" --timeout 5
check "options after a subcommand's subcommand" 3 "consumer group 'nope' does not exist" -- \
  env -u LOGBOOK_ADDRESS "$cli" group info nope --address "$LOGBOOK_ADDRESS"
# Bash completion, made from the command tree.
"$cli" completion bash >"$work/logbook.bash" || fail "completion bash"
completes() {  # completes WORD... : what TAB offers after them (the last is the one typed).
  bash -c '. "$1"; shift; COMP_WORDS=(logbook "$@"); COMP_CWORD=$#; _logbook_complete
    echo "${COMPREPLY[*]}"' _ "$work/logbook.bash" "$@"
}
check "complete a command" 0 '^group$' -- completes gr
check "complete a subcommand" 0 '^create$' -- completes group cr
check "complete an option" 0 '^--strategy --stream$' -- completes group create emails --str
check "complete an option from above" 0 '^--address$' -- completes verify order-1 --addr
check "complete the commands" 0 ' append auth categories checkpoint completion consume delete group migrate read redact snapshot stream streams subscribe verify$' -- \
  completes ''
check "completion: bash only" 2 'shell: zsh not in \{bash\}' -- "$cli" completion zsh
stop_logbookd
check "server gone" 6 '' -- "$cli" --timeout 2 stream order-1
check "clean shutdown line" 0 'logbookd stopped' -- cat "$work/server.log"
finish
