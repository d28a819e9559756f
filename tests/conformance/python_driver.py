"""The Python client's driver of the conformance scenario
(tests/conformance/README.md):

    python python_driver.py SCENARIO ADDRESS PREFIX

Runs the steps of SCENARIO (scenario.json) in order against logbookd at
ADDRESS with the `logbook` package's public API, and prints one JSON line
per step with what it observed. Stream, category and group names get
PREFIX in front; positions are printed relative to the run's first one.
At subscribe_restart it prints the "await": "restart" line and reads one
line ("restarted") from stdin before it goes on. Exits 0 once every step
ran, whatever the steps observed: the runner compares the lines with
expected.jsonl."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import logbook
from logbook import (ANY, NO_STREAM, STREAM_EXISTS, Client, LogbookError, NewEvent, Worker,
                     new_event_id)

# How long a step waits for what it is waiting for before it prints what it
# got, with "timed_out": true.
WAIT_SECONDS = 30.0
CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def emit(line: Dict[str, Any]) -> None:
    print(json.dumps(line, sort_keys=True, separators=(",", ":")), flush=True)


class PlannedFailure(Exception):
    """What the group worker's handler raises where the scenario says it fails."""


class Driver:
    def __init__(self, client: Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.ids: Dict[str, str] = {}    # The scenario's id names -> the ids made for them.
        self.names: Dict[str, str] = {}  # And back.
        self.base: Optional[int] = None  # The run's first position.

    # --- Names, ids and positions, as README.md "Normalization" says.

    def stream(self, name: str) -> str:
        return self.prefix + name

    def name_of(self, stream_id: str) -> str:
        if stream_id.startswith(self.prefix):
            return stream_id[len(self.prefix):]
        return "?" + stream_id

    def event_id(self, name: str) -> str:
        if name not in self.ids:
            self.ids[name] = new_event_id()
            self.names[self.ids[name]] = name
        return self.ids[name]

    def id_name(self, event_id: str) -> str:
        if event_id in self.names:
            return self.names[event_id]
        if CANONICAL_UUID.match(event_id):
            return "uuid-v" + event_id[14]
        return event_id

    def position(self, position: int) -> int:
        if self.base is None:
            return -position  # No append succeeded yet: a value the expected file never has.
        return position - self.base + 1

    def event(self, e: logbook.RecordedEvent) -> Dict[str, Any]:
        return {"stream": self.name_of(e.stream_id), "version": e.stream_version,
                "position": self.position(e.global_position), "type": e.type,
                "id": self.id_name(e.event_id), "data": e.json()}

    @staticmethod
    def error(e: LogbookError) -> Dict[str, Any]:
        return {"error": {"code": e.code.name,
                          "actual_version": getattr(e, "actual_version", None)}}

    # --- The ops.

    def append(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        events = []
        for e in spec["events"]:
            if "id" in e:
                events.append(NewEvent(e["type"], e["data"], event_id=self.event_id(e["id"])))
            else:
                events.append(NewEvent(e["type"], e["data"]))  # The client makes the id.
        expected = {"any": ANY, "no_stream": NO_STREAM,
                    "stream_exists": STREAM_EXISTS}.get(spec["expected"], spec["expected"])
        try:
            r = self.client.append(self.stream(spec["stream"]), events, expected)
        except LogbookError as e:
            return self.error(e)
        if self.base is None:
            self.base = r.first_position
        return {"result": {"first_version": r.first_version, "last_version": r.last_version,
                           "first_position": self.position(r.first_position),
                           "last_position": self.position(r.last_position),
                           "event_ids": [self.id_name(i) for i in r.event_ids]}}

    def get_stream(self, step: Dict[str, Any]) -> Dict[str, Any]:
        try:
            info = self.client.get_stream(self.stream(step["stream"]))
        except LogbookError as e:
            return self.error(e)
        return {"stream": {"version": info.version,
                           "last_position": self.position(info.last_position),
                           "state": info.state}}

    def read_stream(self, step: Dict[str, Any]) -> Dict[str, Any]:
        options: Dict[str, Any] = {"backward": step["direction"] == "backward"}
        if "from_version" in step:
            options["from_version"] = step["from_version"]
        if "page_size" in step:
            options["page_size"] = step["page_size"]
        try:
            events = list(self.client.read_stream(self.stream(step["stream"]), **options))
        except LogbookError as e:
            return self.error(e)
        return {"events": [self.event(e) for e in events]}

    def read_all(self, step: Dict[str, Any]) -> Dict[str, Any]:
        options: Dict[str, Any] = {"backward": step["direction"] == "backward",
                                   "category": self.stream(step["category"])}
        if "page_size" in step:
            options["page_size"] = step["page_size"]
        try:
            events = list(self.client.read_all(**options))
        except LogbookError as e:
            return self.error(e)
        return {"events": [self.event(e) for e in events]}

    def subscribe_restart(self, step: Dict[str, Any]) -> Dict[str, Any]:
        got: List[logbook.RecordedEvent] = []
        failure: List[LogbookError] = []
        changed = threading.Condition()
        stop = threading.Event()

        def follow() -> None:
            try:
                for e in self.client.subscribe(self.stream(step["stream"]), stop=stop):
                    with changed:
                        got.append(e)
                        changed.notify_all()
            except LogbookError as e:
                with changed:
                    failure.append(e)
                    changed.notify_all()

        def wait_for(done) -> bool:
            with changed:
                return changed.wait_for(lambda: done() or failure, WAIT_SECONDS) and not failure

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        first = {"await": "restart"}
        if not wait_for(lambda: len(got) >= step["before_restart"]):
            first["timed_out"] = True
        with changed:
            first["events"] = [self.event(e) for e in got]
        emit({"step": step["step"], **first})
        line = sys.stdin.readline()
        if line.strip() != "restarted":
            raise SystemExit(f"subscribe_restart: wanted 'restarted' on stdin, got {line!r}")

        out: Dict[str, Any] = {"append": self.append(step["after_restart"])}
        until = step["until_version"]
        if not wait_for(lambda: any(e.stream_version == until for e in got)):
            out["timed_out"] = True
        stop.set()
        follower.join(WAIT_SECONDS)
        with changed:
            out["events"] = [self.event(e) for e in got]
            if failure:
                out["error"] = self.error(failure[0])["error"]
        return out

    def group_worker(self, step: Dict[str, Any]) -> Dict[str, Any]:
        group = self.stream(step["group"])
        try:
            self.client.create_consumer_group(group, category=self.stream(step["category"]))
        except LogbookError as e:
            return self.error(e)
        fails = {(f["stream"], f["version"], f["attempt"]) for f in step["fail"]}
        handled: Dict[str, List[Dict[str, Any]]] = {}
        acked = threading.Event()

        def handle(d: logbook.Delivery) -> None:
            name = self.name_of(d.event.stream_id)
            failing = (name, d.event.stream_version, d.attempt) in fails
            handled.setdefault(name, []).append(
                {"version": d.event.stream_version, "attempt": d.attempt,
                 "position": self.position(d.delivery_id),
                 "outcome": "fail" if failing else "ack"})
            if failing:
                raise PlannedFailure("conformance: a planned failure")
            if sum(h["outcome"] == "ack" for hs in handled.values() for h in hs) == step["acks"]:
                acked.set()

        stop = threading.Event()
        worker = Worker(self.client, group, step["consumer"], handle)
        failure: List[LogbookError] = []

        def run() -> None:
            try:
                worker.run(stop)
            except LogbookError as e:
                failure.append(e)

        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        out: Dict[str, Any] = {}
        if not acked.wait(WAIT_SECONDS):
            out["timed_out"] = True
        # The counts once the server has taken every ack (the worker still
        # runs, so that nothing it has yet to send is lost).
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            info = self.client.consumer_group(group)
            if (info.acked, info.in_flight, info.lag_events) == (step["acks"], 0, 0):
                break
            if time.monotonic() > deadline:
                out["timed_out"] = True
                break
            time.sleep(0.05)
        stop.set()
        runner.join(WAIT_SECONDS)
        out["handled"] = handled
        out["group"] = {"delivered": info.delivered, "acked": info.acked, "parked": info.parked,
                        "in_flight": info.in_flight, "lag_events": info.lag_events,
                        "checkpoint_position": self.position(info.checkpoint_position)}
        if failure:
            out["error"] = self.error(failure[0])["error"]
        return out


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: python_driver.py SCENARIO ADDRESS PREFIX", file=sys.stderr)
        return 2
    scenario_path, address, prefix = sys.argv[1:]
    with open(scenario_path) as f:
        steps = json.load(f)["steps"]
    with Client(address, timeout=10) as client:
        driver = Driver(client, prefix)
        for step in steps:
            op = getattr(driver, step["op"], None)
            if op is None:
                print(f"unknown op {step['op']!r}", file=sys.stderr)
                return 2
            emit({"step": step["step"], **op(step)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
