"""The blocking client. Thread-safe: one Client (one channel) may serve
every thread of a process. Every failed call raises a LogbookError."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, List, Optional, Sequence

import grpc
from google.protobuf import empty_pb2

from logbook.v1 import event_store_pb2 as pb
from logbook.v1 import event_store_pb2_grpc as pb_grpc
from . import _convert
from ._channel import RETRYABLE, ConnectOptions
from ._errors import LogbookError, from_rpc_error
from ._types import (ANY, AppendResult, ExpectedVersion, Loaded, NewEvent, RecordedEvent,
                     StreamInfo, VerifyResult)

MAX_PAGE = 100_000  # The server's largest max_count.


class Client:
    """A connection to logbookd.

        with Client("127.0.0.1:50051") as lb:
            lb.append("order-1", [NewEvent("OrderPlaced", {"total": 30})])
            for e in lb.read_stream("order-1"):
                print(e.stream_version, e.type, e.json())
    """

    def __init__(self, address: str = "127.0.0.1:50051", **options) -> None:
        self.options = ConnectOptions(address=address, **options)
        if self.options.tls:
            self._channel = grpc.secure_channel(address, self.options.credentials())
        else:
            self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.EventStoreStub(self._channel)
        self._metadata = self.options.metadata()

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _unary(self, method, request, timeout: Optional[float] = None):
        try:
            return method(request, timeout=timeout or self.options.timeout,
                          metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # --- Writing.

    def append(self, stream_id: str, events: Sequence[NewEvent],
               expected_version: ExpectedVersion = ANY, *, retries: int = 3,
               traceparent: Optional[str] = None) -> AppendResult:
        """Appends `events` to the stream, all or none. A call the network or
        the server lost is sent again (up to `retries` times): the events'
        ids were made by the client, so the server stores them once."""
        request = _convert.append_request(stream_id, list(events), expected_version)
        metadata = self._metadata + ([("traceparent", traceparent)] if traceparent else [])
        delay = 0.1
        for attempt in range(retries + 1):
            try:
                # A retry waits for the channel to connect again (gRPC backs
                # off between attempts) rather than failing at once.
                return _convert.append_result(self._stub.Append(
                    request, timeout=self.options.timeout, metadata=metadata,
                    wait_for_ready=attempt > 0))
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE or attempt == retries:
                    raise from_rpc_error(e) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    # --- Reading.

    def read_stream(self, stream_id: str, *, from_version: Optional[int] = None,
                    backward: bool = False, until_version: Optional[int] = None,
                    page_size: int = 1000) -> Iterator[RecordedEvent]:
        """The stream's events in version order (newest first when
        `backward`), fetched a page of `page_size` at a time as the
        iteration goes."""
        _check_page(page_size)
        request = _convert.read_stream_request(stream_id, from_version, backward, until_version,
                                               page_size)
        while True:
            page = self._page(self._stub.ReadStream, request)
            yield from page
            if not _convert.next_page(request, page):
                return

    def read_all(self, *, from_position: Optional[int] = None, backward: bool = False,
                 category: Optional[str] = None, stream_prefix: Optional[str] = None,
                 event_types: Sequence[str] = (), until_position: Optional[int] = None,
                 page_size: int = 1000) -> Iterator[RecordedEvent]:
        """Every event of the log (`$all`) in position order, narrowed by
        the filter, a page at a time."""
        _check_page(page_size)
        request = _convert.read_all_request(from_position, backward, category, stream_prefix,
                                            event_types, until_position, page_size)
        while True:
            page = self._page(self._stub.ReadAll, request)
            yield from page
            if not _convert.next_page(request, page):
                return

    def _page(self, method, request) -> List[RecordedEvent]:
        try:
            return [_convert.recorded_event(e) for r in method(
                request, timeout=self.options.timeout, metadata=self._metadata)
                    for e in _convert.subscribed_events(r)]
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def get_stream(self, stream_id: str) -> StreamInfo:
        return _convert.stream_info(
            self._unary(self._stub.GetStream, pb.GetStreamRequest(stream_id=stream_id)))

    def load(self, stream_id: str, *, schema_version: Optional[int] = None) -> Loaded:
        """The newest snapshot of the stream (of `schema_version`, if given)
        and every event after it: what an aggregate is rebuilt from."""
        request = pb.LoadSnapshotRequest(stream_id=stream_id)
        if schema_version is not None:
            request.schema_version = schema_version
        try:
            snapshot = _convert.snapshot(self._unary(self._stub.LoadSnapshot, request))
        except LogbookError as e:
            if e.code != grpc.StatusCode.NOT_FOUND:
                raise
            snapshot = None
        start = snapshot.stream_version + 1 if snapshot else None
        return Loaded(snapshot, list(self.read_stream(stream_id, from_version=start,
                                                      page_size=MAX_PAGE)))

    def save_snapshot(self, stream_id: str, stream_version: int, schema_version: int,
                      state: bytes) -> None:
        self._unary(self._stub.SaveSnapshot, pb.SaveSnapshotRequest(
            stream_id=stream_id, stream_version=stream_version, schema_version=schema_version,
            state=state))

    def verify(self, stream_id: Optional[str] = None,
               on_progress: Optional[Callable[[int, int], None]] = None) -> VerifyResult:
        """Checks the receipts of one stream, or (None) of the whole log;
        `on_progress(checked, total)` hears of long runs."""
        request = _convert.verify_request(stream_id)
        try:
            for r in self._stub.Verify(request, metadata=self._metadata):
                if r.HasField("progress") and on_progress is not None:
                    on_progress(r.progress.events_checked, r.progress.events_total)
                if r.HasField("result"):
                    return _convert.verify_result(r.result)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        raise LogbookError(grpc.StatusCode.INTERNAL, "verify: the server sent no result")

    # --- Following the log.

    def subscribe(self, target: str = "$all", *, category: Optional[str] = None,
                  stream_prefix: Optional[str] = None, event_types: Sequence[str] = (),
                  after_position: Optional[int] = None, from_now: bool = False,
                  on_caught_up: Optional[Callable[[int], None]] = None,
                  resume: bool = True, stop: Optional[threading.Event] = None
                  ) -> Iterator[RecordedEvent]:
        """The events of `$all`, a stream, or a category (`category`), from
        the beginning (or after `after_position`, or from now), then live,
        for ever. When the connection is lost it opens the subscription
        again after the last event it yielded (`resume`), so nothing is
        missed or repeated. `on_caught_up(position)` is called when the
        backlog is delivered; setting `stop` ends the iteration."""
        last = after_position
        delay = 0.1
        reopened = False
        while stop is None or not stop.is_set():
            request = _convert.subscribe_request(target, category, stream_prefix, event_types,
                                                 last, from_now and last is None)
            call = self._stub.Subscribe(request, metadata=self._metadata,
                                        wait_for_ready=reopened)
            reopened = True
            if stop is not None:
                threading.Thread(target=_cancel_when, args=(stop, call), daemon=True).start()
            try:
                for r in call:
                    if r.HasField("caught_up") and on_caught_up is not None:
                        on_caught_up(r.caught_up.global_position)
                    for e in _convert.subscribed_events(r):
                        last = e.global_position
                        yield _convert.recorded_event(e)
                    delay = 0.1
                return  # The server ended it cleanly: a stream deleted, say.
            except grpc.RpcError as e:
                if stop is not None and stop.is_set():
                    return
                if not resume or e.code() not in RETRYABLE:
                    raise from_rpc_error(e) from None
            finally:
                call.cancel()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    # --- Consumer groups.

    def create_consumer_group(self, group: str, *, category: Optional[str] = None,
                              stream_id: Optional[str] = None,
                              event_types: Sequence[str] = (), round_robin: bool = False,
                              ack_timeout_ms: Optional[int] = None,
                              max_deliveries: Optional[int] = None) -> None:
        """A group on a category, a stream, or (neither) the whole log,
        delivering from the beginning."""
        target = pb.ConsumerGroupTarget()
        if category:
            target.category = category
        elif stream_id:
            target.stream_id = stream_id
        else:
            target.all.CopyFrom(empty_pb2.Empty())
        f = _convert.filter_of(None, None, event_types)
        if f is not None:
            target.filter.CopyFrom(f)
        settings = pb.ConsumerGroupSettings(
            strategy=pb.ROUND_ROBIN if round_robin else pb.PER_STREAM)
        if ack_timeout_ms is not None:
            settings.ack_timeout_ms = ack_timeout_ms
        if max_deliveries is not None:
            settings.max_deliveries = max_deliveries
        self._unary(self._stub.CreateConsumerGroup, pb.CreateConsumerGroupRequest(
            group=group, target=target, settings=settings))

    def consumer_group(self, group: str) -> pb.ConsumerGroupInfo:
        """GetConsumerGroup's answer as it comes (a protobuf message)."""
        return self._unary(self._stub.GetConsumerGroup, pb.GetConsumerGroupRequest(group=group))


def _check_page(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE:
        raise ValueError(f"page_size: {page_size} is outside 1..{MAX_PAGE}")


def _cancel_when(stop: threading.Event, call) -> None:
    while not stop.wait(0.2):
        if call.done():
            return
    call.cancel()
