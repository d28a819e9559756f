#!/usr/bin/env bash
# logbookd's HTTP/JSON API (--http-listen, docs/http-api.md) with curl:
# appends and their expected versions (field, If-Match, If-None-Match),
# idempotent retries, reads of a stream and of $all with their parameters,
# stream info, verification (also as Server-Sent Events), subscriptions as
# Server-Sent Events (history, live, Last-Event-ID), the lists of streams
# and categories a page at a time, consumer groups and their parked events,
# every error as its HTTP status with a JSON body naming the field and
# changing nothing, and the gRPC API's bearer tokens and scopes (in what
# the lists show too). Needs LOGBOOK_TEST_ENV (the pg_cluster fixture),
# LOGBOOKD and LOGBOOK_CLI.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
cli=$LOGBOOK_CLI
dsn=$(create_database http) || fail "cannot create a database"
"$cli" migrate up --database "$dsn" >/dev/null || fail "cannot migrate"
start_logbookd "$dsn" "$work/server.log" --http-listen 127.0.0.1:0 || fail "logbookd did not start"
port=$(grep -o 'HTTP API on http://127.0.0.1:[0-9]*' "$work/server.log" | sed 's/.*://')
[ -n "$port" ] || fail "logbookd did not say where its HTTP API is: $(cat "$work/server.log")"
base="http://127.0.0.1:$port"
pass "logbookd serves the HTTP API on $base"

# http METHOD PATH [CURL ARGS...]: prints "STATUS BODY".
http() {
  local method=$1 path=$2
  shift 2
  curl -s -X "$method" -o "$work/body" -w '%{http_code}' "$@" "$base$path" >"$work/status"
  echo "$(cat "$work/status") $(cat "$work/body")"
}
json_body=(-H 'Content-Type: application/json')

first='{"expected_version":"no_stream","events":[
  {"type":"OrderPlaced","data":{"total":30},"event_id":"00000000-0000-4000-8000-000000000001"},
  {"type":"OrderPaid","data":{"amount":30},"event_id":"11111111-1111-4111-8111-111111111111","metadata":{"by":"web"}}]}'
check "append" 0 '^201 \{"committed_at":"[0-9T:.-]+Z","event_ids":\["00000000-0000-4000-8000-000000000001","11111111-1111-4111-8111-111111111111"\],"events_since_snapshot":2,"first_position":1,"first_version":0,"head_hash":"[0-9a-f]{64}","last_position":2,"last_version":1,"stream_id":"order-1"\}$' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -d "$first"
check "the same append again is stored once" 0 '^201 .*"first_position":1,"first_version":0,.*"last_position":2,' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -d "$first"
check "If-Match: the stream's version" 0 '^201 .*"first_version":2,' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -H 'If-Match: "1"' -d '{"events":[{"type":"OrderShipped"}]}'
check "If-Match: a wrong version" 0 '^412 \{"error":\{"actual_version":2,"code":"ABORTED","message":"[^"]+"\}\}$' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -H 'If-Match: 1' -d '{"events":[{"type":"Late"}]}'
check "If-None-Match: * on a stream that exists" 0 '^412 .*"code":"ABORTED"' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -H 'If-None-Match: *' -d '{"events":[{"type":"Late"}]}'
check "opaque data" 0 '^201 ' -- \
  http POST /v1/streams/blob-1 "${json_body[@]}" -d '{"events":[{"type":"Blob","content_type":"application/octet-stream","data":{"base64":"AAEC"}}]}'

# Bad input: 400 naming the field, and nothing is stored.
check "not JSON" 0 '^400 \{"error":\{"code":"INVALID_ARGUMENT","message":"body: not a JSON object"\}\}$' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -d 'nope'
check "no events" 0 '^400 .*"message":"events: missing, or not an array"' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -d '{}'
check "a bad expected version" 0 '^400 .*"message":"expected_version: not \\"any\\", \\"no_stream\\", \\"stream_exists\\" or a version"' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -d '{"expected_version":"later","events":[{"type":"X"}]}'
check "a bad If-Match" 0 "^400 .*\"message\":\"If-Match: 'soon' is not a stream version\"" -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -H 'If-Match: soon' -d '{"events":[{"type":"X"}]}'
check "a type missing (the server's own check)" 0 '^400 .*"code":"INVALID_ARGUMENT","message":"events\[0\]\.type: ' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -d '{"events":[{"data":{}}]}'
check "opaque data that is not a string" 0 '^400 .*"message":"events\[0\]\.data: with content_type text/plain it must be a string or \{\\"base64\\": \\"...\\"\}"' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -d '{"events":[{"type":"T","content_type":"text/plain","data":{"a":1}}]}'
check "an id stored in another stream" 0 '^409 .*"code":"ALREADY_EXISTS"' -- \
  http POST /v1/streams/order-2 "${json_body[@]}" -d '{"events":[{"type":"X","event_id":"11111111-1111-4111-8111-111111111111"}]}'
