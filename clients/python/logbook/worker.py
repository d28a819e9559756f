"""A consumer group's worker: joins the group, calls a handler per
delivery, acks what it returns from and nacks (RETRY) what raises, and
joins again with backoff when the connection is lost."""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator, List, Optional

import grpc

from logbook.v1 import event_store_pb2 as pb
from . import _convert
from ._errors import from_rpc_error
from ._types import Delivery

MAX_REASON_BYTES = 1024  # The server's limit on a nack's reason.


class Park(Exception):
    """Raised by a handler: set the event aside (parked) with this reason."""


class Skip(Exception):
    """Raised by a handler: count the event as handled without an ack."""


class Retry(Exception):
    """Raised by a handler: deliver it again after `delay_ms` (None: the
    group's backoff). Any other exception is a Retry with the backoff."""

    def __init__(self, reason: str = "", delay_ms: Optional[int] = None) -> None:
        super().__init__(reason)
        self.delay_ms = delay_ms


# Calls that end with these are joined again; others end run().
_RECONNECT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
              # The same consumer name still connected: after this worker
              # was joined once, its own last call, which the server lets
              # go of in a moment (at the first join: another worker's
              # name, raised).
              grpc.StatusCode.ALREADY_EXISTS)


class Worker:
    """Runs `handler(delivery)` for each event `group` gives `consumer`.

        Worker(client, "emails", "emails-1", send_email).run(stop)

    run() blocks until `stop` is set (then it returns once the handler call
    in progress is done and acked) or the group refuses the consumer
    (NOT_FOUND, PERMISSION_DENIED, ...: raised).

    `max_in_flight`: unacked deliveries the server may hand this worker at a
    time; 0 (the default) is the group's own max_in_flight, and more than
    the group's is refused (INVALID_ARGUMENT). `max_batch`: deliveries per
    message (at most 1,000)."""

    def __init__(self, client, group: str, consumer: str,
                 handler: Callable[[Delivery], None], *, max_in_flight: int = 0,
                 max_batch: int = 100) -> None:
        self._client = client
        self.group = group
        self.consumer = consumer
        self._handler = handler
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self.handled = 0  # Deliveries handled (acked or nacked) so far.
        self._joined = False  # The group took this worker's join once.

    def run(self, stop: Optional[threading.Event] = None) -> None:
        stop = stop or threading.Event()
        delay = 0.1
        while not stop.is_set():
            try:
                self._run_once(stop)
                delay = 0.1
            except grpc.RpcError as e:
                if stop.is_set():
                    return
                if e.code() not in _RECONNECT or (
                        e.code() == grpc.StatusCode.ALREADY_EXISTS and not self._joined):
                    raise from_rpc_error(e) from None
            stop.wait(delay)
            delay = min(delay * 2, 5.0)

    def _run_once(self, stop: threading.Event) -> None:
        outbox: "queue.Queue[Optional[pb.ConsumeRequest]]" = queue.Queue()
        outbox.put(pb.ConsumeRequest(join=pb.ConsumerJoin(
            group=self.group, consumer=self.consumer, max_in_flight=self._max_in_flight,
            max_batch=self._max_batch)))

        def requests() -> Iterator[pb.ConsumeRequest]:
            while True:
                r = outbox.get()
                if r is None:
                    return
                yield r

        call = self._client._stub.Consume(requests(), metadata=self._client._metadata)
        watcher = threading.Thread(target=_end_when, args=(stop, call, outbox), daemon=True)
        watcher.start()
        try:
            for r in call:
                kind = r.WhichOneof("content")
                if kind == "delivery":
                    batch = [r.delivery]
                elif kind == "deliveries":
                    batch = list(r.deliveries.deliveries)
                else:
                    self._joined = self._joined or kind == "joined"
                    continue  # joined, assignment
                acks: List[int] = []
                for d in batch:
                    nack = self._handle(_convert.delivery(d))
                    if nack is None:
                        acks.append(d.delivery_id)
                    else:
                        outbox.put(pb.ConsumeRequest(nack=nack))
                    self.handled += 1
                if acks:
                    outbox.put(pb.ConsumeRequest(ack=pb.ConsumerAck(delivery_ids=acks)))
                if stop.is_set():
                    break
        finally:
            outbox.put(None)
            if stop.is_set():
                time.sleep(0.05)  # Lets the last acks go out before the call ends.
            call.cancel()

    def _handle(self, d: Delivery) -> Optional[pb.ConsumerNack]:
        try:
            self._handler(d)
            return None
        except Park as e:
            return _nack(d.delivery_id, pb.PARK, str(e) or "parked")
        except Skip as e:
            return _nack(d.delivery_id, pb.SKIP, str(e) or "skipped")
        except Retry as e:
            nack = _nack(d.delivery_id, pb.RETRY, str(e) or "retry")
            if e.delay_ms is not None:
                nack.retry_delay_ms = max(0, min(e.delay_ms, 3_600_000))
            return nack
        except Exception as e:  # noqa: BLE001 - any failure of the handler is a retry.
            return _nack(d.delivery_id, pb.RETRY, f"{type(e).__name__}: {e}")


def _nack(delivery_id: int, action: int, reason: str) -> pb.ConsumerNack:
    data = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
    return pb.ConsumerNack(delivery_ids=[delivery_id], action=action, reason=data)


def _end_when(stop: threading.Event, call, outbox) -> None:
    while not stop.wait(0.2):
        if call.done():
            return
    outbox.put(None)
    time.sleep(0.2)
    call.cancel()
