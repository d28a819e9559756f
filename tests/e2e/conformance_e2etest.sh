#!/usr/bin/env bash
# The clients' shared conformance scenario (issue 22, tests/conformance/README.md):
# every client's driver runs tests/conformance/scenario.json against a
# logbookd of its own on a fresh database, which this script restarts on the
# same address when the driver asks (the README's restart protocol); the
# driver's lines, put in canonical JSON, must equal
# tests/conformance/expected.jsonl line for line. The drivers: C++
# (CONFORMANCE_CPP_DRIVER, the conformance_cpp_driver target), Python (the
# logbook package, installed as python_client_e2etest.sh installs it) and,
# when clients/node is in the tree, TypeScript (tests/conformance/node_driver.mjs,
# run by node on the client that this script builds in clients/node).
# Needs LOGBOOK_TEST_ENV (the pg_cluster fixture), LOGBOOKD, LOGBOOK_CLI and
# CONFORMANCE_CPP_DRIVER.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
root=$(cd "$(dirname "$0")/../.." && pwd)
conformance=$root/tests/conformance

# How long a driver may take to reach the restart, and then to finish.
driver_seconds=90

# The driver whose run is being looked at, for fail_context.
current=""
fail_context() {
  [ -n "$current" ] || return 0
  echo "--- $current driver's stderr:"
  cat "$work/$current.err" 2>/dev/null
  echo "--- logbookd's log, last lines (before and after the restart):"
  tail -n 20 "$work/$current.server.log" "$work/$current.server2.log" 2>/dev/null
}

# run_driver NAME COMMAND...: runs `COMMAND SCENARIO ADDRESS PREFIX` against
# a new logbookd on a fresh database, restarts logbookd when the driver
# prints its "await": "restart" line, then writes "restarted" to its stdin.
# Leaves its lines, in canonical JSON, in $work/NAME.out and sets
# `problem` to what went wrong, if anything, besides what the lines say.
run_driver() {
  local name=$1
  shift
  problem=""
  current=$name
  local dsn
  dsn=$(create_database "conformance_$name") || { problem="cannot create a database"; return; }
  "$LOGBOOK_CLI" migrate up --database "$dsn" >/dev/null || { problem="cannot migrate"; return; }
  start_logbookd "$dsn" "$work/$name.server.log" || { problem="logbookd did not start"; return; }

  # The driver's stdin is a FIFO this shell holds open for writing, so the
  # driver blocks on it until told, and sees its end if this shell goes.
  mkfifo "$work/$name.stdin"
  (cd "$work" && exec "$@" "$conformance/scenario.json" "$LOGBOOK_ADDRESS" "t$$$name") \
    <"$work/$name.stdin" >"$work/$name.raw" 2>"$work/$name.err" &
  local driver=$! to_driver
  exec {to_driver}>"$work/$name.stdin"

  local ticks=$((driver_seconds * 20)) awaited=""
  for ((i = 0; i < ticks; i++)); do
    if grep -Eq '"await"[[:space:]]*:[[:space:]]*"restart"' "$work/$name.raw"; then
      awaited=yes
      break
    fi
    kill -0 "$driver" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$awaited" ]; then
    problem="the driver did not ask for the restart"
  elif ! restart_logbookd "$dsn" "$work/$name.server2.log" 2>>"$work/$name.err"; then
    problem="logbookd did not start again on $LOGBOOK_ADDRESS"
  else
    # In a subshell: a driver that is gone makes the write fail, not this shell.
    (echo restarted >&"$to_driver") 2>/dev/null
  fi
  exec {to_driver}>&-

  for ((i = 0; i < ticks; i++)); do
    kill -0 "$driver" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver"
    problem="${problem:-the driver did not finish within ${driver_seconds} s}"
  fi
  local code=0
  wait "$driver" || code=$?
  [ "$code" = 0 ] || problem="${problem:-the driver exited with $code}"
  [ -n "$server_pid" ] && stop_logbookd
  canonical <"$work/$name.raw" >"$work/$name.out" 2>>"$work/$name.err" ||
    problem="${problem:-the driver printed a line that is not JSON}"
}

# canonical: each line of stdin, a JSON value, printed with its keys sorted
# and no spaces (non-ASCII as \u escapes); fails on a line that is not JSON.
canonical() {
  /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    print(json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")))'
}

# say_problem: fails (printing it) when run_driver found a problem.
say_problem() {
  [ -z "$problem" ] || { echo "$problem"; return 1; }
}

# conforms NAME COMMAND...: runs the driver and checks it ran and printed
# exactly expected.jsonl.
conforms() {
  local name=$1
  run_driver "$@"
  check "$name: the driver ran the scenario, logbookd restarted in its middle" 0 '' -- say_problem
  check "$name: its lines are expected.jsonl" 0 '' -- \
    diff -u --label expected.jsonl --label "$name" "$conformance/expected.jsonl" "$work/$name.out"
  current=""
}

[ "$(canonical <"$conformance/expected.jsonl")" = "$(cat "$conformance/expected.jsonl")" ] ||
  fail "expected.jsonl is not in canonical form (README.md, \"A driver\")"

# C++.
[ -x "${CONFORMANCE_CPP_DRIVER:-}" ] ||
  fail "CONFORMANCE_CPP_DRIVER (the conformance_cpp_driver target) is not an executable"
conforms cpp "$CONFORMANCE_CPP_DRIVER"

# Python: the package as python_client_e2etest.sh installs it, offline, into
# a virtualenv that sees Debian's python3-grpcio and python3-protobuf.
/usr/bin/python3 -m venv --system-site-packages "$work/venv" || fail "python3 -m venv"
"$work/venv/bin/pip" install --no-index --no-build-isolation --quiet "$root/clients/python" \
  >"$work/pip.log" 2>&1 || fail "pip install clients/python: $(tail -5 "$work/pip.log")"
conforms python "$work/venv/bin/python" "$conformance/python_driver.py"

# TypeScript, once clients/node is in the tree: its driver must be there
# too and conform. The client is built as node_client_e2etest.sh builds it
# (npm ci from the npm registry, then tsc: clients/node/dist), and the
# driver, plain JavaScript, imports that build and runs on node itself.
if [ -d "$root/clients/node" ]; then
  [ -f "$conformance/node_driver.mjs" ] ||
    fail "clients/node is in the tree but its driver, tests/conformance/node_driver.mjs, is not"
  command -v node >/dev/null && command -v npm >/dev/null ||
    fail "clients/node is in the tree but node and npm are not (deploy/install-deps.sh)"
  (cd "$root/clients/node" && npm ci --no-audit --no-fund --silent && npm run --silent build) \
    >"$work/node-build.log" 2>&1 ||
    fail "cannot build clients/node (npm ci, npm run build): $(tail -n 30 "$work/node-build.log")"
  conforms node node "$conformance/node_driver.mjs"
else
  echo "note: no clients/node in this tree, so no TypeScript driver to run"
fi
finish