head -c 17000000 /dev/zero | tr '\0' 'a' >"$work/big"
check "a body too large" 0 '^413 .*"code":"RESOURCE_EXHAUSTED"' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" --data-binary "@$work/big"
check "nothing of it was stored" 0 '^200 .*"version":2\}$' -- http GET /v1/streams/order-1/info

# Reads.
check "read a stream" 0 '^200 \{"events":\[\{"content_type":"application/json","data":\{"total":30\},"event_id":"00000000-0000-4000-8000-000000000001","global_position":1,"recorded_at":"[^"]+","stream_id":"order-1","stream_version":0,"tenant":"default","type":"OrderPlaced","written_by":"anonymous"\},\{"content_type":"application/json","data":\{"amount":30\},"event_id":"11111111-1111-4111-8111-111111111111","global_position":2,"metadata":\{"by":"web"\},' -- \
  http GET /v1/streams/order-1
check "read a stream: from, limit" 0 '^200 \{"events":\[\{[^]]*"stream_version":1,[^]]*"type":"OrderPaid"[^]]*\}\]\}$' -- \
  http GET '/v1/streams/order-1?from=1&limit=1'
check "read a stream backward" 0 '^200 \{"events":\[\{"content_type":"application/json","data":\{\},"event_id":"[0-9a-f-]{36}","global_position":3,' -- \
  http GET '/v1/streams/order-1?direction=backward'
check "read a stream until a version" 0 '^200 \{"events":\[\{[^]]*"stream_version":0,[^]]*"type":"OrderPlaced"[^]]*\}\]\}$' -- \
  http GET '/v1/streams/order-1?until=0'
check "read a missing stream" 0 '^404 .*"code":"NOT_FOUND"' -- http GET /v1/streams/nope-1
check "a bad parameter" 0 "^400 .*\"message\":\"from: '-3' is not a non-negative integer\"" -- \
  http GET '/v1/streams/order-1?from=-3'
check "a bad direction" 0 "^400 .*\"message\":\"direction: 'up' is not forward or backward\"" -- \
  http GET '/v1/streams/order-1?direction=up'
check "read \$all" 0 '^200 \{"events":\[.*"global_position":4,.*"type":"Blob".*\}\]\}$' -- http GET /v1/all
check "read \$all: a category and a type" 0 '^200 \{"events":\[\{[^]]*"stream_version":1,[^]]*"type":"OrderPaid"[^]]*\}\]\}$' -- \
  http GET '/v1/all?category=order&type=OrderPaid'
check "read \$all: opaque data as base64" 0 '"data":\{"base64":"AAEC"\}' -- http GET '/v1/all?from=4'
check "stream info" 0 '^200 \{"created_at":"[^"]+","first_version":0,"head_hash":"[0-9a-f]{64}","last_position":3,"state":"active","stream_id":"order-1","version":2\}$' -- \
  http GET /v1/streams/order-1/info
check "verify" 0 '^200 \{"events_checked":3,"head_hash":"[0-9a-f]{64}","ok":true\}$' -- \
  http GET /v1/streams/order-1/verify
