#!/usr/bin/env bash
# The C++ client's complete program (clients/examples/quickstart.cc, shown
# in clients/examples/README.md): it appends, reads and subscribes against a
# real logbookd, and the README shows exactly that file. Needs
# LOGBOOK_TEST_ENV, LOGBOOKD, LOGBOOK_CLI and QUICKSTART (the built program).
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
root=$(cd "$(dirname "$0")/../.." && pwd)
dsn=$(create_database quickstart) || fail "cannot create a database"
"$LOGBOOK_CLI" migrate up --database "$dsn" >/dev/null || fail "cannot migrate"
start_logbookd "$dsn" "$work/server.log" || fail "logbookd did not start"

out=$(timeout 30 "$QUICKSTART" "$LOGBOOK_ADDRESS" 2>&1) || fail "quickstart: $out"
want='^appended order-[0-9]+@0 at position 1
read 0 OrderPlaced \{"total": 30\}
read 1 OrderPaid \{"amount": 30\}
got 1 OrderPlaced
got 2 OrderPaid$'
[[ "$out" =~ $want ]] || fail "quickstart printed: $out"
pass "the program appends, reads and subscribes"

# The README shows it without its first line (the comment saying how to run it).
sed -n '/^```cpp$/,/^```$/p' "$root/clients/examples/README.md" | sed '1d;$d' >"$work/readme.cc"
tail -n +2 "$root/clients/examples/quickstart.cc" | diff "$work/readme.cc" - >"$work/readme.diff"
[ ! -s "$work/readme.diff" ] || fail "the README's program is not quickstart.cc: $(cat "$work/readme.diff")"
[ "$(wc -l <"$work/readme.cc")" -lt 30 ] || fail "the README's program has 30 lines or more"
pass "clients/examples/README.md shows quickstart.cc, in under 30 lines"
finish
