# Shell helpers for the e2e scripts. Source it; sourcing only defines
# functions and zeroes the counters (no trap, no output), so
# clients/bench/run.sh (set -euo pipefail, a trap of its own) can use
# start_logbookd too.
#
# A test script:
#
#   set -uo pipefail
#   . "$(dirname "$0")/lib.sh"
#   begin_test                # $work, a fresh folder; cleanup at exit
#   on_exit stop_my_cluster   # more cleanup, if needed
#   check "read" 0 '^1  order-1@0' -- "$LOGBOOK_CLI" read order-1
#   [ "$n" = 3 ] || fail "got $n events, not 3"   # stops here
#   pass "three events"
#   finish                    # "N passed, M failed"; exit 1 if M > 0
#
# check counts a failure and goes on; fail stops the test (what follows
# would only fail because of it). Both print "FAIL: ..." with what was
# wanted and what came, then run the script's fail_context function if it
# defines one (to show a log, say). fail and finish exit the shell they run
# in: call them from the script's own shell, not from a subshell or a pipe.
#
# At exit (however the script ends) the cleanup kills this shell's
# background jobs that still run (SIGTERM, then waits for them), runs the
# on_exit commands (last registered first), and removes $work, or keeps
# it and says so when KEEP is set.
# Needs $LOGBOOKD for start_logbookd and LOGBOOK_TEST_PG_PORT (the
# pg_cluster fixture's env file) for create_database.

_lib_passed=0
_lib_failed=0
_lib_on_exit=()
_lib_server_logs=()

# begin_test: makes $work and installs the cleanup as the EXIT trap.
begin_test() {
  work=$(mktemp -d)
  trap _lib_cleanup EXIT
}

# on_exit COMMAND...: runs COMMAND at exit, after the background jobs were
# stopped and before $work is removed.
on_exit() {
  _lib_on_exit+=("$(printf '%q ' "$@")")
}