check "no such resource" 0 '^404 .*"message":"no such resource: GET /v2/x' -- http GET /v2/x
# same WANT -- COMMAND...: 0 when COMMAND prints exactly WANT, else 1 and
# the diff (- wanted, + got).
same() {
  local want=$1
  shift 2
  diff <(printf '%s\n' "$want") <("$@") && return 0
  return 1
}
# Verification as Server-Sent Events (what the console's progress bar reads):
# progress, then the result, the same JSON as the plain answer.
hash=$(curl -s "$base/v1/streams/order-1/info" | grep -oE '"head_hash":"[0-9a-f]{64}"')
check "verify as Server-Sent Events: progress, then the result" 0 '' -- same "event: progress
data: {\"events_checked\":3,\"events_total\":3}

event: result
data: {\"events_checked\":3,$hash,\"ok\":true}
" -- curl -s -H 'Accept: text/event-stream' "$base/v1/streams/order-1/verify"
check "verify as Server-Sent Events: a missing stream is a 404, as for a subscription" 0 '^404 .*"code":"NOT_FOUND","message":"stream .nope-1. does not exist"' -- \
  http GET /v1/streams/nope-1/verify -H 'Accept: text/event-stream'

# Subscriptions as Server-Sent Events: history, caught_up, then live.
curl -sN --max-time 4 "$base/v1/subscribe?stream=order-1" >"$work/sse.out" &
sse=$!
sleep 1
http POST /v1/streams/order-1 "${json_body[@]}" -d '{"events":[{"type":"Live"}]}' >/dev/null
wait "$sse"
check "subscribe: history, caught_up, then live" 0 '' -- same "id: 1
event: event
id: 2
event: event
id: 3
event: event
event: caught_up
data: {\"global_position\":4}
id: 5
event: event" -- sh -c "grep -v '^data: {\"content' '$work/sse.out' | grep -v '^\$'"
check "subscribe: the live event's data" 0 '^data: \{.*"global_position":5,.*"type":"Live"' -- \
  sh -c "grep '\"type\":\"Live\"' '$work/sse.out'"
check "subscribe after a Last-Event-ID" 0 '^id: 3$' -- \
  sh -c "curl -sN --max-time 2 -H 'Last-Event-ID: 2' '$base/v1/subscribe?stream=order-1' | grep -m1 '^id: '"
check "subscribe to a category from a position" 0 '^id: 5$' -- \
  sh -c "curl -sN --max-time 2 '$base/v1/subscribe?category=order&from=4' | grep -m1 '^id: '"
check "subscribe: a bad Last-Event-ID" 0 "^400 .*\"message\":\"Last-Event-ID: 'x' is not a global position\"" -- \
  http GET '/v1/subscribe?stream=order-1' -H 'Last-Event-ID: x'
check "subscribe: stream and category" 0 '^400 .*"message":"stream, category: give one, or neither for \$all"' -- \
  http GET '/v1/subscribe?stream=a&category=b'
"$cli" group create emails --category order >/dev/null || fail "group create"
check "consumer groups, as logbook group info --json prints them" 0 '^200 \{"groups":\[\{"acked":0,.*"group":"emails",.*"settings":\{[^}]*"strategy":"per-stream"\},"target":\{"category":"order"\}\}\]\}$' -- \
  http GET /v1/groups

# Lists: streams (deleted ones too) and categories, a page at a time. The
# log now: order-1 at 1, 2, 3 and 5, blob-1 at 4; then order-2 at 6,
# payment-1 at 7, and blob-1's deletion in \$audit at 8.
check "another order" 0 '^201 .*"last_position":6,.*"stream_id":"order-2"\}$' -- \
  http POST /v1/streams/order-2 "${json_body[@]}" -d '{"events":[{"type":"OrderPlaced"}]}'
check "a payment" 0 '^201 .*"last_position":7,.*"stream_id":"payment-1"\}$' -- \
  http POST /v1/streams/payment-1 "${json_body[@]}" -d '{"events":[{"type":"PaymentTaken"}]}'
"$cli" delete blob-1 >/dev/null || fail "delete blob-1"
check "list streams by prefix, a page of one" 0 '^200 \{"next_after":"order-1","streams":\[\{"created_at":"[^"]+","first_version":0,"head_hash":"[0-9a-f]{64}","last_position":5,"state":"active","stream_id":"order-1","version":3\}\]\}$' -- \
  http GET '/v1/streams?prefix=order-&limit=1'
check "list streams by prefix, after the first page: the last" 0 '^200 \{"streams":\[\{"created_at":"[^"]+","first_version":0,"head_hash":"[0-9a-f]{64}","last_position":6,"state":"active","stream_id":"order-2","version":0\}\]\}$' -- \
  http GET '/v1/streams?prefix=order-&after=order-1'
check "list streams: every one in id order, a deleted one with its state" 0 '^200 \{"streams":\[\{[^}]*"stream_id":"\$audit","version":0\},\{"created_at":"[^"]+","first_version":1,"head_hash":"[0-9a-f]{64}","last_position":4,"state":"soft_deleted","stream_id":"blob-1","version":0\},\{[^}]*"stream_id":"order-1"[^}]*\},\{[^}]*"stream_id":"order-2"[^}]*\},\{[^}]*"state":"active","stream_id":"payment-1","version":0\}\]\}$' -- \
  http GET /v1/streams
check "list categories, a page of two" 0 '^200 \{"categories":\["\$audit","blob"\],"next_after":"blob"\}$' -- \
  http GET '/v1/categories?limit=2'
check "list categories after the first page" 0 '^200 \{"categories":\["order","payment"\]\}$' -- \
  http GET '/v1/categories?after=blob'
check "list categories by prefix" 0 '^200 \{"categories":\["payment"\]\}$' -- \
  http GET '/v1/categories?prefix=pay'
check "list streams: a limit over 10,000" 0 '^400 \{"error":\{"code":"INVALID_ARGUMENT","message":"limit: 10001 is over the limit of 10000"\}\}$' -- \
  http GET '/v1/streams?limit=10001'
check "list categories: a limit over 10,000" 0 '^400 \{"error":\{"code":"INVALID_ARGUMENT","message":"limit: 10001 is over the limit of 10000"\}\}$' -- \
  http GET '/v1/categories?limit=10001'

# One consumer group, and its parked events (none here).
check "a consumer group" 0 '^200 \{"acked":0,"checkpoint_position":0,"created_at":"[^"]+","delivered":0,"group":"emails","head_position":8,"in_flight":0,"lag_events":5,"lag_seconds":[0-9.]+,"members":\[\],"oldest_parked_age_seconds":0\.0,"parked":0,"settings":\{"ack_timeout_ms":30000,"max_deliveries":10,"max_in_flight":100,"retry_backoff_max_ms":60000,"retry_backoff_ms":1000,"strategy":"per-stream"\},"target":\{"category":"order"\}\}$' -- \
  http GET /v1/groups/emails
check "no such group" 0 "^404 \\{\"error\":\\{\"code\":\"NOT_FOUND\",\"message\":\"consumer group 'nope' does not exist\"\\}\\}\$" -- \
  http GET /v1/groups/nope
check "parked events: none" 0 '^200 \{"parked":\[\]\}$' -- http GET /v1/groups/emails/parked
check "replay every parked event" 0 '^200 \{"replayed":0\}$' -- \
  http POST /v1/groups/emails/parked/replay "${json_body[@]}" -d '{"all":true}'
check "drop every parked event" 0 '^200 \{"dropped":0\}$' -- \
  http POST /v1/groups/emails/parked/drop "${json_body[@]}" -d '{"all":true}'
check "replay: a body naming neither ids nor all" 0 '^400 \{"error":\{"code":"INVALID_ARGUMENT","message":"body: give \\"delivery_ids\\": \[\.\.\.\] or \\"all\\": true"\}\}$' -- \
  http POST /v1/groups/emails/parked/replay "${json_body[@]}" -d '{}'
check "replay: all that is not true or false" 0 '^400 \{"error":\{"code":"INVALID_ARGUMENT","message":"all: not true or false"\}\}$' -- \
  http POST /v1/groups/emails/parked/replay "${json_body[@]}" -d '{"all":"yes"}'
check "drop: no ids" 0 '^400 \{"error":\{"code":"INVALID_ARGUMENT","message":"delivery_ids: not a non-empty array"\}\}$' -- \
  http POST /v1/groups/emails/parked/drop "${json_body[@]}" -d '{"delivery_ids":[]}'
check "replay an event that is not parked" 0 "^404 \\{\"error\":\\{\"code\":\"NOT_FOUND\",\"message\":\"delivery 1 is not parked in group 'emails'\"\\}\\}\$" -- \
  http POST /v1/groups/emails/parked/replay "${json_body[@]}" -d '{"delivery_ids":[1]}'
# Stopping logbookd ends the subscriptions it serves (their clients see the
# stream end) and does not wait for them.
curl -sN "$base/v1/subscribe" >"$work/open.out" &
open_sse=$!
sleep 0.5
stop_logbookd || fail "logbookd did not stop cleanly with a subscriber connected"
for _ in $(seq 50); do kill -0 "$open_sse" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$open_sse" 2>/dev/null || fail "the subscriber's stream did not end when logbookd stopped"
pass "stopping logbookd ends the subscriptions it serves"
grep -q '^event: caught_up$' "$work/open.out" || fail "the subscriber got no caught_up: $(cat "$work/open.out")"

# The gRPC API's authentication and scopes, through the same tokens.
# `auth token create` prints the token, then the tokens-file line.
"$cli" auth token create reader --roles reader >"$work/reader.made" 2>/dev/null || fail "token create"
"$cli" auth token create orders --roles writer,reader --scopes 'order-*' >"$work/orders.made" \
  2>/dev/null || fail "token create"
token_of() { sed -n 1p "$work/$1.made"; }
{ sed -n 2p "$work/reader.made"; sed -n 2p "$work/orders.made"; } >"$work/tokens"
start_logbookd "$dsn" "$work/server2.log" --http-listen 127.0.0.1:0 --auth-tokens "$work/tokens" ||
  fail "logbookd did not start with tokens"
port=$(grep -o 'HTTP API on http://127.0.0.1:[0-9]*' "$work/server2.log" | sed 's/.*://')
base="http://127.0.0.1:$port"
check "no token" 0 '^401 .*"code":"UNAUTHENTICATED"' -- http GET /v1/streams/order-1
check "no token to subscribe" 0 '^401 .*"code":"UNAUTHENTICATED"' -- http GET /v1/subscribe
check "a reader reads" 0 '^200 \{"events":' -- \
  http GET /v1/streams/order-1 -H "Authorization: Bearer $(token_of reader)"
check "a reader may not append" 0 '^403 .*"code":"PERMISSION_DENIED"' -- \
  http POST /v1/streams/order-1 "${json_body[@]}" -H "Authorization: Bearer $(token_of reader)" \
  -d '{"events":[{"type":"X"}]}'
check "a scope keeps a writer to its streams" 0 '^403 .*"code":"PERMISSION_DENIED"' -- \
  http POST /v1/streams/user-1 "${json_body[@]}" -H "Authorization: Bearer $(token_of orders)" \
  -d '{"events":[{"type":"X"}]}'
check "a writer within its scope" 0 '^201 ' -- \
  http POST /v1/streams/order-9 "${json_body[@]}" -H "Authorization: Bearer $(token_of orders)" \
  -d '{"events":[{"type":"X"}]}'
# What the lists show a token: a scope's streams and the categories it reaches.
check "a scoped token lists only its streams" 0 '^200 \{"streams":\[\{[^}]*"stream_id":"order-1"[^}]*\},\{[^}]*"stream_id":"order-2"[^}]*\},\{[^}]*"stream_id":"order-9"[^}]*\}\]\}$' -- \
  http GET /v1/streams -H "Authorization: Bearer $(token_of orders)"
check "a scoped token lists only its categories" 0 '^200 \{"categories":\["order"\]\}$' -- \
  http GET /v1/categories -H "Authorization: Bearer $(token_of orders)"
check "a reader lists every category" 0 '^200 \{"categories":\["\$audit","blob","order","payment"\]\}$' -- \
  http GET /v1/categories -H "Authorization: Bearer $(token_of reader)"
check "no token to list streams" 0 '^401 .*"code":"UNAUTHENTICATED"' -- http GET /v1/streams
check "parked events need an operator" 0 '^403 .*"code":"PERMISSION_DENIED","message":"ListParked needs the role operator' -- \
  http GET /v1/groups/emails/parked -H "Authorization: Bearer $(token_of reader)"
check "no token to verify as Server-Sent Events" 0 '^401 .*"code":"UNAUTHENTICATED"' -- \
  http GET /v1/streams/order-1/verify -H 'Accept: text/event-stream'
stop_logbookd || fail "logbookd did not stop cleanly"
# docs/openapi.yaml describes exactly the requests above (the console's
# files at / are not part of it).
check "docs/openapi.yaml lists what logbookd serves" 0 \
  '^GET /v1/all, GET /v1/categories, GET /v1/groups, GET /v1/groups/\{group\}, GET /v1/groups/\{group\}/parked, POST /v1/groups/\{group\}/parked/drop, POST /v1/groups/\{group\}/parked/replay, GET /v1/streams, GET /v1/streams/\{id\}, POST /v1/streams/\{id\}, GET /v1/streams/\{id\}/info, GET /v1/streams/\{id\}/verify, GET /v1/subscribe$' -- \
  /usr/bin/python3 -c 'import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
print(", ".join(f"{m.upper()} {p}" for p in sorted(doc["paths"]) for m in doc["paths"][p]
                if m in ("get", "post")))' "$(dirname "$0")/../../docs/openapi.yaml"
check "a bad --http-listen" 1 "cannot start: --http-listen: 'nowhere' is not HOST:PORT" -- \
  "$LOGBOOKD" --database "$dsn" --listen 127.0.0.1:0 --http-listen nowhere
finish
