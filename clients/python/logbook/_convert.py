"""Between the protobuf messages (logbook.v1, made from proto/ at build
time) and the client's dataclasses. Pure functions."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from google.protobuf import empty_pb2

from logbook.v1 import event_store_pb2 as pb
from ._types import (ANY, NO_STREAM, STREAM_EXISTS, AppendResult, BrokenEvent, Delivery,
                     ExpectedVersion, NewEvent, RecordedEvent, Snapshot, StreamInfo,
                     VerifyResult)


# Events per message reads and subscriptions ask for: batches cost far less
# to receive than one message per event.
EVENTS_PER_MESSAGE = 500


def expected_version(expected: ExpectedVersion) -> pb.ExpectedVersion:
    out = pb.ExpectedVersion()
    if expected is ANY:
        out.any.SetInParent()
    elif expected is NO_STREAM:
        out.no_stream.SetInParent()
    elif expected is STREAM_EXISTS:
        out.stream_exists.SetInParent()
    elif isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        out.exact = expected
    else:
        raise TypeError(f"expected_version: {expected!r} is not ANY, NO_STREAM, "
                        "STREAM_EXISTS or a version (an int >= 0)")
    return out


def append_request(stream_id: str, events: Sequence[NewEvent],
                   expected: ExpectedVersion) -> pb.AppendRequest:
    request = pb.AppendRequest(stream_id=stream_id,
                               expected_version=expected_version(expected))
    for e in events:
        data = request.events.add(event_id=e.event_id, type=e.type, data=e.data_bytes(),
                                  metadata=e.metadata_bytes(), content_type=e.content_type)
        if e.correlation_id:
            data.correlation_id = e.correlation_id
        if e.causation_id:
            data.causation_id = e.causation_id
        if e.schema_version is not None:
            data.schema_version = e.schema_version
    return request


def append_result(r: pb.AppendResponse) -> AppendResult:
    return AppendResult(r.first_version, r.last_version, r.first_position, r.last_position,
                        list(r.event_ids), r.head_hash)


def recorded_event(e: pb.RecordedEvent) -> RecordedEvent:
    return RecordedEvent(
        event_id=e.event_id, type=e.type, data=e.data, metadata=e.metadata,
        content_type=e.content_type, correlation_id=e.correlation_id,
        causation_id=e.causation_id, stream_id=e.stream_id, stream_version=e.stream_version,
        global_position=e.global_position, recorded_at=e.recorded_at.ToDatetime(),
        schema_version=e.schema_version if e.HasField("schema_version") else None,
        redaction_reason=e.redaction_reason, written_by=e.written_by, tenant=e.tenant,
        traceparent=e.traceparent)


def filter_of(category: Optional[str], stream_prefix: Optional[str],
              event_types: Iterable[str]) -> Optional[pb.Filter]:
    types = list(event_types)
    if not category and not stream_prefix and not types:
        return None
    f = pb.Filter(event_types=types)
    if category:
        f.category = category
    if stream_prefix:
        f.stream_prefix = stream_prefix
    return f


def subscribe_request(target: str, category: Optional[str], stream_prefix: Optional[str],
                      event_types: Iterable[str], after_position: Optional[int],
                      from_now: bool) -> pb.SubscribeRequest:
    """`target`: '$all' or a stream id (ignored when `category` is given)."""
    request = pb.SubscribeRequest(max_events_per_message=EVENTS_PER_MESSAGE)
    if category:
        request.category = category
    elif target == "$all":
        request.all.CopyFrom(empty_pb2.Empty())
    else:
        request.stream_id = target
    f = filter_of(None, stream_prefix, event_types)
    if f is not None:
        request.filter.CopyFrom(f)
    if after_position is not None:
        request.after_position = after_position
    elif from_now:
        request.from_now.CopyFrom(empty_pb2.Empty())
    else:
        request.from_beginning.CopyFrom(empty_pb2.Empty())
    return request


def read_stream_request(stream_id: str, from_version: Optional[int], backward: bool,
                        until_version: Optional[int], page_size: int) -> pb.ReadStreamRequest:
    request = pb.ReadStreamRequest(stream_id=stream_id, max_count=page_size,
                                   direction=pb.BACKWARD if backward else pb.FORWARD,
                                   max_events_per_message=EVENTS_PER_MESSAGE)
    if from_version is not None:
        request.from_version = from_version
    if until_version is not None:
        request.until_version = until_version
    return request


def read_all_request(from_position: Optional[int], backward: bool, category: Optional[str],
                     stream_prefix: Optional[str], event_types: Iterable[str],
                     until_position: Optional[int], page_size: int) -> pb.ReadAllRequest:
    request = pb.ReadAllRequest(max_count=page_size,
                                direction=pb.BACKWARD if backward else pb.FORWARD,
                                max_events_per_message=EVENTS_PER_MESSAGE)
    f = filter_of(category, stream_prefix, event_types)
    if f is not None:
        request.filter.CopyFrom(f)
    if from_position is not None:
        request.from_position = from_position
    if until_position is not None:
        request.until_position = until_position
    return request


def next_page(request, page: Sequence[RecordedEvent]) -> bool:
    """Moves a ReadStream or ReadAll request past `page`, the answer to it;
    False when that was the last page."""
    if len(page) < request.max_count:
        return False
    backward = request.direction == pb.BACKWARD
    if isinstance(request, pb.ReadStreamRequest):
        last = page[-1].stream_version
        if backward and last == 0:
            return False
        request.from_version = last - 1 if backward else last + 1
    else:
        last = page[-1].global_position
        if backward and last <= 1:
            return False
        request.from_position = last - 1 if backward else last + 1
    return True


def subscribed_events(r) -> Sequence[pb.RecordedEvent]:
    """The events of a Subscribe or a read answer (none for caught_up and
    the like)."""
    kind = r.WhichOneof("content")
    if kind == "event":
        return [r.event]
    if kind == "events":
        return r.events.events
    return []


def stream_info(r: pb.StreamInfo) -> StreamInfo:
    return StreamInfo(r.stream_id, r.version, r.last_position, r.head_hash,
                      pb.StreamState.Name(r.state), r.first_version)


def snapshot(r: pb.Snapshot) -> Snapshot:
    return Snapshot(r.stream_id, r.stream_version, r.schema_version, r.state)


def verify_request(stream_id: Optional[str]) -> pb.VerifyRequest:
    """One stream's, or (None) the whole log's."""
    if stream_id is None:
        return pb.VerifyRequest(all=empty_pb2.Empty())
    return pb.VerifyRequest(stream_id=stream_id)


def verify_result(r: pb.VerifyResult) -> VerifyResult:
    broken = None
    if r.HasField("first_broken"):
        b = r.first_broken
        broken = BrokenEvent(b.stream_id, b.stream_version, b.global_position,
                             pb.BreakReason.Name(b.reason), b.detail)
    return VerifyResult(r.ok, r.events_checked, r.streams_checked, r.head_hash, broken)


def delivery(d: pb.Delivery) -> Delivery:
    return Delivery(d.delivery_id, recorded_event(d.event), d.attempt)
