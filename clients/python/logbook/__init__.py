"""Logbook's Python client (clients/python/README.md).

    from logbook import Client, NewEvent
    with Client("127.0.0.1:50051", token=...) as lb:
        lb.append("order-1", [NewEvent("OrderPlaced", {"total": 30})])
"""

from ._errors import (AlreadyExists, FailedPrecondition, InvalidArgument, LogbookError,
                      NotFound, PermissionDenied, Unauthenticated, Unavailable,
                      WrongExpectedVersion)
from ._types import (ANY, NO_STREAM, STREAM_EXISTS, AppendResult, BrokenEvent, Delivery,
                     ExpectedVersion, Loaded, NewEvent, RecordedEvent, Snapshot, StreamInfo,
                     VerifyResult, new_event_id)
from .aio import AsyncClient
from .client import Client
from .worker import Park, Retry, Skip, Worker

__all__ = [
    "ANY", "NO_STREAM", "STREAM_EXISTS", "AlreadyExists", "AppendResult", "AsyncClient",
    "BrokenEvent", "Client", "Delivery", "ExpectedVersion", "FailedPrecondition",
    "InvalidArgument", "Loaded", "LogbookError", "NewEvent", "NotFound", "Park",
    "PermissionDenied", "RecordedEvent", "Retry", "Skip", "Snapshot", "StreamInfo",
    "Unauthenticated", "Unavailable", "VerifyResult", "Worker", "WrongExpectedVersion",
    "new_event_id",
]
