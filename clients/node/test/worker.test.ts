import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  AlreadyExists, Client, NewEvent, NotFound, Park, Retry, Skip, Worker, type Delivery,
} from "@logbook/client";
import { env, eventually, unique } from "./env.js";

let lb: Client;
before(() => { lb = new Client(env("LOGBOOK_ADDRESS"), { timeoutMs: 10_000 }); });
after(() => lb.close());

test("a PER_STREAM worker acks what it handles and retries what throws, in stream order", async () => {
  const category = unique("nodew");
  for (let i = 0; i < 3; i++) {
    await lb.append(`${category}-${i}`, [new NewEvent("Task", { i }), new NewEvent("Task")]);
  }
  const group = `g-${category}`;
  const created = await lb.createConsumerGroup(group, { category });
  assert.equal(created.strategy, "PER_STREAM");
  await assert.rejects(lb.createConsumerGroup(group, { category }), AlreadyExists);
  const seen: [string, number, number][] = [];
  const failedOnce = new Set<string>();
  const stop = new AbortController();
  const worker = new Worker(lb, group, "w1", (d: Delivery) => {
    const key = `${d.event.streamId}@${d.event.streamVersion}`;
    if (d.event.streamVersion === 0 && !failedOnce.has(key)) {
      failedOnce.add(key);
      throw new Retry("not yet", { delayMs: 0 });
    }
    seen.push([d.event.streamId, d.event.streamVersion, d.attempt]);
    if (seen.length === 6) stop.abort();
  });
  await worker.run(stop.signal);
  // Each stream in order: version 0 on its second attempt, then version 1.
  for (let i = 0; i < 3; i++) {
    const mine = seen.filter(([s]) => s === `${category}-${i}`).map(([, v, a]) => [v, a]);
    assert.deepEqual(mine, [[0, 2], [1, 1]]);
  }
  assert.equal(worker.handled, 9);
  let info = await lb.consumerGroup(group);
  assert.ok(await eventually(async () => (info = await lb.consumerGroup(group)).acked === 6),
            `acked ${info.acked}`);
  const head = (await lb.getStream(`${category}-2`)).lastPosition;
  assert.deepEqual([info.acked, info.delivered, info.parked, info.inFlight, info.lagEvents,
                    info.checkpointPosition],
                   [6, 9, 0, 0, 0, head]);
});

test("a handler parks, skips, and retries what throws", async () => {
  const category = unique("nodep");
  const r = await lb.append(`${category}-1`, ["ok", "park", "skip", "throw"].map(
    (what) => new NewEvent("Task", { what })));
  const group = `g-${category}`;
  await lb.createConsumerGroup(group, { category, roundRobin: true });
  const calls: string[] = [];
  const stop = new AbortController();
  const worker = new Worker(lb, group, "w1", async (d: Delivery) => {
    const what: string = d.event.json().what;
    calls.push(`${what}#${d.attempt}`);
    if (calls.length === 5) stop.abort();
    if (what === "park") throw new Park("cannot");
    if (what === "skip") throw new Skip("not mine");
    if (what === "throw" && d.attempt === 1) throw new Error("boom");
  });
  await worker.run(stop.signal);
  assert.deepEqual(calls.slice(0, 4).sort(), ["ok#1", "park#1", "skip#1", "throw#1"]);
  assert.equal(calls[4], "throw#2");
  let info = await lb.consumerGroup(group);
  assert.ok(await eventually(async () => (info = await lb.consumerGroup(group)).acked === 2),
            `acked ${info.acked}`);
  assert.deepEqual([info.acked, info.delivered, info.parked, info.inFlight, info.checkpointPosition],
                   [2, 5, 1, 0, r.lastPosition]);
});

test("a worker stops when aborted while waiting, and rejects for a missing group", async () => {
  const group = unique("g-none");
  await assert.rejects(new Worker(lb, group, "w1", () => {}).run(), NotFound);
  const category = unique("nodei");
  await lb.createConsumerGroup(`g-${category}`, { category });
  const stop = new AbortController();
  const running = new Worker(lb, `g-${category}`, "w1", () => {}).run(stop.signal);
  assert.ok(await eventually(async () => (await lb.consumerGroup(`g-${category}`)).members.length === 1));
  stop.abort();
  await running;
  assert.ok(await eventually(async () => (await lb.consumerGroup(`g-${category}`)).members.length === 0));
});
