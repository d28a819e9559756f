import asyncio
import os
import subprocess
import threading
import uuid

import grpc
import pytest

import logbook
from logbook import (ANY, NO_STREAM, STREAM_EXISTS, AsyncClient, NewEvent,
                     WrongExpectedVersion)
from logbook.v1 import event_store_pb2 as pb


def test_append_then_read_a_stream(client, stream):
    r = client.append(stream, [NewEvent("Opened", {"n": 1}), NewEvent("Renamed", "x")],
                      NO_STREAM)
    assert (r.first_version, r.last_version) == (0, 1)
    assert r.last_position == r.first_position + 1
    events = list(client.read_stream(stream))
    assert [(e.stream_version, e.type) for e in events] == [(0, "Opened"), (1, "Renamed")]
    assert events[0].json() == {"n": 1}
    assert events[1].data == b'"x"' and events[1].json() == "x"  # A str is stored as JSON.
    assert [e.event_id for e in events] == r.event_ids
    assert [e.stream_version for e in client.read_stream(stream, backward=True)] == [1, 0]
    info = client.get_stream(stream)
    assert (info.version, info.last_position, info.state) == (1, r.last_position, "ACTIVE")
    assert len(info.head_hash) == 32


def test_expected_versions_are_typed_and_a_conflict_names_the_actual_version(client, stream):
    client.append(stream, [NewEvent("A")], NO_STREAM)
    client.append(stream, [NewEvent("B")], 0)
    client.append(stream, [NewEvent("C")], STREAM_EXISTS)
    with pytest.raises(WrongExpectedVersion) as e:
        client.append(stream, [NewEvent("D")], 0)
    assert e.value.actual_version == 2
    assert e.value.code == grpc.StatusCode.ABORTED
    with pytest.raises(TypeError, match="expected_version"):
        client.append(stream, [NewEvent("D")], -1)
    assert [e.type for e in client.read_stream(stream)] == ["A", "B", "C"]


def test_a_retried_append_stores_its_events_once(client, stream):
    events = [NewEvent("Paid", {"amount": 5}), NewEvent("Shipped")]
    first = client.append(stream, events, ANY)
    again = client.append(stream, events, ANY)  # The same ids: a retry.
    assert again.first_position == first.first_position
    assert len(list(client.read_stream(stream))) == 2
    assert uuid.UUID(events[0].event_id).version == 7


def test_reads_page_by_themselves(client, stream):
    client.append(stream, [NewEvent("E", {"i": i}) for i in range(25)])
    got = list(client.read_stream(stream, page_size=7))
    assert [e.json()["i"] for e in got] == list(range(25))
    mine = [e for e in client.read_all(stream_prefix=stream, page_size=4)]
    assert [e.stream_version for e in mine] == list(range(25))
    assert len(list(client.read_all(stream_prefix=stream, event_types=["nope"]))) == 0
    with pytest.raises(ValueError, match="page_size"):
        list(client.read_stream(stream, page_size=0))


def test_missing_and_bad_input_raise_typed_errors(client, stream):
    with pytest.raises(logbook.NotFound):
        client.get_stream(stream)
    with pytest.raises(logbook.InvalidArgument) as e:
        client.append(stream, [NewEvent("", {})])
    assert "type" in e.value.message


def test_subscribe_catches_up_then_follows_live(client, stream):
    client.append(stream, [NewEvent("Before")])
    caught_up = threading.Event()
    got = []
    stop = threading.Event()

    def follow():
        for e in client.subscribe(stream, on_caught_up=lambda p: caught_up.set(), stop=stop):
            got.append(e.type)
            if len(got) == 3:
                stop.set()

    t = threading.Thread(target=follow)
    t.start()
    assert caught_up.wait(10)
    client.append(stream, [NewEvent("Live1"), NewEvent("Live2")])
    t.join(10)
    assert not t.is_alive()
    assert got == ["Before", "Live1", "Live2"]


def test_subscribe_resumes_after_the_server_restarts(client, stream):
    restart = os.environ.get("LOGBOOK_RESTART")
    if not restart:
        pytest.fail("LOGBOOK_RESTART is not set: run tests/e2e/python_client_e2etest.sh")
    client.append(stream, [NewEvent("E", {"i": i}) for i in range(3)])
    got = []
    stop = threading.Event()

    def follow():
        for e in client.subscribe(stream, stop=stop):
            got.append(e.json()["i"])
            if len(got) == 6:
                stop.set()

    t = threading.Thread(target=follow)
    t.start()
    for _ in range(100):  # The first three arrive before the restart.
        if len(got) == 3:
            break
        threading.Event().wait(0.1)
    assert got == [0, 1, 2]
    subprocess.run(restart, shell=True, check=True)
    client.append(stream, [NewEvent("E", {"i": i}) for i in range(3, 6)])
    t.join(30)
    assert not t.is_alive()
    assert got == [0, 1, 2, 3, 4, 5]  # Nothing missed, nothing twice.


