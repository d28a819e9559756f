#!/usr/bin/env bash
# clients/bench/run.sh --quick --security end to end: it starts its own
# PostgreSQL and logbookd, runs every scenario beside its pgbench baseline
# and the security pair (without, then with TLS and a token), and writes a
# JSON report naming each scenario with a baseline and a ratio. Asserts that
# the tool works and reports exactly what it ran, never a speed. Needs
# LOGBOOK_BUILD_DIR (the build folder holding logbookd, logbook and
# logbook-bench).
set -uo pipefail

. "$(dirname "$0")/lib.sh"
begin_test
root=$(cd "$(dirname "$0")/../.." && pwd)

# Every failure shows what run.sh printed.
fail_context() { echo "--- run.sh output:"; cat "$work/out"; }

"$root/clients/bench/run.sh" --quick --security --build "$LOGBOOK_BUILD_DIR" --json "$work/report.json" \
  >"$work/out" 2>&1 || fail "run.sh --quick exited non-zero"
pass "run.sh --quick --security"

# report_is_exact: the report names what ran, with the figures it derives
# from each other consistent; never a speed.
report_is_exact() {
  python3 - "$work/report.json" "$work/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
want = ["catch-up", "append-single", "append-batch", "append-contended", "live-latency",
        "group-round-robin", "group-per-stream", "read-all", "read-stream"]
names = [s["scenario"] for s in r["scenarios"]]
assert names == want, names
assert r["quick"] is True and r["seconds_per_scenario"] == 3, r
assert r["fill"]["filled_events"] == 200000 and r["fill"]["failures"] == 0, r["fill"]
by = {s["scenario"]: s for s in r["scenarios"]}
assert by["catch-up"]["exact"] and by["catch-up"]["events"] == 200000, by["catch-up"]
for name in want[:4] + want[7:]:
    s = by[name]
    assert s["failures"] == 0, s
    assert s["events_per_s"] > 0 and s["baseline_events_per_s"] > 0, s
    assert s["ratio"] == round(s["events_per_s"] / s["baseline_events_per_s"], 3), s
    assert s["server_peak_rss_mib"] > 0, s
    # CPU per event of every process kind on both sides, from the same
    # CPU seconds as the table (logbookd's to 0.1 s).
    ours, base = s["cpu_us_per_event"], s["baseline_cpu_us_per_event"]
    assert set(ours) == {"postgres", "logbookd", "client"} and min(ours.values()) > 0, s
    assert set(base) == {"postgres", "client"} and min(base.values()) > 0, s
    events = s["events"] if name in ("catch-up", "read-all", "read-stream") else s["events_per_s"] * 3
    assert abs(ours["logbookd"] * events / 1e6 - s["server_cpu_s"]) < 0.001 + events / 1e7, s
assert by["append-batch"]["events_per_append"] == 100 and by["append-batch"]["clients"] == 8
assert by["live-latency"]["failures"] == 0 and by["live-latency"]["latency_p50_ms"] > 0
assert by["live-latency"]["cpu_us_per_event"] is None
for name in want[7:]:
    s = by[name]
    assert s["exact"] and s["events"] == 200000 and s["page"] == 100000 and s["calls"] == 2, s
for name in want[5:7]:
    s = by[name]
    assert s["failures"] == 0 and s["exact"] and s["backlog_events"] == 1000, s
    assert s["streams"] == 1000 and s["consumers"] == 4 and s["live_missing"] == 0, s
    assert s["catch_up_events_per_s"] == by["catch-up"]["events_per_s"], s
    assert s["ratio_to_catch_up"] == round(s["events_per_s"] / s["catch_up_events_per_s"], 4), s
    assert s["server_peak_rss_mib"] > 0 and s["cpu_us_per_event"] is None, s
# --security: each scenario without and with TLS and a token, and their ratio.
sec = {s["scenario"]: s for s in r["security"]}
assert list(sec) == ["append-batch", "catch-up"], r["security"]
for s in sec.values():
    assert s["failures"] == 0 and s["off_events_per_s"] > 0 and s["on_events_per_s"] > 0, s
    assert s["ratio"] == round(s["on_events_per_s"] / s["off_events_per_s"], 3), s
    assert s["on_server_cpu_s"] > 0, s
# The Python and TypeScript clients' catch-up of the same log: every event.
assert [c["client"] for c in r["clients"]] == ["python", "typescript"], r["clients"]
for c in r["clients"]:
    assert c["events"] == 200000 and c["events_per_s"] > 0, c
    assert c["cpp_events_per_s"] == by["catch-up"]["events_per_s"], c
    assert c["ratio_to_cpp"] == round(c["events_per_s"] / c["cpp_events_per_s"], 3), c
assert "| typescript | 200,000 | " in open(sys.argv[2]).read()
assert "| catch-up | " in open(sys.argv[2]).read().split("What TLS and token")[1]
assert "| group-per-stream | " in open(sys.argv[2]).read()
assert "| append-batch | " in open(sys.argv[2]).read().split("CPU per event")[1]
print("the report is exact")
PY
}
check "report" 0 '^the report is exact$' -- report_is_exact
finish
