// Appends, reads and subscribes: node build/examples/quickstart.js [HOST:PORT]
import { Client, NewEvent, NO_STREAM } from "@logbook/client";

const lb = new Client(process.argv[2] ?? "127.0.0.1:50051");
const stream = `order-${process.pid}`;
const r = await lb.append(stream, [new NewEvent("OrderPlaced", { total: 30 })], NO_STREAM);
console.log(`appended ${stream}@${r.firstVersion} at position ${r.firstPosition}`);
await lb.append(stream, [new NewEvent("OrderPaid", { amount: 30 })], r.lastVersion);

for await (const e of lb.readStream(stream)) {
  console.log("read", e.streamVersion, e.type, e.json());
}

for await (const e of lb.subscribe(stream)) { // History, then live.
  console.log("got", e.globalPosition, e.type);
  if (e.type === "OrderPaid") break;
}
lb.close();