def test_verify_and_load(client, stream):
    client.append(stream, [NewEvent("E", {"i": i}) for i in range(4)])
    result = client.verify(stream)
    assert (result.ok, result.events_checked, result.first_broken) == (True, 4, None)
    client.save_snapshot(stream, 2, 1, b'{"sum":3}')
    loaded = client.load(stream)
    assert loaded.snapshot.stream_version == 2
    assert loaded.snapshot.state == b'{"sum":3}'
    assert [e.stream_version for e in loaded.events] == [3]


def test_a_worker_acks_what_it_handles_and_retries_what_raises(client, stream):
    category = f"pyw{uuid.uuid4().hex[:8]}"
    for i in range(3):
        client.append(f"{category}-{i}", [NewEvent("Task", {"i": i}), NewEvent("Task")])
    group = f"g-{category}"
    client.create_consumer_group(group, category=category, round_robin=False)
    seen = []
    failed_once = set()
    stop = threading.Event()

    def handle(d: logbook.Delivery):
        key = (d.event.stream_id, d.event.stream_version)
        if d.event.stream_version == 0 and key not in failed_once:
            failed_once.add(key)
            raise logbook.Retry("not yet", delay_ms=0)
        seen.append((key, d.attempt))
        if len(seen) == 6:
            stop.set()

    worker = logbook.Worker(client, group, "w1", handle)
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    t.join(30)
    assert not t.is_alive()
    # Each stream in order: version 0 on its second attempt, then version 1.
    for i in range(3):
        mine = [(k[1], a) for k, a in seen if k[0] == f"{category}-{i}"]
        assert mine == [(0, 2), (1, 1)]
    for _ in range(50):
        info = client.consumer_group(group)
        if info.acked == 6:
            break
        threading.Event().wait(0.1)
    assert (info.acked, info.delivered) == (6, 9)


def test_a_worker_asks_for_the_groups_own_max_in_flight(client):
    # A group that allows fewer unacked deliveries than 100 serves a worker
    # left at its defaults, as it serves the C++ Worker (join max_in_flight 0).
    category = f"pym{uuid.uuid4().hex[:8]}"
    client.append(f"{category}-1", [NewEvent("Task", {"i": 0})])
    group = f"g-{category}"
    client.create_consumer_group(group, category=category)
    client._stub.UpdateConsumerGroup(pb.UpdateConsumerGroupRequest(
        group=group, settings=pb.ConsumerGroupSettings(max_in_flight=10)))
    seen = []
    errors = []
    stop = threading.Event()

    def handle(d: logbook.Delivery):
        seen.append((d.event.stream_version, d.attempt))
        stop.set()

    def run():
        try:
            logbook.Worker(client, group, "w1", handle).run(stop)
        except logbook.LogbookError as e:
            errors.append(e)
            stop.set()

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert (errors, seen) == ([], [(0, 1)])


def test_a_worker_whose_name_another_worker_holds_raises(client):
    # Not a reconnect of its own: the first join is refused, and run() says so
    # instead of trying again for ever.
    category = f"pyd{uuid.uuid4().hex[:8]}"
    client.append(f"{category}-1", [NewEvent("Task", {"i": 0})])
    group = f"g-{category}"
    client.create_consumer_group(group, category=category)
    first_stop, first_got = threading.Event(), threading.Event()
    first = threading.Thread(target=logbook.Worker(
        client, group, "w1", lambda d: first_got.set()).run, args=(first_stop,))
    first.start()
    try:
        assert first_got.wait(30)
        with pytest.raises(logbook.AlreadyExists):
            logbook.Worker(client, group, "w1", lambda d: None).run(threading.Event())
    finally:
        first_stop.set()
        first.join(30)


def test_the_asyncio_client(address, stream):
    async def main():
        async with AsyncClient(address) as lb:
            r = await lb.append(stream, [NewEvent("A", {"n": 1})], NO_STREAM)
            assert r.first_version == 0
            with pytest.raises(WrongExpectedVersion):
                await lb.append(stream, [NewEvent("B")], NO_STREAM)
            got = [e.type async for e in lb.read_stream(stream)]
            assert got == ["A"]
            assert [e.type async for e in lb.read_all(stream_prefix=stream, page_size=1)] == ["A"]
            live = []

            async def follow():
                async for e in lb.subscribe(stream):
                    live.append(e.type)
                    if len(live) == 2:
                        return

            task = asyncio.create_task(follow())
            await lb.append(stream, [NewEvent("B")], 0)
            await asyncio.wait_for(task, 10)
            assert live == ["A", "B"]
            assert (await lb.verify(stream)).ok
            assert (await lb.get_stream(stream)).version == 1
    asyncio.run(main())
