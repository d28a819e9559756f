// The TypeScript client's driver of the conformance scenario
// (tests/conformance/README.md):
//
//     node node_driver.mjs SCENARIO ADDRESS PREFIX
//
// Runs the steps of SCENARIO (scenario.json) in order against logbookd at
// ADDRESS with the public API of the TypeScript client (clients/node, built:
// its dist/), and prints one JSON line per step with what it observed.
// Stream, category and group names get PREFIX in front; positions are
// printed relative to the run's first one. At subscribe_restart it prints
// the "await": "restart" line and reads one line ("restarted") from stdin
// before it goes on. Exits 0 once every step ran, whatever the steps
// observed: the runner compares the lines with expected.jsonl.
//
// Plain JavaScript (ES modules), not TypeScript: Node runs it as it is, with
// nothing but the client's build (`npm ci && npm run build` in clients/node).

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

const CLIENT = new URL("../../clients/node/dist/index.js", import.meta.url);
let logbook;
try {
  logbook = await import(CLIENT.href);
} catch (e) {
  process.stderr.write(`cannot load the TypeScript client from ${CLIENT.pathname} ` +
                       `(cd clients/node && npm ci && npm run build): ${e?.stack ?? e}\n`);
  process.exit(2);
}
const { ANY, NO_STREAM, STREAM_EXISTS, Client, LogbookError, NewEvent, Worker,
        WrongExpectedVersion, newEventId } = logbook;

// How long a step waits for what it is waiting for before it prints what it
// got, with "timed_out": true.
const WAIT_MS = 30_000;
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// The gRPC status codes' names, by number (the numbers of the gRPC spec,
// which LogbookError.code holds).
const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

