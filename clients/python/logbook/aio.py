"""The asyncio client: the blocking Client's calls as coroutines and async
iterators, on grpc.aio. One AsyncClient per event loop."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, List, Optional, Sequence

import grpc

from logbook.v1 import event_store_pb2 as pb
from logbook.v1 import event_store_pb2_grpc as pb_grpc
from . import _convert
from ._channel import RETRYABLE, ConnectOptions
from ._errors import LogbookError, from_rpc_error
from ._types import (ANY, AppendResult, ExpectedVersion, Loaded, NewEvent, RecordedEvent,
                     StreamInfo, VerifyResult)
from .client import MAX_PAGE, _check_page


class AsyncClient:
    """    async with AsyncClient("127.0.0.1:50051") as lb:
            await lb.append("order-1", [NewEvent("OrderPlaced", {"total": 30})])
            async for e in lb.read_stream("order-1"):
                print(e.stream_version, e.type)
    """

    def __init__(self, address: str = "127.0.0.1:50051", **options) -> None:
        self.options = ConnectOptions(address=address, **options)
        if self.options.tls:
            self._channel = grpc.aio.secure_channel(address, self.options.credentials())
        else:
            self._channel = grpc.aio.insecure_channel(address)
        self._stub = pb_grpc.EventStoreStub(self._channel)
        self._metadata = self.options.metadata()

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _unary(self, method, request):
        try:
            return await method(request, timeout=self.options.timeout,
                                metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise _error(e) from None

    async def append(self, stream_id: str, events: Sequence[NewEvent],
                     expected_version: ExpectedVersion = ANY, *,
                     retries: int = 3) -> AppendResult:
        """As Client.append: all or none, sent again when lost (the ids make
        that safe)."""
        request = _convert.append_request(stream_id, list(events), expected_version)
        delay = 0.1
        for attempt in range(retries + 1):
            try:
                return _convert.append_result(await self._stub.Append(
                    request, timeout=self.options.timeout, metadata=self._metadata,
                    wait_for_ready=attempt > 0))
            except grpc.aio.AioRpcError as e:
                if e.code() not in RETRYABLE or attempt == retries:
                    raise _error(e) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def read_stream(self, stream_id: str, *, from_version: Optional[int] = None,
                          backward: bool = False, until_version: Optional[int] = None,
                          page_size: int = 1000) -> AsyncIterator[RecordedEvent]:
        _check_page(page_size)
        request = _convert.read_stream_request(stream_id, from_version, backward, until_version,
                                               page_size)
        while True:
            page = await self._page(self._stub.ReadStream, request)
            for e in page:
                yield e
            if not _convert.next_page(request, page):
                return

    async def read_all(self, *, from_position: Optional[int] = None, backward: bool = False,
                       category: Optional[str] = None, stream_prefix: Optional[str] = None,
                       event_types: Sequence[str] = (), until_position: Optional[int] = None,
                       page_size: int = 1000) -> AsyncIterator[RecordedEvent]:
        _check_page(page_size)
        request = _convert.read_all_request(from_position, backward, category, stream_prefix,
                                            event_types, until_position, page_size)
        while True:
            page = await self._page(self._stub.ReadAll, request)
            for e in page:
                yield e
            if not _convert.next_page(request, page):
                return

    async def _page(self, method, request) -> List[RecordedEvent]:
        try:
            return [_convert.recorded_event(e) async for r in method(
                request, timeout=self.options.timeout, metadata=self._metadata)
                    for e in _convert.subscribed_events(r)]
        except grpc.aio.AioRpcError as e:
            raise _error(e) from None

    async def get_stream(self, stream_id: str) -> StreamInfo:
        return _convert.stream_info(
            await self._unary(self._stub.GetStream, pb.GetStreamRequest(stream_id=stream_id)))

    async def load(self, stream_id: str, *, schema_version: Optional[int] = None) -> Loaded:
        request = pb.LoadSnapshotRequest(stream_id=stream_id)
        if schema_version is not None:
            request.schema_version = schema_version
        try:
            snapshot = _convert.snapshot(await self._unary(self._stub.LoadSnapshot, request))
        except LogbookError as e:
            if e.code != grpc.StatusCode.NOT_FOUND:
                raise
            snapshot = None
        start = snapshot.stream_version + 1 if snapshot else None
        events = [e async for e in self.read_stream(stream_id, from_version=start,
                                                    page_size=MAX_PAGE)]
        return Loaded(snapshot, events)

    async def verify(self, stream_id: Optional[str] = None) -> VerifyResult:
        request = _convert.verify_request(stream_id)
        try:
            async for r in self._stub.Verify(request, metadata=self._metadata):
                if r.HasField("result"):
                    return _convert.verify_result(r.result)
        except grpc.aio.AioRpcError as e:
            raise _error(e) from None
        raise LogbookError(grpc.StatusCode.INTERNAL, "verify: the server sent no result")

    async def subscribe(self, target: str = "$all", *, category: Optional[str] = None,
                        stream_prefix: Optional[str] = None, event_types: Sequence[str] = (),
                        after_position: Optional[int] = None, from_now: bool = False,
                        resume: bool = True) -> AsyncIterator[RecordedEvent]:
        """As Client.subscribe: backlog, then live, resumed after the last
        event yielded when the connection is lost. Cancel the task (or stop
        iterating) to end it."""
        last = after_position
        delay = 0.1
        reopened = False
        while True:
            request = _convert.subscribe_request(target, category, stream_prefix, event_types,
                                                 last, from_now and last is None)
            call = self._stub.Subscribe(request, metadata=self._metadata,
                                        wait_for_ready=reopened)
            reopened = True
            try:
                async for r in call:
                    for e in _convert.subscribed_events(r):
                        last = e.global_position
                        yield _convert.recorded_event(e)
                    delay = 0.1
                return
            except grpc.aio.AioRpcError as e:
                if not resume or e.code() not in RETRYABLE:
                    raise _error(e) from None
            finally:
                call.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _error(e: grpc.aio.AioRpcError) -> LogbookError:
    return from_rpc_error(e)
