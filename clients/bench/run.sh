#!/usr/bin/env bash
# Runs every logbook-bench scenario of issue 5 against a fresh PostgreSQL and
# logbookd, each beside its raw-PostgreSQL baseline (pgbench on the same
# database, in the same run); prints one table and writes a JSON file with
# events/s, p50/p99 latency, the ratio to the baseline, logbookd's CPU
# seconds and peak RSS per scenario, and the CPU each side spent per event
# (PostgreSQL, logbookd and logbook-bench; PostgreSQL and pgbench).
#
#   clients/bench/run.sh [--quick] [--security] [--replicas] [--json FILE] [--build DIR]
#
# Default: 15 s per timed scenario and a catch-up of 1,000,000 events (about
# 4 minutes), then the consumer-group scenarios (4 consumers on $all acking
# each event, max_in_flight 1,000 each: a fresh backlog over 1,000 streams,
# 1,000,000 events, once with ROUND_ROBIN and once with PER_STREAM, each
# then live at 1,000 appends/s for 5 s), beside the plain catch-up of the
# same run; and the same catch-up through the Python and TypeScript
# clients (the TypeScript one is installed with npm ci). --quick: 3 s,
# 200,000 events and backlogs of 1,000 (about a minute; a smoke test of the
# tool, its numbers mean little). --security: then what TLS and token
# authentication cost: append-batch and catch-up against a logbookd without
# either and against one with both (TLS 1.3 with a P-256 certificate, a
# tokens-file token on every call), in the order off, on, on, off, reported
# as the ratio of the means on to off (issue 19: at least 0.9). --build: the build folder holding
# logbookd, logbook and logbook-bench (default build/, or $LOGBOOK_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
seconds=15
catch_up_events=1000000
group_events_round_robin=1000000
group_events_per_stream=1000000
quick=false
security=false
replicas=false
build=${LOGBOOK_BUILD_DIR:-build}
json_out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) seconds=3; catch_up_events=200000; group_events_round_robin=1000; group_events_per_stream=1000; quick=true ;;
    --security) security=true ;;
    --replicas) replicas=true ;;
    --json) json_out=$2; shift ;;
    --build) build=$2; shift ;;
    *) echo "usage: clients/bench/run.sh [--quick] [--security] [--replicas] [--json FILE] [--build DIR]" >&2; exit 2 ;;
  esac
  shift
done
json_out=${json_out:-$build/bench-results.json}
bench=$build/clients/bench/logbook-bench
export LOGBOOKD=$build/service/logbookd
[ -x "$bench" ] && [ -x "$LOGBOOKD" ] && [ -x "$build/clients/logbook" ] ||
  { echo "build first (deploy/build.sh, or pass --build DIR)" >&2; exit 1; }
started=$(date +%s)

