import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import {
  ANY, Client, InvalidArgument, NO_STREAM, NewEvent, NotFound, STREAM_EXISTS,
  WrongExpectedVersion, type RecordedEvent,
} from "@logbook/client";
import { env, eventually, unique } from "./env.js";

let lb: Client;
before(() => { lb = new Client(env("LOGBOOK_ADDRESS"), { timeoutMs: 10_000 }); });
after(() => lb.close());

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

test("append, then read a stream", async () => {
  const stream = unique("node-");
  const r = await lb.append(stream, [new NewEvent("Opened", { n: 1 }), new NewEvent("Renamed", "x")],
                            NO_STREAM);
  assert.deepEqual([r.firstVersion, r.lastVersion], [0, 1]);
  assert.equal(r.lastPosition, r.firstPosition + 1);
  assert.equal(r.headHash.length, 32);
  const events = await all(lb.readStream(stream));
  assert.deepEqual(events.map((e) => [e.streamVersion, e.type, e.streamId]),
                   [[0, "Opened", stream], [1, "Renamed", stream]]);
  assert.deepEqual(events[0].json(), { n: 1 });
  assert.equal(events[1].data.toString(), '"x"'); // A string is stored as JSON.
  assert.deepEqual(events.map((e) => e.eventId), r.eventIds);
  assert.deepEqual(events.map((e) => e.globalPosition), [r.firstPosition, r.lastPosition]);
  assert.equal(events[0].contentType, "application/json");
  assert.equal(events[0].schemaVersion, undefined);
  assert.ok(Math.abs(events[0].recordedAt.getTime() - Date.now()) < 60_000);
  assert.deepEqual((await all(lb.readStream(stream, { backward: true }))).map((e) => e.streamVersion),
                   [1, 0]);
  const info = await lb.getStream(stream);
  assert.deepEqual([info.version, info.lastPosition, info.state, info.firstVersion],
                   [1, r.lastPosition, "ACTIVE", 0]);
  assert.deepEqual(info.headHash, r.headHash);
});

test("bytes, metadata and the event's other fields are kept as given", async () => {
  const stream = unique("node-");
  const data = Buffer.from([0, 1, 2, 255]);
  await lb.append(stream, [new NewEvent("Blob", data, {
    contentType: "application/octet-stream", metadata: { by: "test" }, correlationId: "c-1",
    causationId: "c-0", schemaVersion: 3,
  })]);
  const [e] = await all(lb.readStream(stream));
  assert.deepEqual([...e.data], [0, 1, 2, 255]);
  assert.equal(e.metadata.toString(), '{"by":"test"}');
  assert.deepEqual([e.contentType, e.correlationId, e.causationId, e.schemaVersion],
                   ["application/octet-stream", "c-1", "c-0", 3]);
});

test("expected versions are typed, and a conflict names the actual version", async () => {
  const stream = unique("node-");
  await lb.append(stream, [new NewEvent("A")], NO_STREAM);
  await lb.append(stream, [new NewEvent("B")], 0);
  await lb.append(stream, [new NewEvent("C")], STREAM_EXISTS);
  await lb.append(stream, [new NewEvent("D")], ANY);
  const conflict = await lb.append(stream, [new NewEvent("E")], 1).catch((e) => e);
  assert.ok(conflict instanceof WrongExpectedVersion);
  assert.equal(conflict.actualVersion, 3);
  assert.equal(conflict.code, status.ABORTED);
  const missing = await lb.append(unique("node-"), [new NewEvent("E")], STREAM_EXISTS).catch((e) => e);
  assert.ok(missing instanceof WrongExpectedVersion);
  assert.equal(missing.actualVersion, undefined);
  await assert.rejects(lb.append(stream, [new NewEvent("E")], -1), TypeError);
  await assert.rejects(lb.append(stream, [new NewEvent("E")], 1.5), TypeError);
  assert.deepEqual((await all(lb.readStream(stream))).map((e) => e.type), ["A", "B", "C", "D"]);
});

