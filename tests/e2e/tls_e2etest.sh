#!/usr/bin/env bash
# TLS and mTLS between the `logbook` CLI (the C++ client library) and a real
# logbookd, with certificates made here by openssl: handshakes, a plaintext
# client against a TLS server, a client certificate of another CA, a
# renewed server certificate picked up without a restart, and the refusal
# to serve plaintext off loopback; and logbook-bench over TLS. Needs
# LOGBOOK_TEST_ENV, LOGBOOKD, LOGBOOK_CLI and LOGBOOK_BENCH.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
cli=$LOGBOOK_CLI
dsn=$(create_database tls) || fail "cannot create a database"
"$cli" migrate up --database "$dsn" >/dev/null || fail "cannot migrate"

make_ca ca1 && make_ca ca2 || fail "openssl cannot make CAs"
make_cert server1 ca1 "IP:127.0.0.1,DNS:localhost" && make_cert server2 ca2 "IP:127.0.0.1,DNS:localhost" &&
  make_cert client1 ca1 && make_cert client2 ca2 || fail "openssl cannot make certificates"

# Plaintext only on loopback, unless --insecure-listen.
check "plaintext refused off loopback" 1 \
  "refusing to serve plaintext on 0.0.0.0:0, which is not a loopback address: give --tls-cert and --tls-key, or --insecure-listen" -- \
  "$LOGBOOKD" --listen 0.0.0.0:0 --database "$dsn"
check "a key that is not the certificate's" 1 "--tls-key: '.*client1.key' is not the key of --tls-cert" -- \
  "$LOGBOOKD" --listen 127.0.0.1:0 --database "$dsn" --tls-cert "$work/server1.pem" --tls-key "$work/client1.key"
check "a certificate without a key" 1 "--tls-cert needs --tls-key" -- \
  "$LOGBOOKD" --listen 127.0.0.1:0 --database "$dsn" --tls-cert "$work/server1.pem"

# TLS: the server's certificate is served from files it watches.
cp "$work/server1.pem" "$work/served.pem"
cp "$work/server1.key" "$work/served.key"
start_logbookd "$dsn" "$work/server.log" --tls-cert "$work/served.pem" --tls-key "$work/served.key" ||
  fail "logbookd did not start with TLS"
export LOGBOOK_ADDRESS
check "append over TLS" 0 '^appended OrderPlaced to order-1 at version 0' -- \
  "$cli" --tls-ca "$work/ca1.pem" append order-1 --type OrderPlaced --data '{"total": 5}'
check "read over TLS, CA from the environment" 0 'order-1@0' -- \
  env LOGBOOK_TLS_CA="$work/ca1.pem" "$cli" read order-1
check "plaintext client against a TLS server" 6 'UNAVAILABLE|unavailable|failed to connect' -- \
  "$cli" --timeout 3 read order-1
check "a client trusting another CA" 6 'UNAVAILABLE|unavailable|failed to connect' -- \
  "$cli" --timeout 3 --tls-ca "$work/ca2.pem" read order-1
check "logbook-bench over TLS: a catch-up of 300 events" 0 '"exact": ?true' -- \
  "$LOGBOOK_BENCH" --tls-ca "$work/ca1.pem" catch-up --events 300 --fill-batch 100
check "an unreadable CA file" 5 "TLS CA: cannot read '.*nope.pem'" -- \
  "$cli" --tls-ca "$work/nope.pem" read order-1
check "a client certificate without its key" 5 'a client certificate and its key go together' -- \
  "$cli" --tls-ca "$work/ca1.pem" --tls-cert "$work/client1.pem" read order-1

# A renewed certificate (here: of another CA) is served without a restart,
# and a SIGHUP does not end the server.
kill -HUP "$server_pid"
cp "$work/server2.key" "$work/served.key.new" && cp "$work/server2.pem" "$work/served.pem.new" &&
  mv "$work/served.key.new" "$work/served.key" && mv "$work/served.pem.new" "$work/served.pem"
