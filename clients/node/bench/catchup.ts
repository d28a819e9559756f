// Catch-up through subscribe: how fast the client delivers events already in
// the log. Reads $all from the beginning until it has N events and prints
// events/s. A log with fewer than N events is filled first with batched
// appends (or fill it with `logbook-bench catch-up --fill-only`).
//
//   node build/bench/catchup.js [--address HOST:PORT] [--events N]

import { parseArgs } from "node:util";
import { Client, NewEvent } from "@logbook/client";

const { values } = parseArgs({
  options: {
    address: { type: "string", default: process.env.LOGBOOK_ADDRESS ?? "127.0.0.1:50051" },
    events: { type: "string", default: "1000000" },
  },
});
const n = Number(values.events);
const lb = new Client(values.address);

// The log's head: the position of its last event (0 when empty).
let head = 0;
for await (const e of lb.readAll({ backward: true, pageSize: 1 })) {
  head = e.globalPosition;
  break;
}
if (head < n) {
  const start = performance.now();
  const padding = "x".repeat(150);
  const fill = async (client: number) => {
    for (let i = client; head < n; i += 8) {
      const events = Array.from({ length: Math.min(1000, n - head) },
                                (_, j) => new NewEvent("BenchEvent", { i: j, padding }));
      head = Math.max(head, (await lb.append(`bench-${client}-${i}`, events)).lastPosition);
    }
  };
  await Promise.all(Array.from({ length: 8 }, (_, c) => fill(c)));
  const s = (performance.now() - start) / 1000;
  console.log(`filled the log to ${head} events in ${s.toFixed(1)} s`);
}

const start = performance.now();
let count = 0;
let bytes = 0;
for await (const e of lb.subscribe("$all")) {
  bytes += e.data.length;
  if (++count === n) break;
}
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({
  scenario: "catch-up", client: "node", events: count, seconds: Number(seconds.toFixed(3)),
  events_per_s: Math.round(count / seconds), data_mib: Number((bytes / 2 ** 20).toFixed(1)),
}));
lb.close();
