"""The pure parts: no server needed."""

import uuid

import pytest

from logbook import ANY, NO_STREAM, STREAM_EXISTS, NewEvent, new_event_id
from logbook import _convert
from logbook.v1 import event_store_pb2 as pb


def _events(*keys, stream=True):
    return [_convert.recorded_event(pb.RecordedEvent(stream_version=k, global_position=k))
            for k in keys]


def test_expected_versions():
    assert _convert.expected_version(ANY).WhichOneof("kind") == "any"
    assert _convert.expected_version(NO_STREAM).WhichOneof("kind") == "no_stream"
    assert _convert.expected_version(STREAM_EXISTS).WhichOneof("kind") == "stream_exists"
    assert _convert.expected_version(7).exact == 7
    for bad in (-1, True, "3", None):
        with pytest.raises(TypeError):
            _convert.expected_version(bad)


def test_pages_follow_each_other_until_a_short_one():
    forward = _convert.read_stream_request("s", None, False, None, 2)
    assert _convert.next_page(forward, _events(0, 1))
    assert forward.from_version == 2
    assert not _convert.next_page(forward, _events(2))
    backward = _convert.read_stream_request("s", 3, True, None, 2)
    assert _convert.next_page(backward, _events(3, 2))
    assert backward.from_version == 1
    assert not _convert.next_page(backward, _events(1, 0))  # Reached version 0.
    everything = _convert.read_all_request(None, False, "order", None, ["Placed"], None, 2)
    assert everything.filter.category == "order"
    assert list(everything.filter.event_types) == ["Placed"]
    assert _convert.next_page(everything, _events(10, 12))
    assert everything.from_position == 13


def test_new_events_carry_a_v7_id_and_json():
    e = NewEvent("Placed", {"total": 3})
    assert uuid.UUID(e.event_id).version == 7
    assert e.data_bytes() == b'{"total":3}'
    assert NewEvent("Raw", b"\x00\x01").data_bytes() == b"\x00\x01"
    assert NewEvent("Empty").data_bytes() == b"{}"
    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000