renewed=false
for _ in $(seq 100); do
  if "$cli" --timeout 2 --tls-ca "$work/ca2.pem" read order-1 >/dev/null 2>&1; then renewed=true; break; fi
  sleep 0.1
done
[ "$renewed" = true ] && pass "the renewed certificate is served" || fail "the renewed certificate was not served"
check "the old CA no longer matches" 6 'UNAVAILABLE|unavailable|failed to connect' -- \
  "$cli" --timeout 3 --tls-ca "$work/ca1.pem" read order-1
check "SIGHUP is logged, the server lives" 0 'SIGHUP: the TLS files are read again' -- grep SIGHUP "$work/server.log"
stop_logbookd || fail "logbookd did not stop cleanly"

# mTLS: client certificates signed by ca1 only.
start_logbookd "$dsn" "$work/server-mtls.log" --tls-cert "$work/server1.pem" \
  --tls-key "$work/server1.key" --tls-client-ca "$work/ca1.pem" || fail "logbookd did not start with mTLS"
check "mTLS with a certificate of the client CA" 0 'order-1@0' -- \
  "$cli" --tls-ca "$work/ca1.pem" --tls-cert "$work/client1.pem" --tls-key "$work/client1.key" read order-1
check "mTLS from the environment" 0 'order-1@0' -- \
  env LOGBOOK_TLS_CA="$work/ca1.pem" LOGBOOK_TLS_CERT="$work/client1.pem" LOGBOOK_TLS_KEY="$work/client1.key" \
  "$cli" read order-1
check "mTLS without a client certificate" 6 'UNAVAILABLE|unavailable|failed to connect' -- \
  "$cli" --timeout 3 --tls-ca "$work/ca1.pem" read order-1
check "mTLS with a certificate of another CA" 6 'UNAVAILABLE|unavailable|failed to connect' -- \
  "$cli" --timeout 3 --tls-ca "$work/ca1.pem" --tls-cert "$work/client2.pem" --tls-key "$work/client2.key" read order-1
stop_logbookd || fail "logbookd did not stop cleanly"

# Off loopback, callers must authenticate: no anonymous service there.
check "anonymous callers refused off loopback" 1 \
  "refusing to serve anonymous callers on 0.0.0.0:0, which is not a loopback address: give --auth-tokens FILE or --auth-jwt-key FILE, or --insecure-listen" -- \
  "$LOGBOOKD" --listen 0.0.0.0:0 --database "$dsn" --tls-cert "$work/server1.pem" --tls-key "$work/server1.key"

# mTLS principals: client1's certificate (CN client1) is a reader; a token
# sent beside it speaks for itself.
made=$("$cli" auth token create deployer --roles writer 2>/dev/null) || fail "auth token create"
writer_token=$(sed -n 1p <<<"$made")
{
  echo "cert:client1 reader-bot reader - *"
  sed -n 2p <<<"$made"
} >"$work/auth-tokens"
start_logbookd "$dsn" "$work/server-principals.log" --tls-cert "$work/server1.pem" \
  --tls-key "$work/server1.key" --tls-client-ca "$work/ca1.pem" --auth-tokens "$work/auth-tokens" ||
  fail "logbookd did not start with mTLS and --auth-tokens"
mtls=(--tls-ca "$work/ca1.pem" --tls-cert "$work/client1.pem" --tls-key "$work/client1.key")
check "the certificate's principal reads" 0 'order-1@0' -- "$cli" "${mtls[@]}" read order-1
check "the certificate's principal may not append" 9 'Append needs the role writer; reader-bot has reader' -- \
  "$cli" "${mtls[@]}" append order-1 --type OrderPaid --data '{}'
check "a token beside the certificate" 0 '^appended OrderPaid to order-1' -- \
  "$cli" "${mtls[@]}" --token "$writer_token" append order-1 --type OrderPaid --data '{}'
stop_logbookd || fail "logbookd did not stop cleanly"
finish