_lib_cleanup() {
  local pids i
  pids=$(jobs -pr)
  if [ -n "$pids" ]; then
    kill $pids 2>/dev/null
    wait $pids 2>/dev/null
  fi
  for ((i = ${#_lib_on_exit[@]} - 1; i >= 0; i--)); do
    eval "${_lib_on_exit[i]}"
  done
  # Every error clients got, for client_errors_test.
  local log
  for log in "${_lib_server_logs[@]}"; do
    if [ -n "${LOGBOOK_TEST_CLIENT_ERRORS:-}" ] && [ -f "$log" ]; then
      grep -F '] answering ' "$log" >>"$LOGBOOK_TEST_CLIENT_ERRORS" || true
    fi
  done
  if [ -n "${KEEP:-}" ]; then
    echo "kept $work"
  else
    rm -rf "$work"
  fi
}

# pass NAME: counts a step that passed.
pass() {
  _lib_passed=$((_lib_passed + 1))
  echo "ok: $1"
}

# fail MESSAGE: counts a failure, prints it, and ends the test with finish.
fail() {
  _lib_failed=$((_lib_failed + 1))
  echo "FAIL: $*"
  _lib_fail_context
  finish
}

_lib_fail_context() {
  if declare -F fail_context >/dev/null; then fail_context; fi
}

# check NAME EXPECTED_EXIT REGEX -- COMMAND...: runs COMMAND (a program or a
# shell function) and passes if it exits with EXPECTED_EXIT and REGEX (grep
# -E) matches its stdout followed by its stderr; otherwise counts a
# failure, prints both, and goes on.
check() {
  local name=$1 want_code=$2 want_out=$3
  if [ $# -lt 5 ] || [ "$4" != -- ]; then
    fail "check $name: usage: check NAME EXPECTED_EXIT REGEX -- COMMAND..."
  fi
  shift 4
  local out err code
  out=$("$@" 2>"$work/check.stderr")
  code=$?
  err=$(cat "$work/check.stderr")
  if [ "$code" != "$want_code" ] || ! grep -Eq -- "$want_out" <<<"$out$err"; then
    _lib_failed=$((_lib_failed + 1))
    echo "FAIL: $name: exit $code (want $want_code)"
    echo "  stdout: $out"
    echo "  stderr: $err"
    echo "  wanted: $want_out"
    _lib_fail_context
  else
    pass "$name"
  fi
}

# finish: prints "N passed, M failed" and exits 0 only if nothing failed
# and something passed (a test that checked nothing proves nothing).
finish() {
  echo "$_lib_passed passed, $_lib_failed failed"
  if [ "$_lib_passed" = 0 ] && [ "$_lib_failed" = 0 ]; then
    echo "FAIL: nothing was checked"
    exit 1
  fi
  [ "$_lib_failed" = 0 ] || exit 1
  exit 0
}

# create_database NAME: creates database NAME_<pid> in the pg_cluster
# fixture's cluster (LOGBOOK_TEST_PG_PORT) and prints its DSN.
create_database() {
  local db="$1_$$"
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin \
    -d postgres -c "CREATE DATABASE $db" >&2 || return 1
  echo "postgresql://logbook_admin@127.0.0.1:$LOGBOOK_TEST_PG_PORT/$db"
}

# start_logbookd DSN LOG_FILE [ARGS...]: starts logbookd on a port of its own
# choosing, waits for its start-up line, and sets server_pid and
# LOGBOOK_ADDRESS. Logs at debug level; the client errors in LOG_FILE are
# collected at exit (client_errors_test). Returns 1 (with the log on
# stderr) if it did not start.
start_logbookd() {
  _lib_start_logbookd 127.0.0.1:0 "$@"
}

# restart_logbookd DSN LOG_FILE [ARGS...]: stops the server start_logbookd
# started (as stop_logbookd does) and starts a new one on the same
# LOGBOOK_ADDRESS, logging to LOG_FILE; sets server_pid. Returns 1 (with the
# log on stderr) if it did not start.
restart_logbookd() {
  local code=0
  stop_logbookd || code=$?
  if [ "$code" != 0 ]; then
    echo "logbookd exited with $code on SIGTERM" >&2
    return 1
  fi
  _lib_start_logbookd "$LOGBOOK_ADDRESS" "$@"
}

# restart_script FILE DSN: writes FILE, a script a client's test suite runs
# to restart the logbookd start_logbookd started on DSN, on the same
# address: SIGTERM, then a new one, ready when it logs that it listens. The
# new one's output goes to files (node --test waits for its test files'
# output to close); it is stopped at exit.
restart_script() {
  local file=$1 dsn=$2
  echo "$server_pid" >"$work/logbookd.pid"
  on_exit _lib_kill_restarted
  cat >"$file" <<SH
#!/usr/bin/env bash
pid=\$(cat "$work/logbookd.pid")
kill -TERM "\$pid"
while kill -0 "\$pid" 2>/dev/null; do sleep 0.05; done
: >"$work/restarted.log"
"$LOGBOOKD" --listen "$LOGBOOK_ADDRESS" --database "$dsn" --log-level debug >/dev/null 2>>"$work/restarted.log" &
echo \$! >"$work/logbookd.pid"
for _ in \$(seq 200); do grep -q 'listening on' "$work/restarted.log" && exit 0; sleep 0.05; done
echo "logbookd did not start again" >&2; exit 1
SH
  chmod +x "$file"
}

_lib_kill_restarted() {
  [ -f "$work/logbookd.pid" ] && kill "$(cat "$work/logbookd.pid")" 2>/dev/null
  true
}

_lib_start_logbookd() {
  local listen=$1 dsn=$2 log=$3
  shift 3
  : >"$log"
  _lib_server_logs+=("$log")
  # Debug: the log has every error message clients got (collected at exit).
  "$LOGBOOKD" --listen "$listen" --database "$dsn" --log-level debug "$@" 2>>"$log" &
  server_pid=$!
  local line=""
  for _ in $(seq 200); do
    line=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | tail -n 1 || true)
    [ -n "$line" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$line" ]; then
    echo "logbookd did not start:" >&2
    cat "$log" >&2
    return 1
  fi
  export LOGBOOK_ADDRESS="127.0.0.1:${line##*:}"
}

# make_ca NAME: a self-signed CA in $work, NAME.key and NAME.pem.
make_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$1" -keyout "$work/$1.key" -out "$work/$1.pem" 2>/dev/null
}
# make_cert NAME CA [SAN]: a certificate $work/NAME.pem (key NAME.key)
# signed by CA; a server's with SAN (IP:127.0.0.1,DNS:localhost), else a
# client's.
make_cert() {
  local name=$1 ca=$2 san=${3:-}
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$work/$name.key" -out "$work/$name.csr" 2>/dev/null
  if [ -n "$san" ]; then
    printf 'subjectAltName=%s\n' "$san" >"$work/$name.ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >"$work/$name.ext"
  fi
  openssl x509 -req -in "$work/$name.csr" -CA "$work/$ca.pem" -CAkey "$work/$ca.key" \
    -CAcreateserial -days 2 -extfile "$work/$name.ext" -out "$work/$name.pem" 2>/dev/null
}

# stop_logbookd: SIGTERM to the server start_logbookd started, then waits;
# returns its exit code and clears server_pid.
stop_logbookd() {
  local code=0
  kill -TERM "$server_pid"
  wait "$server_pid" || code=$?
  server_pid=""
  return "$code"
}