function emit(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

/** Lets tasks wait, bounded, until something they watch becomes true. */
class Changes {
  #waiters = new Set();

  /** Something changed: every waiter looks again. */
  poke() {
    for (const check of [...this.#waiters]) check();
  }

  /** Resolves true once `done()` is true, false after `ms` without. */
  waitFor(done, ms) {
    return new Promise((resolve) => {
      const finish = (value) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(value);
      };
      const check = () => { if (done()) finish(true); };
      const timer = setTimeout(() => finish(false), ms);
      this.#waiters.add(check);
      check();
    });
  }
}

/** Resolves with the promise's outcome, or after `ms` (whichever first). */
function bounded(promise, ms) {
  let timer;
  return Promise.race([promise, new Promise((resolve) => { timer = setTimeout(resolve, ms); })])
    .finally(() => clearTimeout(timer));
}

/** One line from stdin, without its end of line; null when stdin ends first. */
function readLine() {
  const lines = createInterface({ input: process.stdin, terminal: false });
  return new Promise((resolve) => {
    // Resolved before close(), which emits "close" at once.
    lines.once("line", (line) => { resolve(line); lines.close(); });
    lines.once("close", () => resolve(null));
  }).finally(() => process.stdin.destroy());
}

class Driver {
  constructor(client, prefix) {
    this.client = client;
    this.prefix = prefix;
    this.ids = new Map();   // The scenario's id names -> the ids made for them.
    this.names = new Map(); // And back.
    this.base = undefined;  // The run's first position.
  }

  // --- Names, ids and positions, as README.md "Normalization" says.

  stream(name) {
    return this.prefix + name;
  }

  nameOf(streamId) {
    return streamId.startsWith(this.prefix) ? streamId.slice(this.prefix.length) : "?" + streamId;
  }

  eventId(name) {
    if (!this.ids.has(name)) {
      const id = newEventId();
      this.ids.set(name, id);
      this.names.set(id, name);
    }
    return this.ids.get(name);
  }

  idName(eventId) {
    if (this.names.has(eventId)) return this.names.get(eventId);
    if (CANONICAL_UUID.test(eventId)) return "uuid-v" + eventId[14];
    return eventId;
  }

  position(position) {
    // No append succeeded yet: a value the expected file never has.
    if (this.base === undefined) return -position;
    return position - this.base + 1;
  }

  event(e) {
    return { stream: this.nameOf(e.streamId), version: e.streamVersion,
             position: this.position(e.globalPosition), type: e.type,
             id: this.idName(e.eventId), data: e.json() };
  }

  /** `{"error": ...}` for a failed call. Anything but a LogbookError is not
   * one of the client's answers: it says so on stderr, and prints as a code
   * no gRPC status has, so that the comparison shows it. */
  static error(e) {
    if (!(e instanceof LogbookError)) {
      process.stderr.write(`not a LogbookError: ${e?.stack ?? e}\n`);
      return { error: { code: `not a LogbookError: ${e?.name ?? typeof e}`, actual_version: null } };
    }
    const actual = e instanceof WrongExpectedVersion ? e.actualVersion : undefined;
    return { error: { code: CODE_NAMES[e.code] ?? String(e.code),
                      actual_version: actual === undefined ? null : actual } };
  }

  // --- The ops.

  async append(spec) {
    const events = spec.events.map((e) => "id" in e
      ? new NewEvent(e.type, e.data, { eventId: this.eventId(e.id) })
      : new NewEvent(e.type, e.data)); // The client makes the id.
    const expected = { any: ANY, no_stream: NO_STREAM, stream_exists: STREAM_EXISTS }[spec.expected]
      ?? spec.expected;
    let r;
    try {
      r = await this.client.append(this.stream(spec.stream), events, expected);
    } catch (e) {
      if (e instanceof LogbookError) return Driver.error(e);
      throw e;
    }
    if (this.base === undefined) this.base = r.firstPosition;
    return { result: { first_version: r.firstVersion, last_version: r.lastVersion,
                       first_position: this.position(r.firstPosition),
                       last_position: this.position(r.lastPosition),
                       event_ids: r.eventIds.map((id) => this.idName(id)) } };
  }

  async get_stream(step) {
    let info;
    try {
      info = await this.client.getStream(this.stream(step.stream));
    } catch (e) {
      if (e instanceof LogbookError) return Driver.error(e);
      throw e;
    }
    return { stream: { version: info.version, last_position: this.position(info.lastPosition),
                       state: info.state } };
  }

  /** Every event of `iterable` (the client's paging reader), or the error
   * that ended it. */
  async collect(iterable) {
    const events = [];
    try {
      for await (const e of iterable) events.push(e);
    } catch (e) {
      if (e instanceof LogbookError) return Driver.error(e);
      throw e;
    }
    return { events: events.map((e) => this.event(e)) };
  }

  read_stream(step) {
    const options = { backward: step.direction === "backward" };
    if ("from_version" in step) options.fromVersion = step.from_version;
    if ("page_size" in step) options.pageSize = step.page_size;
    return this.collect(this.client.readStream(this.stream(step.stream), options));
  }

  read_all(step) {
    const options = { backward: step.direction === "backward",
                      category: this.stream(step.category) };
    if ("page_size" in step) options.pageSize = step.page_size;
    return this.collect(this.client.readAll(options));
  }

  async subscribe_restart(step) {
    const got = [];
    let failure;
    const changes = new Changes();
    const stop = new AbortController();

    const following = (async () => {
      try {
        for await (const e of this.client.subscribe(this.stream(step.stream),
                                                    { signal: stop.signal })) {
          got.push(e);
          changes.poke();
        }
      } catch (e) {
        if (!stop.signal.aborted) {
          failure = e;
          changes.poke();
        }
      }
    })();
    const waitFor = async (done) =>
      await changes.waitFor(() => done() || failure !== undefined, WAIT_MS) && failure === undefined;

    const first = { await: "restart" };
    if (!await waitFor(() => got.length >= step.before_restart)) first.timed_out = true;
    first.events = got.map((e) => this.event(e));
    emit({ step: step.step, ...first });
    const line = await readLine();
    if (line === null || line.trim() !== "restarted") {
      process.stderr.write(`subscribe_restart: wanted 'restarted' on stdin, got ${JSON.stringify(line)}\n`);
      process.exit(1);
    }

    const out = { append: await this.append(step.after_restart) };
    const until = step.until_version;
    if (!await waitFor(() => got.some((e) => e.streamVersion === until))) out.timed_out = true;
    stop.abort();
    await bounded(following, WAIT_MS);
    out.events = got.map((e) => this.event(e));
    if (failure !== undefined) out.error = Driver.error(failure).error;
    return out;
  }

  async group_worker(step) {
    const group = this.stream(step.group);
    try {
      await this.client.createConsumerGroup(group, { category: this.stream(step.category) });
    } catch (e) {
      if (e instanceof LogbookError) return Driver.error(e);
      throw e;
    }
    const fails = new Set(step.fail.map((f) => JSON.stringify([f.stream, f.version, f.attempt])));
    const handled = {};
    let acks = 0;
    const changes = new Changes();

    const handle = (d) => {
      const name = this.nameOf(d.event.streamId);
      const failing = fails.has(JSON.stringify([name, d.event.streamVersion, d.attempt]));
      (handled[name] ??= []).push({ version: d.event.streamVersion, attempt: d.attempt,
                                    position: this.position(d.deliveryId),
                                    outcome: failing ? "fail" : "ack" });
      if (failing) throw new Error("conformance: a planned failure");
      acks++;
      changes.poke();
    };

    const stop = new AbortController();
    const worker = new Worker(this.client, group, step.consumer, handle);
    let failure;
    const running = worker.run(stop.signal).catch((e) => {
      failure = e;
      changes.poke();
    });
    const out = {};
    if (!await changes.waitFor(() => acks >= step.acks || failure !== undefined, WAIT_MS) ||
        failure !== undefined) {
      out.timed_out = true;
    }
    // The counts once the server has taken every ack (the worker still
    // runs, so that nothing it has yet to send is lost).
    const deadline = Date.now() + WAIT_MS;
    let info;
    for (;;) {
      info = await this.client.consumerGroup(group);
      if (info.acked === step.acks && info.inFlight === 0 && info.lagEvents === 0) break;
      if (Date.now() > deadline) {
        out.timed_out = true;
        break;
      }
      await sleep(50);
    }
    stop.abort();
    await bounded(running, WAIT_MS);
    out.handled = handled;
    out.group = { delivered: info.delivered, acked: info.acked, parked: info.parked,
                  in_flight: info.inFlight, lag_events: info.lagEvents,
                  checkpoint_position: this.position(info.checkpointPosition) };
    if (failure !== undefined) out.error = Driver.error(failure).error;
    return out;
  }
}

const OPS = new Set(["append", "get_stream", "read_stream", "read_all", "subscribe_restart",
                     "group_worker"]);

async function main(argv) {
  if (argv.length !== 3) {
    process.stderr.write("usage: node node_driver.mjs SCENARIO ADDRESS PREFIX\n");
    return 2;
  }
  const [scenarioPath, address, prefix] = argv;
  const { steps } = JSON.parse(readFileSync(scenarioPath, "utf8"));
  const client = new Client(address, { timeoutMs: 10_000 });
  try {
    const driver = new Driver(client, prefix);
    for (const step of steps) {
      if (!OPS.has(step.op)) {
        process.stderr.write(`unknown op ${JSON.stringify(step.op)}\n`);
        return 2;
      }
      emit({ step: step.step, ...await driver[step.op](step) });
    }
  } finally {
    client.close();
  }
  return 0;
}

// Exits at once: stdout is a file or a pipe, which Node writes synchronously
// on Linux, and nothing the client may still hold (a channel's timers)
// should keep the process.
process.exit(await main(process.argv.slice(2)));