test("a retried append stores its events once", async () => {
  const stream = unique("node-");
  const events = [new NewEvent("Paid", { amount: 5 }), new NewEvent("Shipped")];
  const first = await lb.append(stream, events, ANY);
  const again = await lb.append(stream, events, ANY); // The same ids: a retry.
  assert.equal(again.firstPosition, first.firstPosition);
  assert.equal((await all(lb.readStream(stream))).length, 2);
  // UUIDv7: version 7, variant 10, the time in its first 48 bits.
  assert.match(events[0].eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const millis = parseInt(events[0].eventId.replace(/-/g, "").slice(0, 12), 16);
  assert.ok(Math.abs(millis - Date.now()) < 60_000);
});

test("reads page by themselves", async () => {
  const stream = unique("node-");
  await lb.append(stream, Array.from({ length: 25 }, (_, i) => new NewEvent("E", { i })));
  const got = await all(lb.readStream(stream, { pageSize: 7 }));
  assert.deepEqual(got.map((e) => e.json().i), [...Array(25).keys()]);
  const back = await all(lb.readStream(stream, { pageSize: 7, backward: true, fromVersion: 20 }));
  assert.deepEqual(back.map((e) => e.streamVersion), [...Array(21).keys()].reverse());
  const mine = await all(lb.readAll({ streamPrefix: stream, pageSize: 4 }));
  assert.deepEqual(mine.map((e) => e.streamVersion), [...Array(25).keys()]);
  const from = mine[10].globalPosition;
  assert.deepEqual((await all(lb.readAll({ streamPrefix: stream, pageSize: 4, fromPosition: from,
                                           untilPosition: from + 2 }))).map((e) => e.streamVersion),
                   [10, 11, 12]);
  assert.equal((await all(lb.readAll({ streamPrefix: stream, eventTypes: ["nope"] }))).length, 0);
  await assert.rejects(all(lb.readStream(stream, { pageSize: 0 })), RangeError);
});

test("missing things and bad input reject with typed errors", async () => {
  const stream = unique("node-");
  const missing = await lb.getStream(stream).catch((e) => e);
  assert.ok(missing instanceof NotFound);
  assert.equal(missing.code, status.NOT_FOUND);
  await assert.rejects(all(lb.readStream(stream)), NotFound);
  const bad = await lb.append(stream, [new NewEvent("", {})]).catch((e) => e);
  assert.ok(bad instanceof InvalidArgument);
  assert.match(bad.details, /type/);
  assert.match(bad.message, /^INVALID_ARGUMENT: /);
});

test("subscribe catches up, then follows live", async () => {
  const stream = unique("node-");
  await lb.append(stream, [new NewEvent("Before")]);
  let caughtUp: () => void;
  const isCaughtUp = new Promise<void>((resolve) => { caughtUp = resolve; });
  const got: string[] = [];
  const following = (async () => {
    for await (const e of lb.subscribe(stream, { onCaughtUp: () => caughtUp() })) {
      got.push(e.type);
      if (got.length === 3) break;
    }
  })();
  await isCaughtUp;
  await lb.append(stream, [new NewEvent("Live1"), new NewEvent("Live2")]);
  await following;
  assert.deepEqual(got, ["Before", "Live1", "Live2"]);
});

test("subscribe by category, with a filter, after a position", async () => {
  const category = unique("nodecat");
  const first = await lb.append(`${category}-1`, [new NewEvent("Keep", { i: 0 }), new NewEvent("Drop")]);
  await lb.append(`${category}-2`, [new NewEvent("Keep", { i: 1 }), new NewEvent("Keep", { i: 2 })]);
  await lb.append(unique("other-"), [new NewEvent("Keep")]);
  const got: number[] = [];
  for await (const e of lb.subscribe("$all", { category, eventTypes: ["Keep"],
                                               afterPosition: first.firstPosition })) {
    got.push(e.json().i);
    if (got.length === 2) break;
  }
  assert.deepEqual(got, [1, 2]);
});

test("an AbortSignal ends subscribe, reads and a subscription's backoff", async () => {
  const stream = unique("node-");
  await lb.append(stream, [new NewEvent("A")]);
  const controller = new AbortController();
  const got: string[] = [];
  const following = (async () => {
    for await (const e of lb.subscribe(stream, { signal: controller.signal })) {
      got.push(e.type);
      controller.abort();
    }
  })();
  await assert.rejects(following, { name: "AbortError" });
  assert.deepEqual(got, ["A"]);
  await assert.rejects(all(lb.readAll({ signal: AbortSignal.abort() })), { name: "AbortError" });
  // Nobody listens there: the subscription waits to connect again until aborted.
  const nowhere = new Client("127.0.0.1:1");
  const started = Date.now();
  await assert.rejects(all(nowhere.subscribe("$all", { signal: AbortSignal.timeout(500) })),
                       { name: "TimeoutError" });
  assert.ok(Date.now() - started < 5000);
  nowhere.close();
});

test("subscribe resumes after logbookd restarts, each event once", async () => {
  const restart = env("LOGBOOK_RESTART");
  const stream = unique("node-");
  await lb.append(stream, [0, 1, 2].map((i) => new NewEvent("E", { i })));
  const got: number[] = [];
  const following = (async () => {
    for await (const e of lb.subscribe(stream)) {
      got.push(e.json().i);
      if (e.json().i === 6) break;
    }
  })();
  assert.ok(await eventually(() => got.length === 3), `before the restart: ${got}`);
  assert.deepEqual(got, [0, 1, 2]);
  const [code] = await once(spawn(restart, { stdio: ["ignore", "inherit", "inherit"] }), "exit");
  assert.equal(code, 0, "the restart script failed");
  await lb.append(stream, [3, 4, 5, 6].map((i) => new NewEvent("E", { i })));
  await following;
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6]); // Nothing missed, nothing twice.
});

test("verify, save a snapshot, load", async () => {
  const stream = unique("node-");
  await lb.append(stream, [0, 1, 2, 3].map((i) => new NewEvent("E", { i })));
  const result = await lb.verify(stream);
  assert.deepEqual([result.ok, result.eventsChecked, result.streamsChecked, result.firstBroken],
                   [true, 4, 1, undefined]);
  assert.deepEqual(result.headHash, (await lb.getStream(stream)).headHash);
  const none = await lb.load(stream);
  assert.equal(none.snapshot, undefined);
  assert.deepEqual(none.events.map((e: RecordedEvent) => e.streamVersion), [0, 1, 2, 3]);
  await lb.saveSnapshot(stream, 2, 1, Buffer.from('{"sum":3}'));
  const loaded = await lb.load(stream);
  assert.deepEqual(loaded.snapshot,
                   { streamId: stream, streamVersion: 2, schemaVersion: 1, state: Buffer.from('{"sum":3}') });
  assert.deepEqual(loaded.events.map((e) => e.streamVersion), [3]);
  assert.equal((await lb.load(stream, { schemaVersion: 2 })).snapshot, undefined);
});
