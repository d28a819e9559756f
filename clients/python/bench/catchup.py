"""Catch-up through the Python client, for clients/bench/run.sh: subscribes
to $all from the beginning, takes every event (as a RecordedEvent, the way
an application would) until the server says the backlog is delivered, and
prints {"events": N, "seconds": S, "events_per_s": R} as one JSON line.

    python catchup.py HOST:PORT
"""
import json
import sys
import threading
import time

import logbook


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    client = logbook.Client(sys.argv[1])
    stop = threading.Event()
    count = 0
    started = time.monotonic()
    for _ in client.subscribe("$all", on_caught_up=lambda _position: stop.set(), stop=stop):
        count += 1
    seconds = time.monotonic() - started
    print(json.dumps({"events": count, "seconds": round(seconds, 3),
                      "events_per_s": round(count / seconds)}))
    return 0 if count > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
