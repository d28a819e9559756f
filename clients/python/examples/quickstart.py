"""Appends, reads and subscribes: python3 quickstart.py [HOST:PORT]."""
import sys
import threading

from logbook import NO_STREAM, Client, NewEvent

with Client(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051") as lb:
    stream = f"order-{threading.get_ident()}"
    r = lb.append(stream, [NewEvent("OrderPlaced", {"total": 30})], NO_STREAM)
    print(f"appended {stream}@{r.first_version} at position {r.first_position}")
    lb.append(stream, [NewEvent("OrderPaid", {"amount": 30})], r.last_version)

    for e in lb.read_stream(stream):
        print("read", e.stream_version, e.type, e.json())

    stop = threading.Event()
    for e in lb.subscribe(stream, stop=stop):  # History, then live.
        print("got", e.global_position, e.type)
        if e.type == "OrderPaid":
            stop.set()
