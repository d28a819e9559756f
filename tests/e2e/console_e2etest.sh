#!/usr/bin/env bash
# The web console (service/console/, docs/console.md) as logbookd embeds
# and serves it on its HTTP port, driven in headless Chromium by
# tests/browser/console.test.mjs (puppeteer-core, installed here with npm
# ci): token login, streams and categories by prefix, a stream's events and
# head hash, following a category and $all live, verification before and
# after tampering in PostgreSQL, and a consumer group's parked event
# replayed with its button, and refused to a reader. Screenshots of every
# page go to $LOGBOOK_ARTIFACTS/console/ (default: the build directory's
# artifacts/console/, LOGBOOK_BUILD_DIR or build/). Needs LOGBOOK_TEST_ENV
# (the pg_cluster fixture), LOGBOOKD, LOGBOOK_CLI, node and npm, and
# Chromium (CHROMIUM, default /usr/bin/chromium).
set -uo pipefail

. "$LOGBOOK_TEST_ENV"
. "$(dirname "$0")/lib.sh"
begin_test
cli=$LOGBOOK_CLI
root=$(cd "$(dirname "$0")/../.." && pwd)
browser_dir=$root/tests/browser
artifacts=${LOGBOOK_ARTIFACTS:-${LOGBOOK_BUILD_DIR:-$root/build}/artifacts}/console
fail_context() { echo "--- server log (tail):"; tail -n 20 "$work/server.log" 2>/dev/null; }

chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || fail "no Chromium at $chromium (apt-get install chromium)"
command -v node >/dev/null || fail "no node (apt-get install nodejs npm)"
command -v npm >/dev/null || fail "no npm (apt-get install npm)"
# The lock file pins puppeteer-core; it downloads no browser.
(cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error) >"$work/npm.log" 2>&1 ||
  fail "npm ci in tests/browser failed: $(tail -n 20 "$work/npm.log")"
pass "npm ci in tests/browser"

rm -rf "$artifacts"
mkdir -p "$artifacts" || fail "cannot make $artifacts"
echo "screenshots go to $artifacts"

dsn=$(create_database console) || fail "cannot create a database"
"$cli" migrate up --database "$dsn" >/dev/null || fail "cannot migrate"
# An operator (who also appends and consumes, for the test's own CLI calls)
# and a reader. `auth token create` prints the token, then the file's line.
"$cli" auth token create ops --roles reader,writer,consumer,operator >"$work/ops.made" 2>/dev/null ||
  fail "token create"
"$cli" auth token create viewer --roles reader >"$work/viewer.made" 2>/dev/null || fail "token create"
{ sed -n 2p "$work/ops.made"; sed -n 2p "$work/viewer.made"; } >"$work/tokens"
# No --console-dir: the files logbookd embedded at build time are tested.
start_logbookd "$dsn" "$work/server.log" --http-listen 127.0.0.1:0 --auth-tokens "$work/tokens" ||
  fail "logbookd did not start"
port=$(grep -o 'HTTP API on http://127.0.0.1:[0-9]*' "$work/server.log" | sed 's/.*://')
[ -n "$port" ] || fail "logbookd did not say where its HTTP API is: $(cat "$work/server.log")"
pass "logbookd serves HTTP on 127.0.0.1:$port"

# The browser test prints "ok: STEP" per step (each counted here) and
# stops at the first "FAIL: ...".
LOGBOOK_OPERATOR_TOKEN=$(sed -n 1p "$work/ops.made")
LOGBOOK_READER_TOKEN=$(sed -n 1p "$work/viewer.made")
export LOGBOOK_CONSOLE_URL="http://127.0.0.1:$port" LOGBOOK_CONSOLE_FILES="$root/service/console"
export LOGBOOK_CLI="$cli" LOGBOOK_OPERATOR_TOKEN LOGBOOK_READER_TOKEN CHROMIUM="$chromium"
export LOGBOOK_TAMPER_DSN="$dsn" LOGBOOK_SCREENSHOTS="$artifacts"
steps=0
code=none
while IFS= read -r line; do
  case "$line" in
    "ok: "*) pass "${line#ok: }"; steps=$((steps + 1)) ;;
    "node exited "*) code=${line#node exited } ;;
    *) echo "$line" ;;
  esac
# Chromium's own temporary files stay in $work.
done < <(TMPDIR=$work timeout 300 node "$browser_dir/console.test.mjs" 2>&1; echo "node exited $?")
[ "$code" = 0 ] || fail "the browser test exited with $code (screenshots in $artifacts)"
[ "$steps" = 16 ] || fail "the browser test passed $steps steps, not 16"
for shot in login overview streams categories stream live-category live-all verify-ok verify-broken \
  group-parked group-replayed forbidden; do
  [ -s "$artifacts/$shot.png" ] || fail "no screenshot $artifacts/$shot.png"
done
pass "12 screenshots in $artifacts"

stop_logbookd || fail "logbookd did not stop cleanly"
finish
