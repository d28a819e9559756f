#!/usr/bin/env bash
# The Python client (clients/python, issue 22): installed with pip, offline,
# into a virtualenv that sees the system's grpcio and protobuf (Debian's
# python3-grpcio and python3-protobuf), its stubs made from proto/ by the
# install; then its pytest suite against a real logbookd, which the suite
# restarts once on the same port (LOGBOOK_RESTART) to prove subscriptions
# resume. Needs LOGBOOK_TEST_ENV (the pg_cluster fixture), LOGBOOKD and
# LOGBOOK_CLI.
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
root=$(cd "$(dirname "$0")/../.." && pwd)

# Debian's Python, whose site-packages hold python3-grpcio and
# python3-protobuf (another python3 may come first on the PATH).
/usr/bin/python3 -m venv --system-site-packages "$work/venv" || fail "python3 -m venv"
# No index: everything it needs is installed already, or it fails here.
"$work/venv/bin/pip" install --no-index --no-build-isolation --quiet "$root/clients/python" \
  >"$work/pip.log" 2>&1 || fail "pip install clients/python: $(tail -5 "$work/pip.log")"
pass "pip install clients/python, offline"
for f in logbook/py.typed logbook/v1/event_store_pb2.py logbook/v1/event_store_pb2_grpc.py; do
  find "$work/venv/lib" -path "*/site-packages/$f" | grep -q . || fail "the package lacks $f"
done
pass "the package has its stubs, made from proto/ at install, and py.typed"

dsn=$(create_database python) || fail "cannot create a database"
"$LOGBOOK_CLI" migrate up --database "$dsn" >/dev/null || fail "cannot migrate"
start_logbookd "$dsn" "$work/server.log" || fail "logbookd did not start"
restart_script "$work/restart.sh" "$dsn"

# From the tests' folder, so that the installed package is the one imported.
(cd "$root/clients/python/tests" && LOGBOOK_RESTART="$work/restart.sh" \
  "$work/venv/bin/python" -m pytest -q -p no:cacheprovider . >"$work/pytest.log" 2>&1)
code=$?
cat "$work/pytest.log"
[ "$code" = 0 ] || fail "pytest failed (exit $code)"
grep -Eq '^[0-9]+ passed' "$work/pytest.log" || fail "pytest ran no tests"
pass "the Python client's tests pass against logbookd"

# The README's complete program, as it is.
out=$(cd "$work" && timeout 30 "$work/venv/bin/python" "$root/clients/python/examples/quickstart.py" \
  "$LOGBOOK_ADDRESS" 2>&1) || fail "examples/quickstart.py: $out"
want='^appended order-[0-9]+@0 at position [0-9]+
read 0 OrderPlaced \{.total.: 30\}
read 1 OrderPaid \{.amount.: 30\}
got [0-9]+ OrderPlaced
got [0-9]+ OrderPaid$'
[[ "$out" =~ $want ]] || fail "examples/quickstart.py printed: $out"
# The README shows it without its first line (the docstring).
sed -n '/^```python$/,/^```$/p' "$root/clients/python/README.md" | sed '1d;$d' >"$work/readme.py"
tail -n +2 "$root/clients/python/examples/quickstart.py" | diff "$work/readme.py" - >"$work/readme.diff"
[ ! -s "$work/readme.diff" ] || fail "the README's program is not examples/quickstart.py: $(cat "$work/readme.diff")"
pass "the README's program (examples/quickstart.py) appends, reads and subscribes"
finish
