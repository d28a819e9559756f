"""The values the client takes and returns: plain, typed dataclasses."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, List, Optional, Union


def new_event_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then random bits. Made by the
    client, once per event, so that a retried append is recognised as the
    same one (docs/api.md "Idempotency")."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((millis & ((1 << 48) - 1)) << 80) | (0x7 << 76) \
        | (((rand >> 62) & 0xFFF) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


class _Expected:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"logbook.{self.name}"


ANY = _Expected("ANY")                      # Whatever the stream's version.
NO_STREAM = _Expected("NO_STREAM")          # The stream must not exist yet.
STREAM_EXISTS = _Expected("STREAM_EXISTS")  # The stream must exist.
# What an append expects of its stream: one of the three above, or the
# exact version of the stream's last event (an int).
ExpectedVersion = Union[int, _Expected]


def _bytes_of(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class NewEvent:
    """An event to append. `data` and `metadata` are bytes, stored as they
    are, or anything json.dumps takes (a str too), stored as its JSON; the
    id is made here, so that appending the same NewEvent again is a retry,
    not a second event."""
    type: str
    data: Any = None
    metadata: Any = None
    content_type: str = "application/json"
    correlation_id: str = ""
    causation_id: str = ""
    schema_version: Optional[int] = None
    event_id: str = field(default_factory=new_event_id)

    def data_bytes(self) -> bytes:
        return _bytes_of(self.data) if self.data is not None else b"{}"

    def metadata_bytes(self) -> bytes:
        return _bytes_of(self.metadata)


@dataclass(frozen=True)
class RecordedEvent:
    """An event as the log holds it."""
    event_id: str
    type: str
    data: bytes
    metadata: bytes
    content_type: str
    correlation_id: str
    causation_id: str
    stream_id: str
    stream_version: int
    global_position: int
    recorded_at: datetime
    schema_version: Optional[int]
    redaction_reason: str
    written_by: str
    tenant: str
    traceparent: str

    def json(self) -> Any:
        """The data, parsed as JSON."""
        return json.loads(self.data)


@dataclass(frozen=True)
class AppendResult:
    first_version: int
    last_version: int
    first_position: int
    last_position: int
    event_ids: List[str]
    head_hash: bytes


@dataclass(frozen=True)
class StreamInfo:
    stream_id: str
    version: int
    last_position: int
    head_hash: bytes
    state: str  # "ACTIVE", "SOFT_DELETED" or "TOMBSTONED"
    first_version: int


@dataclass(frozen=True)
class Snapshot:
    stream_id: str
    stream_version: int
    schema_version: int
    state: bytes


@dataclass(frozen=True)
class Loaded:
    """What an aggregate is rebuilt from: the newest snapshot (if any) and
    the events after it."""
    snapshot: Optional[Snapshot]
    events: List[RecordedEvent]


@dataclass(frozen=True)
class BrokenEvent:
    stream_id: str
    stream_version: int
    global_position: int
    reason: str
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    streams_checked: int
    head_hash: bytes
    first_broken: Optional[BrokenEvent]


@dataclass(frozen=True)
class Delivery:
    """An event a consumer group hands a worker: delivery_id is its global
    position; attempt 1 is the first delivery."""
    delivery_id: int
    event: RecordedEvent
    attempt: int
