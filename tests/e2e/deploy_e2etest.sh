#!/usr/bin/env bash
# deploy/logbookd.service and deploy/logbookd.env.example: systemd accepts
# the unit, every key of the example is an environment variable logbookd
# reads, and logbookd started the way the unit starts it (its ExecStart
# arguments, no environment but the file's variables) serves appends and
# reads, then exits 0 on SIGTERM within the unit's TimeoutStopSec.
# Needs LOGBOOK_TEST_ENV (the pg_cluster fixture), LOGBOOKD, LOGBOOK_CLI and
# systemd-analyze (Debian's systemd package; deploy/install-deps.sh installs
# it): without it the test fails rather than skip what it cannot check.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
deploy="$(cd "$(dirname "$0")/../../deploy" && pwd)"
unit=$deploy/logbookd.service
example=$deploy/logbookd.env.example
begin_test
server_pid=""

# 1. systemd's own check, of a copy that points at this build (verify wants
#    ExecStart to exist). Unknown keys only print a warning: any output fails.
command -v systemd-analyze >/dev/null ||
  fail "systemd-analyze is not installed (deploy/install-deps.sh installs the systemd package)"
sed -e "s#^ExecStart=/usr/local/bin/logbookd#ExecStart=$LOGBOOKD#" \
    -e "s#^EnvironmentFile=.*#EnvironmentFile=$example#" "$unit" >"$work/logbookd.service"
out=$(systemd-analyze verify --man=no "$work/logbookd.service" 2>&1) ||
  fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
pass "systemd-analyze verify"

# cmake --install puts both programs where the unit expects them (bin/ of
# the prefix) and logbook's bash completion where bash-completion looks.
build=$(cd "$(dirname "$LOGBOOKD")/.." && pwd)
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" 2>&1 ||
  fail "cmake --install: $(tail -3 "$work/install.log")"
for f in bin/logbookd bin/logbook share/bash-completion/completions/logbook; do
  [ -s "$work/prefix/$f" ] || fail "cmake --install did not install $f"
done
help=$("$work/prefix/bin/logbookd" --help) && [[ "$help" == logbookd:* ]] ||
  fail "the installed logbookd does not run: $help"
offered=$(bash -c '. "$1"; COMP_WORDS=(logbook group cr); COMP_CWORD=2; _logbook_complete
  echo "${COMPREPLY[*]}"' _ "$work/prefix/share/bash-completion/completions/logbook")
[ "$offered" = create ] || fail "the installed completion offers '$offered' for 'logbook group cr'"
pass "cmake --install: bin/logbookd, bin/logbook and the bash completion"

# 2. Every key the example sets, or shows commented out, is one logbookd reads.
help=$("$LOGBOOKD" --help)
keys=$(sed -n 's/^#\{0,1\}\([A-Z][A-Z0-9_]*\)=.*/\1/p' "$example")
[ "$(echo $keys)" = "LOGBOOK_DATABASE_URL LOGBOOK_LISTEN LOGBOOK_TLS_CERT LOGBOOK_TLS_KEY LOGBOOK_TLS_CLIENT_CA LOGBOOK_AUTH_TOKENS LOGBOOK_AUTH_JWT_KEY LOGBOOK_AUTH_JWT_ISSUER LOGBOOK_AUTH_JWT_AUDIENCE LOGBOOK_METRICS_LISTEN LOGBOOK_HTTP_LISTEN LOGBOOK_LOG_FORMAT LOGBOOK_ADMIN_TOKEN" ] ||
  fail "keys of $example: $(echo $keys)"
for k in $keys; do
  grep -q "(Env:$k)" <<<"$help" || fail "$example sets $k, which logbookd --help does not list"
done
pass "the example's keys are logbookd's"

# 3. logbookd as the unit runs it, on this test's database and a free port.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
read -r -a args <<<"${exec_start#* }"  # The arguments after the binary.
[ "${args[*]}" = "--log-level info" ] || fail "ExecStart arguments: ${args[*]}"
dsn=$(create_database deploy) || fail "cannot create a database"
"$LOGBOOK_CLI" migrate up --database "$dsn" >/dev/null || fail "migrate up"
log=$work/logbookd.log
env -i PATH=/usr/bin:/bin LOGBOOK_DATABASE_URL="$dsn" LOGBOOK_LISTEN=127.0.0.1:0 \
  "$LOGBOOKD" "${args[@]}" 2>"$log" &
server_pid=$!
line=""
for _ in $(seq 200); do
  line=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | tail -n 1)
  [ -n "$line" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$line" ] || fail "logbookd did not start: $(cat "$log")"
export LOGBOOK_ADDRESS="127.0.0.1:${line##*:}"
"$LOGBOOK_CLI" append deploy-1 --type Installed --data '{"unit": "logbookd.service"}' \
  --expect none >/dev/null || fail "append"
out=$("$LOGBOOK_CLI" read deploy-1 --json) || fail "read"
grep -q '"stream_id":"deploy-1"' <<<"$out" && grep -q '"type":"Installed"' <<<"$out" ||
  fail "read returned: $out"
pass "serves appends and reads"

stop_seconds=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unit")
[ -n "$stop_seconds" ] || fail "TimeoutStopSec is not in seconds"
kill -TERM "$server_pid"
for _ in $(seq $((stop_seconds * 10))); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null && fail "logbookd still running ${stop_seconds} s after SIGTERM"
wait "$server_pid"
code=$?
server_pid=""
[ "$code" = 0 ] || fail "logbookd exited $code on SIGTERM: $(tail -n 3 "$log")"
pass "exits 0 on SIGTERM"
finish