work=$(mktemp -d)
env_file="$work/pg.env"
server_pid=""
cleanup() {
  local status=$?
  set +e  # Clean up everything, whatever fails.
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [ "$status" != 0 ]; then  # What logbookd and PostgreSQL said, for the post-mortem.
    rm -rf "$build/bench-failed" && mkdir -p "$build/bench-failed"
    cp "$work"/*.log "$build/bench-failed/" 2>/dev/null
    [ -n "${LOGBOOK_TEST_PG_DIR:-}" ] && cp "$LOGBOOK_TEST_PG_DIR/server.log" "$build/bench-failed/postgresql.log"
    echo "run.sh failed; the servers' logs are in $build/bench-failed/" >&2
  fi
  for standby in "$work"/standby-*.env; do
    [ -f "$standby" ] && tests/pg_cluster.sh stop "$standby"
  done
  tests/pg_cluster.sh stop "$env_file"
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> starting PostgreSQL (fsync and synchronous_commit on) and logbookd"
tests/pg_cluster.sh start "$env_file" >/dev/null
. "$env_file"
# The roles of production (docs/operations.md "Roles"): the owner migrates
# its database; logbookd connects as logbook_app, whom row-level security
# binds, and as logbook_redactor for the live tail. The baselines run as the
# superuser, whom it does not.
psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin -d bench)
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin -d postgres \
  -c "CREATE DATABASE bench OWNER logbook_owner"
"${psql[@]}" -c "ALTER SCHEMA public OWNER TO logbook_owner"
db_url="postgresql://%s@127.0.0.1:$LOGBOOK_TEST_PG_PORT/bench"
"$build/clients/logbook" migrate up --database "$(printf "$db_url" logbook_owner)" >/dev/null
dsn=$(printf "$db_url" logbook_app)
admin_dsn=$(printf "$db_url" logbook_redactor)
. tests/e2e/lib.sh
start_logbookd "$dsn" "$work/server.log" --workers 72 --admin-database "$admin_dsn"
pgbench=(pgbench -n -h 127.0.0.1 -p "$LOGBOOK_TEST_PG_PORT" -U logbook_admin)

# CPU seconds logbookd has used so far.
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$server_pid/stat"
}
# CPU seconds the PostgreSQL cluster has used so far: the postmaster, the
# backends it has reaped, and the live ones.
pg_cpu() {
  python3 - "$(head -1 "$LOGBOOK_TEST_PG_DIR/data/postmaster.pid")" "$(getconf CLK_TCK)" <<'PY'
import os, sys
postmaster, hz, ticks = sys.argv[1], int(sys.argv[2]), 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    f = stat[stat.rindex(")") + 2:].split()  # f[1] ppid; f[11:15] utime stime cutime cstime
    if pid == postmaster:
        ticks += sum(map(int, f[11:15]))
    elif f[1] == postmaster:
        ticks += int(f[11]) + int(f[12])
print(ticks / hz)
PY
}
# CPU seconds of this script's finished children (logbook-bench, pgbench),
# into $children_cpu. Not in a subshell: a fork starts from zero.
read_children_cpu() {
  times >"$work/times"
  children_cpu=$(awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' "$work/times")
}
# Starts and ends a CPU window: sets pg_cpu_s and client_cpu_s to what
# PostgreSQL and the client (logbook-bench or pgbench) used in it.
cpu_window_start() {
  pg_start=$(pg_cpu)
  read_children_cpu
  client_start=$children_cpu
}
cpu_window_end() {
  read_children_cpu
  client_cpu_s=$(awk -v a="$children_cpu" -v b="$client_start" 'BEGIN { printf "%.2f", a - b }')
  pg_cpu_s=$(awk -v a="$(pg_cpu)" -v b="$pg_start" 'BEGIN { printf "%.2f", a - b }')
}
# logbookd's peak RSS in KiB since the last reset_peak_rss.
peak_rss_kib() { awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status"; }
reset_peak_rss() { echo 5 >"/proc/$server_pid/clear_refs" 2>/dev/null || true; }

# scenario NAME ARGS...: runs logbook-bench NAME ARGS, records CPU and peak
# RSS (cpu_rss: name, logbookd CPU s, peak RSS KiB, PostgreSQL CPU s,
# logbook-bench CPU s). scenario_as NAME COMMAND ARGS...: the same, running
# logbook-bench COMMAND ARGS and recording it as NAME.
scenario() { scenario_as "$1" "$@"; }
scenario_as() {
  local name=$1 command=$2
  shift 2
  echo "==> $name ($command $*)"
  local before
  reset_peak_rss
  before=$(server_cpu)
  cpu_window_start
  "$bench" --address "$LOGBOOK_ADDRESS" --json "$work/$name.json" "${bench_flags[@]}" \
    "$command" "$@" >/dev/null
  cpu_window_end
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" \
    "$(awk -v a="$(server_cpu)" -v b="$before" 'BEGIN { printf "%.1f", a - b }')" \
    "$(peak_rss_kib)" "$pg_cpu_s" "$client_cpu_s" >>"$work/cpu_rss"
}
# baseline NAME EVENTS_PER_TRANSACTION CLIENTS DESCRIPTION SQL: pgbench
# events/s and CPU (baselines: name, events/s, description, PostgreSQL CPU
# s, pgbench CPU s).
baseline() {
  local name=$1 per_tx=$2 clients=$3 description=$4 sql=$5
  printf '%s\n' "$sql" >"$work/$name.sql"
  echo "==> baseline $name: $description"
  local tps
  cpu_window_start
  "${pgbench[@]}" -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" -T "$seconds" \
    -f "$work/$name.sql" bench >"$work/pgbench.out" 2>"$work/pgbench.err" ||
    { echo "pgbench failed:" >&2; cat "$work/pgbench.err" >&2; exit 1; }
  cpu_window_end
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.out")
  [ -n "$tps" ] || { echo "pgbench printed no tps:" >&2; cat "$work/pgbench.out" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" \
    "$(awk -v t="$tps" -v n="$per_tx" 'BEGIN { printf "%.0f", t * n }')" "$description" \
    "$pg_cpu_s" "$client_cpu_s" >>"$work/baselines"
}
: >"$work/baselines"
: >"$work/cpu_rss"
bench_flags=()  # TLS and token options of logbook-bench, for --security's "on" side.

# The baselines read and write events without receipts (event_log keeps
# them in its receipt_* and *_digest columns): the columns before those, as
# the raw-PostgreSQL workloads of issue 5 were defined.
event_columns=$("${psql[@]}" -Atc "SELECT string_agg(attname, ', ' ORDER BY attnum)
  FROM pg_attribute WHERE attrelid = 'logbook.event_log'::regclass AND attnum > 0
  AND NOT attisdropped AND attname NOT IN ('receipt_previous_hash', 'receipt_hash',
  'data_digest', 'metadata_digest')")

# catch-up: fill the log to N events through logbookd, then one subscriber
# reads them all; the baseline reads pages of 1,000 with plain SELECTs.
echo "==> filling the log with $catch_up_events events (8 clients x 1,000 events per append)"
"$bench" --address "$LOGBOOK_ADDRESS" --json "$work/fill.json" catch-up --events "$catch_up_events" \
  --fill-only >/dev/null
"${psql[@]}" -c "VACUUM ANALYZE logbook.event_log"
scenario catch-up --events "$catch_up_events"
# The same catch-up through the Python and TypeScript clients (issue 22),
# beside the C++ client's above: each subscribes to $all from the beginning
# and takes every event as an application would. Installed offline
# (Python) and with npm ci (TypeScript) before the clock starts.
echo "==> installing the Python and TypeScript clients"
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index --no-build-isolation clients/python >"$work/pip.log" 2>&1 ||
  { cat "$work/pip.log" >&2; exit 1; }
(cd clients/node && npm ci --no-audit --no-fund --silent && npm run --silent build) >"$work/npm.log" 2>&1 ||
  { cat "$work/npm.log" >&2; exit 1; }
echo "==> client-catch-up-python (clients/python/bench/catchup.py)"
"$work/venv/bin/python" clients/python/bench/catchup.py "$LOGBOOK_ADDRESS" >"$work/client-python.json"
echo "==> client-catch-up-typescript (clients/node/bench/catchup.ts)"
node clients/node/build/bench/catchup.js --address "$LOGBOOK_ADDRESS" --events "$catch_up_events" |
  tail -n 1 >"$work/client-typescript.json"
last=$("${psql[@]}" -Atc "SELECT max(global_position) FROM logbook.event_log")
baseline catch-up 1000 1 "SELECT pages of 1,000 events, 1 client" \
  "\\set p random(0, $(( last > 1000 ? last - 1000 : 0 )))
SELECT $event_columns FROM logbook.event_log WHERE global_position > :p ORDER BY global_position LIMIT 1000;"

# A client paging through history, max_count 100,000 a call (issue 21):
# the last events of $all, and one stream of as many events (appended to
# first, unmeasured); beside SELECT pages of 100,000 from the same table.
scenario_as read-all read --target all --events "$catch_up_events" --page 100000
baseline read-all 100000 1 "SELECT pages of 100,000 events of \$all, 1 client" \
  "\\set p random(0, $(( last > 100000 ? last - 100000 : 0 )))
SELECT $event_columns FROM logbook.event_log WHERE global_position > :p ORDER BY global_position LIMIT 100000;"
"$bench" --address "$LOGBOOK_ADDRESS" read --target stream --events "$catch_up_events" --fill-only \
  >/dev/null
scenario_as read-stream read --target stream --events "$catch_up_events" --page 100000
baseline read-stream 100000 1 "SELECT pages of 100,000 events of one stream, 1 client" \
  "\\set v random(0, $(( catch_up_events > 100000 ? catch_up_events - 100000 : 0 )))
SELECT $event_columns FROM logbook.event_log WHERE stream_id = 'read-bench' AND stream_version >= :v ORDER BY stream_version LIMIT 100000;"

# Appends, beside raw INSERTs into a table shaped like event_log.
"${psql[@]}" -c "CREATE TABLE raw_events (LIKE logbook.event_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)" \
  -c "ALTER TABLE raw_events DROP receipt_previous_hash, DROP receipt_hash, DROP data_digest, DROP metadata_digest" \
  -c "CREATE SEQUENCE raw_position" -c "ALTER TABLE raw_events ALTER global_position SET DEFAULT nextval('raw_position')" \
  -c "CREATE TABLE raw_streams (id int PRIMARY KEY, version bigint NOT NULL)" \
  -c "INSERT INTO raw_streams SELECT g, 0 FROM generate_series(0, 3) g"
cols="(stream_id, stream_version, event_id, event_type, data, metadata, content_type, recorded_at, tenant, written_by)"
values="gen_random_uuid(), 'Tick', convert_to('{\"pad\":\"' || repeat('x', 150) || '\"}', 'UTF8'), '', 'application/json', now(), 'default', 'bench'"

scenario append-single --seconds "$seconds"
baseline append-single 1 64 "one INSERT per transaction, 64 clients" \
  "INSERT INTO raw_events $cols VALUES ('raw-' || :client_id, nextval('raw_position'), $values);"
scenario append-batch --seconds "$seconds"
baseline append-batch 100 8 "100-row INSERT per transaction, 8 clients" \
  "INSERT INTO raw_events $cols SELECT 'raw-' || :client_id, nextval('raw_position'), $values FROM generate_series(1, 100);"
scenario append-contended --seconds "$seconds"
baseline append-contended 1 64 "lock + read version, INSERT, UPDATE per transaction; 64 clients, 4 streams" \
  "\\set s random(0, 3)
BEGIN;
SELECT version + 1 AS v FROM raw_streams WHERE id = :s FOR UPDATE \\gset
INSERT INTO raw_events $cols VALUES ('rawc-' || :s, :v, $values);
UPDATE raw_streams SET version = :v WHERE id = :s;
END;"
scenario live-latency --seconds "$seconds" --warmup 1
# Consumer groups: 4 consumers (logbook::Worker, each on its own channel,
# 1,000 deliveries in flight) of one group on $all ack a fresh backlog
# spread over 1,000 streams, then live events at 1,000 appends/s; no
# pgbench baseline, the plain catch-up above is the figure beside them.
live_seconds=$(( seconds / 3 > 1 ? seconds / 3 : 1 ))
for strategy in round-robin per-stream; do
  group_events=$group_events_round_robin
  [ "$strategy" = per-stream ] && group_events=$group_events_per_stream
  scenario_as "group-$strategy" group --strategy "$strategy" --events "$group_events" \
    --streams 1000 --consumers 4 --max-in-flight 1000 --seconds "$live_seconds" --warmup 1 \
    --timeout 600
done

# What TLS and token authentication cost: the same two scenarios against a
# plain logbookd and one with both, in the order off, on, on, off, so that
# the log growing under them (later appends and catch-ups are slower) weighs
# on both sides alike; each side's figure is the mean of its two runs.
if $security; then
  make_ca bench-ca && make_cert bench-server bench-ca "IP:127.0.0.1,DNS:localhost" ||
    { echo "openssl cannot make the certificates" >&2; exit 1; }
  made=$("$build/clients/logbook" auth token create bench --roles reader,writer 2>/dev/null)
  sed -n 2p <<<"$made" >"$work/auth-tokens"
  for run in off-1 on-1 on-2 off-2; do
    side=${run%-*}
    stop_logbookd || true
    if [ "$side" = on ]; then
      start_logbookd "$dsn" "$work/server-$run.log" --workers 72 --admin-database "$admin_dsn" \
        --tls-cert "$work/bench-server.pem" \
        --tls-key "$work/bench-server.key" --auth-tokens "$work/auth-tokens"
      bench_flags=(--tls-ca "$work/bench-ca.pem" --token "$(sed -n 1p <<<"$made")")
    else
      start_logbookd "$dsn" "$work/server-$run.log" --workers 72 --admin-database "$admin_dsn"
      bench_flags=()
    fi
    # Each run starts from a quiet database: no autovacuum or checkpoint
    # left over from the run before (one such cut a run by a quarter).
    "${psql[@]}" -qc "VACUUM ANALYZE logbook.event_log" -c "CHECKPOINT"
    scenario_as "append-batch-$run" append-batch --seconds "$seconds"
    scenario_as "catch-up-$run" catch-up --events "$catch_up_events"
  done
fi

# Reads from replicas (issue 20): catch-up of the whole log from the
# primary, then from a streaming standby (logbookd --replica-database), then
# from two logbookd instances each on a standby of its own, each with its
# own subscriber, at once: their events/s added up, against the one.
if $replicas; then
  stop_logbookd || true
  for r in a b; do
    echo "==> standby $r of the bench database (pg_basebackup)"
    tests/pg_cluster.sh standby "$work/standby-$r.env" "$env_file" ||
      { echo "cannot start standby $r" >&2; exit 1; }
  done
  head=$("${psql[@]}" -Atc "SELECT last_position FROM logbook.log_head")
  standby_url() {
    printf 'postgresql://logbook_app@127.0.0.1:%s/bench' \
      "$(sed -n 's/^LOGBOOK_TEST_PG_PORT=//p' "$work/standby-$1.env")"
  }
  for r in a b; do
    for _ in $(seq 600); do
      [ "$(psql -X -At "$(standby_url "$r")" -c "SELECT last_position FROM logbook.log_head")" = "$head" ] &&
        break
      sleep 0.1
    done
  done
  # reads_on: which database served logbookd's reads (logbook_reads_total).
  reads_on() {
    python3 -c "import urllib.request; print(urllib.request.urlopen('http://$1/metrics').read().decode())" |
      awk '/^logbook_reads_total/ { printf "%s%s", sep, $0; sep = ", " }'
  }
  metrics_address() { grep -o 'metrics on http://127.0.0.1:[0-9]*' "$1" | head -1 | cut -d/ -f3; }
  start_logbookd "$dsn" "$work/server-primary.log" --workers 72 --admin-database "$admin_dsn"
  "${psql[@]}" -qc "CHECKPOINT"
  scenario_as catch-up-primary catch-up --events "$catch_up_events"
  stop_logbookd || true
  start_logbookd "$dsn" "$work/server-replica.log" --workers 72 --admin-database "$admin_dsn" \
    --replica-database "$(standby_url a)" --metrics-listen 127.0.0.1:0
  scenario_as catch-up-replica catch-up --events "$catch_up_events"
  reads_on "$(metrics_address "$work/server-replica.log")" >"$work/reads-replica"
  stop_logbookd || true
  declare -A replica_address replica_pid
  for r in a b; do
    start_logbookd "$dsn" "$work/server-replica-$r.log" --workers 72 --admin-database "$admin_dsn" \
      --replica-database "$(standby_url "$r")" --metrics-listen 127.0.0.1:0
    replica_address[$r]=$LOGBOOK_ADDRESS replica_pid[$r]=$server_pid
  done
  echo "==> catch-up-two-replicas (catch-up --events $catch_up_events, two at once)"
  bench_pids=()
  for r in a b; do
    "$bench" --address "${replica_address[$r]}" --json "$work/catch-up-two-replicas-$r.json" \
      catch-up --events "$catch_up_events" >/dev/null &
    bench_pids+=("$!")
  done
  for pid in "${bench_pids[@]}"; do
    wait "$pid" || { echo "a catch-up from a standby failed" >&2; exit 1; }
  done
  for r in a b; do
    reads_on "$(metrics_address "$work/server-replica-$r.log")" >"$work/reads-replica-$r"
    server_pid=${replica_pid[$r]}
    stop_logbookd || true
  done
fi
elapsed=$(( $(date +%s) - started ))

python3 - "$work" "$json_out" "$seconds" "$quick" "$elapsed" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, os, sys
work, out, seconds, quick, elapsed, commit = sys.argv[1:7]
cpu_rss = {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(f"{work}/cpu_rss")}
baselines = {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(f"{work}/baselines")}
fill = json.load(open(f"{work}/fill.json"))
scenarios = []
catch_up_events_per_s = None
for name in ["catch-up", "append-single", "append-batch", "append-contended", "live-latency",
             "group-round-robin", "group-per-stream", "read-all", "read-stream"]:
    s = json.load(open(f"{work}/{name}.json"))
    s["scenario"] = name
    s["events_per_s"] = s.get("events_per_s", s.get("appends_per_s"))
    s["latency_p50_ms"] = s.get("append_p50_ms") if name.startswith("append") else s.get("latency_p50_ms")
    s["latency_p99_ms"] = s.get("append_p99_ms") if name.startswith("append") else s.get("latency_p99_ms")
    cpu, rss, pg_cpu, client_cpu = cpu_rss[name]
    s["server_cpu_s"] = float(cpu)
    s["server_peak_rss_mib"] = round(int(rss) / 1024, 1)
    # CPU per event, where the events are counted exactly (not live-latency).
    per_event = lambda cpu_s, events: round(float(cpu_s) * 1e6 / events, 1) if events else None
    if name == "catch-up":
        catch_up_events_per_s = s["events_per_s"]
    if name.startswith("group-"):
        # Backlog events acked per second; p50/p99: live append-to-delivery.
        # Beside it, the plain catch-up of this run.
        s["catch_up_events_per_s"] = catch_up_events_per_s
        s["ratio_to_catch_up"] = (round(s["events_per_s"] / catch_up_events_per_s, 4)
                                  if s.get("events_per_s") and catch_up_events_per_s else None)
    events = (s["events"] if name == "catch-up" or name.startswith("read-")
              else (s.get("events_per_s") or 0) * int(seconds))
    s["cpu_us_per_event"] = None if name == "live-latency" or name.startswith("group-") else {
        "postgres": per_event(pg_cpu, events), "logbookd": per_event(cpu, events),
        "client": per_event(client_cpu, events)}
    s["baseline_cpu_us_per_event"] = None
    if name in baselines:
        base, desc, base_pg_cpu, base_client_cpu = baselines[name]
        s["baseline_events_per_s"] = int(base)
        s["baseline"] = desc
        s["ratio"] = round(s["events_per_s"] / int(base), 3) if int(base) else None
        events = int(base) * int(seconds)  # pgbench runs `seconds` whatever the scenario.
        s["baseline_cpu_us_per_event"] = {"postgres": per_event(base_pg_cpu, events),
                                          "client": per_event(base_client_cpu, events)}
    else:
        s["baseline_events_per_s"] = s["baseline"] = s["ratio"] = None
    scenarios.append(s)
# --security: each scenario with TLS and a token ("on") beside without
# ("off"), each side the mean of its two runs.
security = []
for name in ["append-batch", "catch-up"]:
    if not os.path.exists(f"{work}/{name}-on-1.json"):
        continue
    runs = {run: json.load(open(f"{work}/{name}-{run}.json"))
            for run in ("off-1", "on-1", "on-2", "off-2")}
    rate = lambda side: [runs[f"{side}-{i}"].get("events_per_s") or 0 for i in (1, 2)]
    mean = lambda side: sum(rate(side)) / 2
    cpu = lambda side: sum(float(cpu_rss[f"{name}-{side}-{i}"][0]) for i in (1, 2)) / 2
    security.append({"scenario": name, "off_events_per_s": mean("off"),
                     "on_events_per_s": mean("on"), "off_runs": rate("off"), "on_runs": rate("on"),
                     "ratio": round(mean("on") / mean("off"), 3) if mean("off") else None,
                     "failures": sum(r.get("failures", 0) for r in runs.values()),
                     "off_server_cpu_s": cpu("off"), "on_server_cpu_s": cpu("on")})
# --replicas: catch-up from the primary, from a standby, and from two
# logbookd instances on a standby each, at once.
replicas = None
if os.path.exists(f"{work}/catch-up-replica.json"):
    rate = lambda name: json.load(open(f"{work}/{name}.json")).get("events_per_s") or 0
    primary, one = rate("catch-up-primary"), rate("catch-up-replica")
    two = [rate(f"catch-up-two-replicas-{r}") for r in ("a", "b")]
    exact = all(json.load(open(f"{work}/{n}.json")).get("exact") for n in
                ("catch-up-primary", "catch-up-replica", "catch-up-two-replicas-a",
                 "catch-up-two-replicas-b"))
    reads = {n: open(f"{work}/reads-{n}").read().strip()
             for n in ("replica", "replica-a", "replica-b")}
    replicas = {"primary_events_per_s": primary, "replica_events_per_s": one,
                "two_replicas_events_per_s": two, "exact": exact,
                "replica_to_primary": round(one / primary, 3) if primary else None,
                "two_to_one": round(sum(two) / one, 3) if one else None, "reads": reads}
# The Python and TypeScript clients' catch-up of the same log, beside the
# C++ client's (logbook-bench's).
clients = []
for client in ("python", "typescript"):
    c = json.load(open(f"{work}/client-{client}.json"))
    clients.append({"client": client, "events": c["events"], "events_per_s": c["events_per_s"],
                    "cpp_events_per_s": catch_up_events_per_s,
                    "ratio_to_cpp": round(c["events_per_s"] / catch_up_events_per_s, 3)
                    if catch_up_events_per_s else None})
doc = {"commit": commit, "quick": quick == "true", "seconds_per_scenario": int(seconds),
       "run_seconds": int(elapsed), "cpus": os.cpu_count(), "fill": fill,
       "peak_rss_mib": max(s["server_peak_rss_mib"] for s in scenarios), "scenarios": scenarios,
       "security": security or None, "replicas": replicas, "clients": clients}
json.dump(doc, open(out, "w"), indent=2)

def f(v, fmt):
    return "-" if v is None else format(v, fmt)
print()
print("| scenario | events/s | baseline events/s | ratio | p50 ms | p99 ms | logbookd CPU s | logbookd peak RSS MiB | notes |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for s in scenarios:
    name = s["scenario"]
    p50, p99 = s["latency_p50_ms"], s["latency_p99_ms"]
    notes = ""
    if name == "catch-up":
        notes = f"{s['events']:,} events of $all until caught_up ({'exact' if s.get('exact') else 'NOT EXACT'})"
    elif name.startswith("read-"):
        what = "$all" if name == "read-all" else "one stream"
        notes = (f"{s['events']:,} events of {what}, ReadAll/ReadStream calls of max_count "
                 f"{s['page']:,} ({'exact' if s.get('exact') else 'NOT EXACT'})")
    elif name == "append-single":
        notes = "64 clients, own stream, 1 event, exact version; append latency"
    elif name == "append-batch":
        notes = "8 clients x 100 events; append latency"
    elif name == "append-contended":
        notes = f"64 clients on 4 streams; conflict rate {s['conflict_rate']:.2f}"
    elif name == "live-latency":
        notes = f"{s['appends_per_s']:.0f} appends/s, {s['subscribers']} subscribers; append-to-delivery latency"
    elif name.startswith("group-"):
        if s.get("failures"):
            notes = f"FAILED: {s.get('error', 'events missing')}"
        else:
            notes = (f"backlog of {s['backlog_events']:,} events over {s['streams']:,} streams acked by "
                     f"{s['consumers']} consumers ({s['client']}, max_in_flight {s['max_in_flight']}); "
                     f"catch-up of this run {s['catch_up_events_per_s']:,.0f} events/s, ratio "
                     f"{s['ratio_to_catch_up']:.3f}; live {s['appends_per_s']:.0f} appends/s, "
                     f"append-to-delivery latency (the append itself: p50 "
                     f"{s.get('append_p50_ms') or 0:.2f} ms)")
    print(f"| {name} | {f(s['events_per_s'], ',.0f')} | {f(s['baseline_events_per_s'], ',')} | {f(s['ratio'], '.2f')} "
          f"| {f(p50, '.2f')} | {f(p99, '.2f')} | {s['server_cpu_s']:.1f} | {s['server_peak_rss_mib']:.0f} | {notes} |")
print()
print("CPU per event, µs (all processes of each kind, over the scenario):")
print()
print("| scenario | Logbook: PostgreSQL | logbookd | logbook-bench | total | pgbench baseline: PostgreSQL | pgbench | total |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for s in scenarios:
    ours, base = s["cpu_us_per_event"], s["baseline_cpu_us_per_event"]
    if ours and base:
        print(f"| {s['scenario']} | {ours['postgres']:.1f} | {ours['logbookd']:.1f} | {ours['client']:.1f} "
              f"| {ours['postgres'] + ours['logbookd'] + ours['client']:.1f} | {base['postgres']:.1f} "
              f"| {base['client']:.1f} | {base['postgres'] + base['client']:.1f} |")
print()
for s in scenarios:
    if s["baseline"]:
        print(f"baseline of {s['scenario']}: {s['baseline']} (pgbench)")
print(f"group scenarios: backlogs as in their notes (the issue's is 1,000,000 events), "
      f"then live at 1,000 appends/s; targets: backlog >= 100,000 events/s (round-robin), "
      f">= 50,000 (per-stream), live p50 < 5 ms, logbookd RSS < 256 MiB")
print()
print("Catch-up through each client (the same log, every event of $all until caught_up):")
print()
print("| client | events | events/s | of the C++ client's |")
print("|---|---:|---:|---:|")
print(f"| C++ (logbook-bench) | {scenarios[0]['events']:,} | {f(catch_up_events_per_s, ',.0f')} | 1.00 |")
for c in clients:
    print(f"| {c['client']} | {c['events']:,} | {c['events_per_s']:,.0f} | {f(c['ratio_to_cpp'], '.2f')} |")
print()
print("targets (issue 22): Python >= 50,000 events/s, TypeScript >= 100,000")
if security:
    print()
    print("What TLS and token authentication cost (--security; the same run, in the order off, on, on, off;")
    print("each side the mean of its two runs, which are in parentheses):")
    print()
    print("| scenario | off events/s | TLS + token events/s | ratio | logbookd CPU s off | on |")
    print("|---|---:|---:|---:|---:|---:|")
    runs = lambda v: " / ".join(format(x, ",.0f") for x in v)
    for s in security:
        print(f"| {s['scenario']} | {f(s['off_events_per_s'], ',.0f')} ({runs(s['off_runs'])}) "
              f"| {f(s['on_events_per_s'], ',.0f')} ({runs(s['on_runs'])}) "
              f"| {f(s['ratio'], '.3f')} | {s['off_server_cpu_s']:.1f} | {s['on_server_cpu_s']:.1f} |")
    print()
    print("target (issue 19): ratio >= 0.9 for both")
if replicas:
    r = replicas
    print()
    print("Catch-up from replicas (--replicas; the same log, every event of $all until caught_up):")
    print()
    print("| catch-up from | events/s | ratio |")
    print("|---|---:|---:|")
    print(f"| the primary | {r['primary_events_per_s']:,.0f} | 1.00 |")
    print(f"| one standby | {r['replica_events_per_s']:,.0f} | {f(r['replica_to_primary'], '.2f')} (to the primary) |")
    print(f"| two logbookd, a standby each, at once | {sum(r['two_replicas_events_per_s']):,.0f} "
          f"({' + '.join(format(x, ',.0f') for x in r['two_replicas_events_per_s'])}) "
          f"| {f(r['two_to_one'], '.2f')} (to one standby) |")
    print()
    print(f"{'every' if r['exact'] else 'NOT every'} subscriber got exactly the log; reads served: "
          + "; ".join(f"{k}: {v}" for k, v in r["reads"].items()))
    print(f"this machine has {os.cpu_count()} CPUs for PostgreSQL, its standbys, logbookd and the clients alike")
print(f"{seconds} s per timed scenario; log filled through logbookd at {fill['fill_events_per_s']:,.0f} events/s; "
      f"whole run {elapsed} s")
PY
echo "JSON: $json_out"
