#!/usr/bin/env bash
# Runs every logbook-bench scenario against a fresh PostgreSQL and logbookd,
# and the matching raw-PostgreSQL baseline with pgbench on the same database
# in the same run; prints one table and writes a JSON file.
#
#   clients/bench/run.sh [--quick] [--json FILE]
#
# --quick runs each scenario for 3 s instead of 15 s (a smoke test of the
# tool; its numbers mean little). Needs a build (deploy/build.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
seconds=15
json_out="$root/build/bench-results.json"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) seconds=3 ;;
    --json) json_out=$2; shift ;;
    *) echo "usage: clients/bench/run.sh [--quick] [--json FILE]" >&2; exit 2 ;;
  esac
  shift
done
bench=build/clients/bench/logbook-bench
export LOGBOOKD=build/service/logbookd
[ -x "$bench" ] && [ -x "$LOGBOOKD" ] || { echo "build first: deploy/build.sh" >&2; exit 1; }

work=$(mktemp -d)
env_file="$work/pg.env"
server_pid=""
cleanup() {
  set +e  # Clean up everything, whatever fails.
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  tests/pg_cluster.sh stop "$env_file"
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> starting PostgreSQL (fsync and synchronous_commit on) and logbookd"
tests/pg_cluster.sh start "$env_file" >/dev/null
. "$env_file"
dsn="postgresql://logbook_admin@127.0.0.1:$LOGBOOK_TEST_PG_PORT/postgres"
build/clients/logbook migrate up --database "$dsn" >/dev/null
. tests/e2e/lib.sh
start_logbookd "$dsn" "$work/server.log" --workers 72
psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin -d postgres)
pgbench=(pgbench -n -j 2 -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin)

# CPU seconds logbookd has used so far.
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$server_pid/stat"
}
results="$work/results"
: >"$results"
# scenario NAME ARGS...: runs logbook-bench, appends its JSON plus server CPU.
scenario() {
  local name=$1
  shift
  echo "==> $name ($*)"
  local before
  before=$(server_cpu)
  "$bench" --address "$LOGBOOK_ADDRESS" --json "$work/$name.json" "$@" >/dev/null
  echo "$name $(server_cpu) $before" >>"$work/cpu"
  echo "$name" >>"$results"
}
# baseline NAME EVENTS_PER_TRANSACTION CLIENTS SQL: pgbench events/s.
baseline() {
  local name=$1 per_tx=$2 clients=$3 sql=$4
  echo "$sql" >"$work/$name.sql"
  echo "==> baseline $name (pgbench, $clients clients)"
  local tps
  tps=$("${pgbench[@]}" -c "$clients" -T "$seconds" -f "$work/$name.sql" postgres 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  echo "$name $(awk -v t="$tps" -v n="$per_tx" 'BEGIN { printf "%.0f", t * n }')" >>"$work/baselines"
}

"${psql[@]}" -c "CREATE TABLE raw_events (LIKE logbook.event_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)" \
  -c "CREATE SEQUENCE raw_position" -c "ALTER TABLE raw_events ALTER global_position SET DEFAULT nextval('raw_position')"
row="('raw-' || :client_id, nextval('raw_position'), gen_random_uuid(), 'Tick', convert_to('{\"pad\":\"' || repeat('x', 150) || '\"}', 'UTF8'), '', 'application/json', now())"
cols="(stream_id, stream_version, event_id, event_type, data, metadata, content_type, recorded_at)"

scenario append-single append --clients 64 --seconds "$seconds"
baseline append-single 1 64 "INSERT INTO raw_events $cols VALUES $row;"
scenario append-batch append --clients 8 --batch 100 --seconds "$seconds"
baseline append-batch 100 8 "INSERT INTO raw_events $cols SELECT 'raw-' || :client_id, nextval('raw_position'), gen_random_uuid(), 'Tick', convert_to('{\"pad\":\"' || repeat('x', 150) || '\"}', 'UTF8'), '', 'application/json', now() FROM generate_series(1, 100);"
scenario append-contended append --clients 64 --streams 4 --seconds "$seconds"
scenario catch-up catch-up
last=$("${psql[@]}" -Atc "SELECT max(global_position) FROM logbook.event_log")
baseline catch-up 1000 1 "\\set p random(0, $last) 
SELECT * FROM logbook.event_log WHERE global_position > :p ORDER BY global_position LIMIT 1000;"
scenario live-latency live-latency --seconds "$seconds" --warmup 1
peak_rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status")

# One table and one JSON document.
{
  echo "{\"peak_rss_mib\": $((peak_rss_kib / 1024)), \"seconds_per_scenario\": $seconds, \"scenarios\": ["
  first=1
  while read -r name; do
    base=$(awk -v n="$name" '$1 == n { print $2 }' "$work/baselines" 2>/dev/null || true)
    cpu=$(awk -v n="$name" '$1 == n { printf "%.1f", $2 - $3 }' "$work/cpu")
    [ $first = 1 ] || echo ","
    first=0
    sed '$ s/}$//' "$work/$name.json"
    echo ", \"server_cpu_s\": $cpu, \"baseline_events_per_s\": ${base:-null}}"
  done <"$results"
  echo "]}"
} >"$json_out"

python3 - "$json_out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print()
print(f"{'scenario':<18}{'events/s':>11}{'baseline':>11}{'ratio':>7}{'p50 ms':>9}{'p99 ms':>9}{'cpu s':>7}  other")
for s in d["scenarios"]:
    rate = s.get("events_per_s", s.get("appends_per_s", 0))
    base = s.get("baseline_events_per_s")
    ratio = f"{rate / base:.2f}" if base else "-"
    p50 = s.get("append_p50_ms", s.get("latency_p50_ms", 0))
    p99 = s.get("append_p99_ms", s.get("latency_p99_ms", 0))
    other = ""
    if "conflict_rate" in s and s["scenario"] == "append-contended":
        other = f"conflict rate {s['conflict_rate']:.2f}"
    if s["scenario"] == "live-latency":
        other = f"delivery latency; {s['subscribers']} subscribers"
    if s["scenario"] == "catch-up":
        p50 = p99 = 0
        other = f"{s['events']} events"
    print(f"{s['scenario']:<18}{rate:>11.0f}{(base or 0):>11.0f}{ratio:>7}{p50:>9.2f}{p99:>9.2f}{s['server_cpu_s']:>7}  {other}")
print(f"\nlogbookd peak RSS: {d['peak_rss_mib']} MiB; {d['seconds_per_scenario']} s per scenario")
PY
echo "JSON: $json_out"
